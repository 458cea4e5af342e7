"""Public ids of rows written in bulk: a prefix, then 16 characters that sort by time.

Records, events and instructions are looked up by a unique public id. A random id puts
every new row at a random place in that index, so a batch of 32 reports dirties 32 index
pages (each written to the WAL at commit, and again at the checkpoint). These ids start
with the millisecond they were made, in an alphabet whose ASCII order is its numeric
order, so new rows land at the end of the index; 48 random bits follow, so ids made in
the same millisecond (or by two instances) do not collide in practice. They use the
characters and length of ``secrets.token_urlsafe(12)``, which they replace.
"""

from __future__ import annotations

import secrets
import time

# The 64 URL-safe characters in ASCII order: a later time is a later string.
ALPHABET = "-0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz"
_SHIFTS = tuple(range(42, -1, -6))  # 8 characters, 48 bits of milliseconds: until 10889
_RANDOM_BYTES = 6  # 8 characters of token_urlsafe, 48 random bits


def sortable_id(prefix: str, *, at_ms: int | None = None) -> str:
    """``prefix`` and 16 characters: the time in milliseconds (``at_ms``, else now), then
    8 random ones."""
    ms = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    head = "".join([ALPHABET[(ms >> shift) & 63] for shift in _SHIFTS])
    return f"{prefix}{head}{secrets.token_urlsafe(_RANDOM_BYTES)}"
