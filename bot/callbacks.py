"""Every CallbackData class, in one module: short prefixes, Enum actions, ids only.

Telegram allows 64 bytes of callback data and the client can forge any of it, so
handlers re-check on every press that the object exists and belongs to the presser.
"""

from __future__ import annotations
