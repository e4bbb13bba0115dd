"""Read the command line while it is still text: keys and values too long to be real are refused before a parser, a
path lookup (a 10,000-character key is a file name the system refuses) or a message has to carry them; and the
options of a config group are found in conf/ and in the user's own config dirs (hydra.searchpath)."""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path

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


def search_dirs(searchpath: Iterable[str]) -> list[Path]:
    """The local config dirs of a `hydra.searchpath=[...]` value (file://dir or a plain path; pkg:// entries are
    Python packages, whose options Hydra finds and this text check leaves alone)."""
    return [Path(entry.removeprefix("file://")) for entry in searchpath if not entry.startswith("pkg://")]


def group_options(group: str, conf_dir: Path, extra_dirs: Iterable[Path] = ()) -> list[str]:
    """The options of a config group: its YAML files in conf/ and in each extra config dir (a user's own option is
    one YAML in <their dir>/<group>/, no file of ours changed)."""
    found = set()
    for folder in (conf_dir, *extra_dirs):
        try:
            found.update(p.stem for p in (Path(folder) / group).glob("*.yaml"))
        except (OSError, ValueError):  # a dir that cannot be read holds no options
            continue
    return sorted(found)
