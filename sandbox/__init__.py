"""A faithful local emulator of the SnapTrade HTTP API for tests, benchmarks and demos.

`from sandbox import Sandbox`; run standalone with `python -m sandbox --port 8787`.
"""

from sandbox.emulator import Sandbox

__all__ = ["Sandbox"]
