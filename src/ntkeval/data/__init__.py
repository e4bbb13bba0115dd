"""Data sets: seeded generators of skill-labelled questions with verified answers (arith, khanskill, jsonl); the
interface they share is ntkeval.data.base."""
