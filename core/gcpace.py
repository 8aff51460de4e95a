"""Fewer cyclic garbage collections while a sync run or a journal rebuild allocates: `bulk_allocations()`.

A sync page is about ten thousand new containers (the parsed activities, their normalized rows, the bound
values) that reference counting frees as soon as the page is written; none of them is in a reference cycle.
With CPython's default young-generation threshold (700 net new containers) a page still sets off a dozen young
collections, and every few pages a full one that walks every object the process holds (SQLAlchemy's and the
SDK's modules: some 180,000): about a fifth of the CPU of parsing and normalizing a page. A journal rebuild is
the same (a chunk's rows, fills and values to store, freed when the chunk is stored): with the default threshold
a rebuild of 120,000 activities ran eight full collections of about 100 ms each, a quarter of its time. A larger
threshold for the duration of a run keeps cyclic garbage collected, just in larger steps (at most `young` net new
containers apart), so memory stays bounded.

The thresholds are the process's: runs in several threads share one raised setting, restored when the last ends.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

YOUNG = 50_000  # net new containers between young collections (CPython's default: 700)

_lock = threading.Lock()
_holders = 0
_saved: tuple[int, ...] | None = None


@contextlib.contextmanager
def bulk_allocations(young: int = YOUNG) -> Iterator[None]:
    """Raise the young generation's collection threshold to at least `young` while the block runs."""
    global _holders, _saved
    with _lock:
        if _holders == 0:
            _saved = gc.get_threshold()
            gc.set_threshold(max(young, _saved[0]), *_saved[1:])
        _holders += 1
    try:
        yield
    finally:
        with _lock:
            _holders -= 1
            if _holders == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                _saved = None
