"""Planning a grid before it runs: each job's peak GPU memory from the model's architecture (no weights loaded) and
the grid's GPU-hours from a short calibration run (ntkeval.estimate.memory, .jobs, .calibration; .planning ties them
to the checked grid for the preflight)."""
