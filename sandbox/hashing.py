"""Stable hashes and the ids derived from them.

Everything the sandbox generates follows from (seed, account, index) through these functions, never Python's salted
hash(), so a history is the same in every process.
"""

from __future__ import annotations

from hashlib import blake2b

M64 = (1 << 64) - 1


def mix64(x: int) -> int:
    """splitmix64 finalizer: a cheap, well-distributed integer hash for the hot path."""
    x = (x + 0x9E3779B97F4A7C15) & M64
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def h64(*parts: object) -> int:
    """Stable 64-bit hash of a few values (not Python's salted hash())."""
    return int.from_bytes(blake2b(repr(parts).encode(), digest_size=8).digest(), "big")


def unit(x: int) -> float:
    """A hash spread over [0, 1)."""
    return (mix64(x) >> 11) / float(1 << 53)


def uuid_from(x: int) -> str:
    """A version-4-looking UUID string derived from an integer."""
    a = mix64(x)
    b = mix64(x ^ 0x5DEECE66D)
    # set the version nibble to 4 and the variant bits to 10xx, like uuid4()
    h = ((a & 0xFFFFFFFFFFFF0FFF) | 0x4000) << 64 | (b & 0x3FFFFFFFFFFFFFFF) | 0x8000000000000000
    s = f"{h:032x}"
    return s[:8] + "-" + s[8:12] + "-" + s[12:16] + "-" + s[16:20] + "-" + s[20:]
