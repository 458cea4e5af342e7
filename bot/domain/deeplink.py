"""The /start payload: `ref_<token>` for referral links (t.me/<bot>?start=ref_<token>)."""

from __future__ import annotations

import re
from dataclasses import dataclass

# Telegram allows 1-64 characters of [A-Za-z0-9_-] in a start parameter.
_PAYLOAD_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_REFERRAL_RE = re.compile(r"^ref_([A-Za-z0-9_-]{8,60})$")


@dataclass(frozen=True, slots=True)
class StartPayload:
    raw: str | None
    referral_token: str | None = None


def parse_start_payload(args: str | None) -> StartPayload:
    """Parse what follows /start; anything malformed is ignored, never an error."""
    if not args:
        return StartPayload(raw=None)
    args = args.strip()
    if not _PAYLOAD_RE.match(args):
        return StartPayload(raw=None)
    match = _REFERRAL_RE.match(args)
    return StartPayload(raw=args, referral_token=match.group(1) if match else None)
