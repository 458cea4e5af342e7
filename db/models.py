"""ORM models. Every feature's tables live here so alembic sees one metadata."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from db.base import Base
from db.types import UTCDateTime


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    first_name: Mapped[str] = mapped_column(String(256))
    last_name: Mapped[str | None] = mapped_column(String(256))
    username: Mapped[str | None] = mapped_column(String(64))
    language_code: Mapped[str | None] = mapped_column(String(16))
    role: Mapped[str] = mapped_column(String(16), default="user")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime())
    is_blocked: Mapped[bool] = mapped_column(Boolean, default=False)
    blocked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    referred_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL"), index=True
    )


class ProcessedUpdate(Base):
    """Telegram update ids already handled, so a redelivered update is a no-op."""

    __tablename__ = "processed_updates"

    update_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)


# --- signals ---

# Prices: up to 10 integer and 10 decimal digits. SQLite keeps NUMERIC as a float, which
# holds the 15 significant digits the validator allows exactly (bot/services/signal_rules.py).
PRICE = Numeric(20, 10)


class Signal(Base):
    """A trade idea from a provider (API) or an admin (chat), sent to users for approval.

    ``state``: open, cancelled, closed (the provider closed all of it) or expired (its
    approval window passed while nobody had approved). ``take_profit`` is a JSON list of
    decimal strings, in the provider's order. ``closed_fraction`` is the part of the
    position closed so far (each close takes a fraction of what remains).
    """

    __tablename__ = "signals"
    __table_args__ = (Index("ix_signals_state_expires_at", "state", "expires_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    symbol: Mapped[str] = mapped_column(String(32))
    side: Mapped[str] = mapped_column(String(4))
    order_type: Mapped[str] = mapped_column(String(8))
    entry: Mapped[Decimal | None] = mapped_column(PRICE)
    stop_loss: Mapped[Decimal | None] = mapped_column(PRICE)
    take_profit: Mapped[list[str]] = mapped_column(JSON, default=list)
    comment: Mapped[str | None] = mapped_column(String(500))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default="open")
    closed_fraction: Mapped[Decimal] = mapped_column(Numeric(12, 10), default=Decimal(0))
    client_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    source: Mapped[str] = mapped_column(String(16))
    created_by_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="SET NULL")
    )
    modified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Approval(Base):
    """One user's decision on one signal, and the chat message that shows it.

    ``decision``: pending, approved, rejected, expired (the window passed while pending)
    or auto (the user has auto-approve on).
    """

    __tablename__ = "approvals"
    __table_args__ = (UniqueConstraint("signal_id", "user_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    signal_id: Mapped[int] = mapped_column(ForeignKey("signals.id", ondelete="CASCADE"))
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    decision: Mapped[str] = mapped_column(String(16), default="pending")
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class UserSettings(Base):
    """Per-user switches; a user without a row has the defaults."""

    __tablename__ = "user_settings"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    auto_approve: Mapped[bool] = mapped_column(Boolean, default=False)
    notify_fills: Mapped[bool] = mapped_column(Boolean, default=True)
    notify_errors: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
