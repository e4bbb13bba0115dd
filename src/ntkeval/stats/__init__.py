"""Statistics of the kernel: per-question estimators, intervals over questions, and the sample-efficiency study."""
