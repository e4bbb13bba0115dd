"""Running cells as jobs: submitit submission and its faults, sweep-dir locks, Hydra callbacks."""
