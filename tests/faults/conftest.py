"""The fault suite's long cases are marked `slow` and run under `make soak` (SOAK=1) only; the quick
versions of the same faults run with every `make test`."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent


def pytest_collection_modifyitems(config, items):
    if os.environ.get("SOAK"):
        return
    skip = pytest.mark.skip(reason="a long fault case: run it with `make soak`")
    for item in items:  # this hook sees the whole session's items: touch only this folder's
        if "slow" in item.keywords and HERE in Path(str(item.path)).resolve().parents:
            item.add_marker(skip)
