"""The model sessions of one process: cells run in turn in one process (a packed job, the in-process launcher) share
the loaded model of their model and device instead of loading it again for each cell.

A session is shared only if it can be put back as it was loaded: after each cell the pool asks it to `reset()`
(remove the cell's adapters, check that nothing else changed); a session that cannot say so, or says it could not,
is dropped and the next cell loads afresh. One model is kept at a time: a cell of another model frees the last one.
"""

from __future__ import annotations

import gc
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from ntkeval.backends.base import ModelLoader, ModelSession
from ntkeval.cache import stable_hash

log = logging.getLogger(__name__)

_kept: dict[str, ModelSession] = {}  # at most one entry: the session of the last model used here


def _pool_key(loader: ModelLoader, device: str) -> str:
    return stable_hash({"loader": f"{type(loader).__module__}.{type(loader).__qualname__}",
                        "key": loader.key(device), "device": device})


@contextmanager
def shared_session(loader: ModelLoader, device: str) -> Iterator[ModelSession]:
    """The session of `loader` on `device` for one cell: the one kept from an earlier cell of the same model if
    there is one, else a new one (which loads on first use); put back for the next cell afterwards."""
    key = _pool_key(loader, device)
    session = _kept.pop(key, None)
    if session is None:
        release()  # another model's weights go before these load
        session = loader.session(device)
    else:
        log.info("model %s: reusing the model this process loaded for an earlier cell", loader.name)
    try:
        yield session
    finally:
        _put_back(key, session)


def _put_back(key: str, session: ModelSession) -> None:
    reset = getattr(session, "reset", None)
    if not callable(reset):
        return  # a backend that cannot restore its model is never shared
    try:
        clean = reset()
    except Exception as error:  # the cell's own error (if any) is what the user needs; this one is logged
        log.warning("could not reset the model after the cell (%s: %s); the next cell loads it again",
                    type(error).__name__, error)
        clean = False
    if clean:
        _kept[key] = session


def release() -> None:
    """Free the kept model (its memory is returned before another model loads)."""
    if not _kept:
        return
    _kept.clear()
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
