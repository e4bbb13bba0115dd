"""Keys and values too long to be real, refused while the command line is still text: before a parser, a path
lookup (a 10,000-character key is a file name the system refuses) or a message has to carry them."""

from __future__ import annotations

import re

from ntkeval.errors import UserError, shorten

LONGEST = 1000  # characters: no real key or single value is longer; a longer one is a paste gone wrong
_BETWEEN_VALUES = re.compile(r"[,\[\]{}]")  # what separates the values of a sweep, list or dict: each is judged alone


def check_lengths(overrides: list[str]) -> None:
    """Raise a UserError for the first `key=value` whose key, or any one value of its list or sweep, is too long."""
    for line in overrides:
        key, _, value = line.partition("=")
        if len(key) > LONGEST:
            raise UserError(f"key {shorten(key)} is too long to be real; expected a config key such as tuning.lr "
                            f"(at most {LONGEST} characters)")
        longest = max(_BETWEEN_VALUES.split(value), key=len)
        if len(longest) > LONGEST:
            raise UserError(f"{key}={shorten(longest.strip(chr(39) + chr(34)))} is too long to be real; expected at "
                            f"most {LONGEST} characters (put long texts in a YAML file under conf/)")
