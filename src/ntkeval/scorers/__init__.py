"""Scorers: exact (teacher forcing), sampled (accuracy of completions) and ntk (importance-sampled deltas); the
interface they share and the roles and stages they work with are in ntkeval.scorers.base."""
