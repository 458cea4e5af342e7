"""What the signal rules ask of whoever tells subscribers: queue or refresh approval messages.

bot/chat/signal_publisher.py implements it on the outbox; the rules (bot/domain/signals.py)
and the report writer (bot/execution/report_desk.py) only call it, inside the
transaction that made the change, so they never import the chat layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from sqlalchemy.ext.asyncio import AsyncSession

from bot.domain.signal_dto import SignalDTO


class SignalPublisher(Protocol):
    async def announce(self, session: AsyncSession, signal: SignalDTO) -> None:
        """Queue the message of a new signal to each recipient (every approval stored
        for it in this transaction)."""

    async def refresh(self, session: AsyncSession, approval_ids: Iterable[int]) -> None:
        """Some approvals changed: their messages must show it."""

    async def refresh_signal(self, session: AsyncSession, signal_id: int) -> None:
        """The signal changed: every message of it must show it."""
