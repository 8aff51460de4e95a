"""Socket options the web server leaves unset: TCP_NODELAY on the dashboard's listening socket.

Streamlit 1.67 binds its listening socket itself (`socket.socket(family)`, so protocol 0) and hands it
to uvicorn. asyncio turns Nagle's algorithm off only for sockets whose protocol is IPPROTO_TCP, so every
connection accepted from that socket keeps Nagle on. uvicorn writes a response's head and body in two
writes; the body then waits for the client to ACK the head, and clients delay that ACK by ~40 ms.
Measured on a keep-alive connection: 44 ms median per request for /_stcore/health (a 2-byte body) and
for a 13 KB script, 0.8 ms and 2.2 ms once TCP_NODELAY is set. A first visit fetches ~130 scripts over
six connections, and websocket frames wait the same way.

Linux copies TCP_NODELAY from a listening socket to each connection it accepts, so setting it once on
the listener fixes every later connection.
"""

from __future__ import annotations

import os
import socket
import stat


def _open_fds() -> list[int]:
    for folder in ("/proc/self/fd", "/dev/fd"):
        try:
            return sorted(int(name) for name in os.listdir(folder) if name.isdigit())
        except OSError:
            continue
    return []


# A reach into how Streamlit binds its socket, guarded: docs/INTERNALS.md (streamlit-listening-socket-nagle).
def disable_nagle_on_listeners(port: int | None = None) -> list[tuple[str, int]]:
    """Set TCP_NODELAY on this process's listening TCP sockets (only those on `port` when given).

    Works on a duplicate of each descriptor, so nothing the server owns is closed or replaced.
    Returns the (host, port) of every socket it set."""
    changed: list[tuple[str, int]] = []
    for fd in _open_fds():
        try:
            if not stat.S_ISSOCK(os.fstat(fd).st_mode):
                continue
            dup = os.dup(fd)
        except OSError:
            continue  # closed since the listing
        try:
            sock = socket.socket(fileno=dup)
        except OSError:
            os.close(dup)  # a failed socket() leaves the descriptor open: a leaked pipe end never sees EOF
            continue
        try:
            if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.type != socket.SOCK_STREAM:
                continue
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                continue
            host, bound_port = sock.getsockname()[:2]
            if port is not None and bound_port != port:
                continue
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            changed.append((host, bound_port))
        except OSError:
            continue
        finally:
            sock.close()
    return changed
