"""NTKEval: measure how adapting a model to one math skill changes p(correct) on every other skill."""

__version__ = "0.1.0"
