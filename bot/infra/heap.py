"""Keep the start-up heap out of the garbage collector's way.

The bot builds a large, permanent heap at start-up: aiogram's ~300 pydantic models with
their validators, SQLAlchemy's mappers, the routers. Python's cyclic collector walks all
of it on every full collection, and updates allocate enough (pydantic models, dicts) to
trigger collections often: about a tenth of the CPU an update costs (bench/webhook.py).
``gc.freeze()`` moves what exists now into a permanent generation the collector skips;
everything created later is collected as before.
"""

from __future__ import annotations

import gc


def freeze_startup_heap() -> None:
    """Call once everything long-lived is built, just before serving."""
    gc.collect()
    gc.freeze()
