"""Progress for long steps: a tqdm bar on the console and a few lines in the log file (which tqdm never reaches)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Iterator, Sized
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
log = logging.getLogger("ntkeval.progress")


def progress(items: Iterable[T], desc: str, total_items: int | None = None, log_every: float = 0.25) -> Iterator[T]:
    """Yield items with a console bar, logging `desc` at each `log_every` fraction done and at the end."""
    total = len(items) if isinstance(items, Sized) else None
    start = time.monotonic()
    next_mark = log_every
    what = f"{total_items} items" if total_items is not None else f"{total} steps"
    log.info("%s: started (%s)", desc, what)
    for done, item in enumerate(tqdm(items, desc=desc, total=total, leave=False, dynamic_ncols=True), start=1):
        yield item
        if total and done / total >= next_mark and done < total:
            log.info("%s: %d/%d (%.0f s)", desc, done, total, time.monotonic() - start)
            while done / total >= next_mark:
                next_mark += log_every
    log.info("%s: done in %.1f s", desc, time.monotonic() - start)
