"""Experiment tracking: the Tracker interface and a null tracker (ntkeval.tracking.base), W&B (wandb_tracker)."""
