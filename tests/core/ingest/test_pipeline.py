"""core.ingest.pipeline: pages in order through the fetch and prepare threads, errors at their page, stops."""

from __future__ import annotations

import pytest


class _Page:
    def __init__(self, n, total, offset):
        self.activities, self.total, self.offset = [offset + i for i in range(n)], total, offset


def test_page_pipeline_yields_pages_in_order_and_raises_a_stage_error_at_its_page():
    from core.ingest.pipeline import PagePipeline

    def fetch(at):
        if at >= 30:
            raise RuntimeError("page 4 failed")
        return _Page(10, 50, at)

    got = []
    with pytest.raises(RuntimeError, match="page 4 failed"), PagePipeline(fetch, lambda p: p, 0) as pages:
        for page in pages:
            got.append(page.offset)
    assert got == [0, 10, 20]

    def bad_prepare(page):
        if page.offset == 10:
            raise ValueError("cannot prepare")
        return page

    got = []
    with (
        pytest.raises(ValueError, match="cannot prepare"),
        PagePipeline(lambda at: _Page(10, 50, at), bad_prepare, 0) as pages,
    ):
        for page in pages:
            got.append(page.offset)
    assert got == [0]


def test_page_pipeline_stops_its_threads_when_the_consumer_leaves_early():
    import threading

    from core.ingest.pipeline import PagePipeline

    fetched = []

    def fetch(at):
        fetched.append(at)
        return _Page(10, 10_000, at)

    before = threading.active_count()
    with PagePipeline(fetch, lambda p: p, 100) as pages:
        first = next(iter(pages))
    assert first.offset == 100
    assert threading.active_count() == before
    assert len(fetched) <= 4  # it reads ahead a few pages, not the whole history
    with PagePipeline(lambda at: _Page(3, 3, at), lambda p: p, 0) as pages:
        assert [p.offset for p in pages] == [0]  # the last page ends the stream


def test_page_pipeline_stops_while_a_page_is_slow():
    import time

    from core.ingest.pipeline import PagePipeline, StopRequested

    stop = {"now": False}

    def slow_fetch(at):
        if at > 0:
            stop["now"] = True
            time.sleep(5)  # a request that hangs, or retries with backoff
        return _Page(10, 100, at)

    t0 = time.monotonic()
    with (
        pytest.raises(StopRequested),
        PagePipeline(slow_fetch, lambda p: p, 0, should_stop=lambda: stop["now"]) as pages,
    ):
        for _ in pages:
            pass
    assert time.monotonic() - t0 < 4, "the stop waited for the slow page"


def test_the_prepare_stage_starts_its_next_page_only_once_the_writer_waits_on_the_database_or_for_a_page():
    """Not as soon as the writer takes a page: then the two would share the interpreter while the writer hands its
    page to the database (core.ingest.pipeline.PagePipeline)."""
    import time

    from core.ingest.pipeline import PagePipeline

    started = []

    def prepare(page):
        started.append(page.offset)
        return page

    def settled(count: int) -> list:
        deadline = time.monotonic() + 5
        while len(started) < count and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)  # time enough to start another page, were it allowed to
        return list(started)

    with PagePipeline(lambda at: _Page(10, 100, at), prepare, 0) as pages:
        it = iter(pages)
        assert next(it).offset == 0  # prepared before it was asked for
        assert settled(1) == [0]  # page 10 waits for the writer
        pages.writer_waits()
        assert settled(2) == [0, 10]
        assert next(it).offset == 10  # a page was ready: taking it lets nothing start
        assert settled(2) == [0, 10]
        assert next(it).offset == 20  # asked for a page not prepared: the stage goes on without being told
        assert next(it).offset == 30
