"""Plain data about signals, approvals and devices' progress, as services hand them out."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Literal

from db.models import Approval, Signal

SignalState = Literal["open", "cancelled", "closed", "expired"]
Decision = Literal["pending", "approved", "rejected", "expired", "auto"]
DeviceState = Literal["waiting", "acked", "filled", "error", "closed", "skipped", "preview"]
# Decisions that send the signal to the user's devices.
EXECUTING: tuple[Decision, ...] = ("approved", "auto")


@dataclass(frozen=True, slots=True)
class SignalDTO:
    id: int
    public_id: str
    symbol: str
    side: str
    order_type: str
    entry: Decimal | None
    stop_loss: Decimal | None
    take_profit: tuple[Decimal, ...]
    comment: str | None
    issued_at: datetime
    expires_at: datetime
    state: str
    closed_fraction: Decimal
    client_id: str | None
    source: str
    created_by_id: int | None
    modified_at: datetime | None
    ended_at: datetime | None

    @property
    def is_open(self) -> bool:
        return self.state == "open"

    @classmethod
    def from_model(cls, signal: Signal) -> SignalDTO:
        return cls(
            id=signal.id,
            public_id=signal.public_id,
            symbol=signal.symbol,
            side=signal.side,
            order_type=signal.order_type,
            entry=signal.entry,
            stop_loss=signal.stop_loss,
            take_profit=tuple(Decimal(price) for price in signal.take_profit),
            comment=signal.comment,
            issued_at=signal.issued_at,
            expires_at=signal.expires_at,
            state=signal.state,
            closed_fraction=signal.closed_fraction,
            client_id=signal.client_id,
            source=signal.source,
            created_by_id=signal.created_by_id,
            modified_at=signal.modified_at,
            ended_at=signal.ended_at,
        )


@dataclass(frozen=True, slots=True)
class ApprovalDTO:
    id: int
    signal_id: int
    user_id: int
    decision: str
    message_id: int | None
    decided_at: datetime | None

    @property
    def is_pending(self) -> bool:
        return self.decision == "pending"

    @classmethod
    def from_model(cls, approval: Approval) -> ApprovalDTO:
        return cls(
            id=approval.id,
            signal_id=approval.signal_id,
            user_id=approval.user_id,
            decision=approval.decision,
            message_id=approval.message_id,
            decided_at=approval.decided_at,
        )


@dataclass(frozen=True, slots=True)
class PositionResult:
    """What a v1.1 device reported of its positions on a signal (EA_PROTOCOL 5.4).

    ``closed``: ``reason``, ``leg`` and ``profit``; ``sl_moved`` / ``tp_moved``: ``level``
    (None: removed), ``breakeven`` when the stop loss went to the position's open price
    after a take profit, as the device's breakeven setting does."""

    event: str
    reason: str | None = None
    leg: int | None = None
    profit: Decimal | None = None
    level: Decimal | None = None
    breakeven: bool = False


@dataclass(frozen=True, slots=True)
class SizePreview:
    """How a v1.1 device would size a signal, shown before the owner decides: ``mode`` as
    sent (fixed, risk_percent, risk_money), with ``percent`` of ``base`` or ``amount``
    (account currency), ``lots`` (the server's estimate; None when it cannot tell),
    ``no_stop_loss`` when a risk mode fell back to fixed, and the take profits split."""

    mode: str
    lots: Decimal | None
    currency: str | None = None
    percent: Decimal | None = None
    base: Decimal | None = None
    amount: Decimal | None = None
    no_stop_loss: bool = False
    legs: int = 0


@dataclass(frozen=True, slots=True)
class DeviceLine:
    """One of the user's devices on one signal, as its latest report left it.

    waiting (instruction pending), acked (``ticket`` if given), filled (``price`` and
    ``volume``), error (``code`` and ``message``), closed (``profit``), skipped (a
    protection refused the open: ``skip_reason``). A v1.1 device adds ``results`` (its
    position events, ``currency`` the account's), and before the decision ``preview``.
    """

    name: str
    state: DeviceState
    ticket: int | None = None
    price: Decimal | None = None
    volume: Decimal | None = None
    code: int | None = None
    message: str | None = None
    profit: Decimal | None = None
    skip_reason: str | None = None
    results: tuple[PositionResult, ...] = ()
    currency: str | None = None
    preview: SizePreview | None = None


@dataclass(frozen=True, slots=True)
class SignalCounts:
    """What became of a signal: decisions by recipients and reports by devices.

    ``fills`` and ``errors`` count the devices' execution reports on the signal (each
    stored once); ``count_signal`` in bot/domain/signals.py sums them.
    """

    recipients: int
    approvals: int
    rejections: int
    pending: int
    expired: int
    fills: int
    errors: int
