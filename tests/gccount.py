"""Counting CPython's young-generation garbage collections while a block runs (core.gcpace's tests)."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def young_collections() -> Iterator[list[int]]:
    """A list that gains an entry for every young collection the block sets off."""
    young: list[int] = []

    def count(phase: str, info: dict) -> None:
        if phase == "start" and info["generation"] == 0:
            young.append(1)

    gc.callbacks.append(count)
    try:
        yield young
    finally:
        gc.callbacks.remove(count)
