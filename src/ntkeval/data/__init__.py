"""Data sets: seeded generators of skill-labelled questions with verified answers."""

from ntkeval.data.example import Example

__all__ = ["Example"]
