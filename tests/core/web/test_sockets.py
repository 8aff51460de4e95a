"""core/web/sockets.py: TCP_NODELAY set on listening sockets reaches every connection they accept."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from core.web.sockets import disable_nagle_on_listeners


@contextmanager
def streamlit_style_listener(family: int = socket.AF_INET, host: str = "127.0.0.1") -> Iterator[socket.socket]:
    """Bound the way Streamlit 1.67 binds (`socket.socket(family=...)`: protocol 0, so asyncio never sets
    TCP_NODELAY on what it accepts)."""
    sock = socket.socket(family=family)
    try:
        sock.bind((host, 0))
        sock.listen()
        yield sock
    finally:
        sock.close()


def accepted_nodelay(listener: socket.socket) -> int:
    client = socket.create_connection(listener.getsockname()[:2], timeout=5)
    server_side, _ = listener.accept()
    try:
        return server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        server_side.close()
        client.close()


def test_connections_accepted_after_the_call_have_nagle_off():
    with streamlit_style_listener() as listener:
        port = listener.getsockname()[1]
        assert accepted_nodelay(listener) == 0  # the bug: what Streamlit's socket accepts keeps Nagle on

        assert disable_nagle_on_listeners(port) == [("127.0.0.1", port)]

        assert accepted_nodelay(listener) == 1
        assert accepted_nodelay(listener) == 1  # the listener still works: only a duplicate was closed


def test_only_the_given_port_is_touched():
    with streamlit_style_listener() as ours, streamlit_style_listener() as other:
        port = ours.getsockname()[1]

        assert disable_nagle_on_listeners(port) == [("127.0.0.1", port)]

        assert accepted_nodelay(ours) == 1
        assert accepted_nodelay(other) == 0


def test_without_a_port_every_listener_is_set_and_other_sockets_are_left_alone():
    with streamlit_style_listener() as a, streamlit_style_listener() as b:
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        client = socket.create_connection(a.getsockname(), timeout=5)
        server_side, _ = a.accept()
        try:
            changed = disable_nagle_on_listeners()

            assert ("127.0.0.1", a.getsockname()[1]) in changed
            assert ("127.0.0.1", b.getsockname()[1]) in changed
            assert ("127.0.0.1", udp.getsockname()[1]) not in changed
            assert ("127.0.0.1", client.getsockname()[1]) not in changed
            assert client.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0  # connected sockets: untouched
            assert server_side.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 0
            assert accepted_nodelay(b) == 1
        finally:
            for s in (udp, client, server_side):
                s.close()


def test_ipv6_listener():
    if not socket.has_ipv6:
        pytest.skip("no IPv6 in this Python")
    try:
        ctx = streamlit_style_listener(socket.AF_INET6, "::1")
        listener = ctx.__enter__()
    except OSError as exc:
        pytest.skip(f"no IPv6 loopback here: {exc}")
    try:
        port = listener.getsockname()[1]
        assert disable_nagle_on_listeners(port) == [("::1", port)]
        assert accepted_nodelay(listener) == 1
    finally:
        ctx.__exit__(None, None, None)


def test_no_listener_on_the_port_changes_nothing():
    with streamlit_style_listener() as listener:
        free = socket.socket()
        free.bind(("127.0.0.1", 0))
        unused_port = free.getsockname()[1]
        free.close()

        assert disable_nagle_on_listeners(unused_port) == []
        assert accepted_nodelay(listener) == 0


def test_no_descriptor_is_left_open_behind():
    """Only duplicates are opened, and every one is closed again: a leaked copy of a pipe's write end would
    keep its reader from ever seeing end-of-file (Playwright's driver waits for exactly that on exit)."""
    import os

    read_end, write_end = os.pipe()
    before = sorted(os.listdir("/proc/self/fd"))
    with streamlit_style_listener() as listener:
        disable_nagle_on_listeners(listener.getsockname()[1])
        disable_nagle_on_listeners()
    after = sorted(os.listdir("/proc/self/fd"))
    os.close(write_end)
    try:
        assert after == before
        assert os.read(read_end, 1) == b""  # end-of-file: no other copy of the write end is open
    finally:
        os.close(read_end)
