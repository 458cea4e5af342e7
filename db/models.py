"""ORM models. Every feature's tables live here so alembic sees one metadata."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
    text,
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
    """Updates accepted (claimed) by an instance, webhook or polling: a redelivered one is a no-op.

    The row is inserted, with the raw update, before Telegram is answered; it is marked
    handled with the update's writes (or in a batch after a read-only update), so a crash
    mid-processing leaves it pending (``handled_at`` NULL, payload kept) for recovery.
    See docs/operations.md. On SQLite ``update_id`` is the rowid (declared INTEGER), and
    only pending rows are indexed for recovery (migration 0009 says why).
    """

    __tablename__ = "processed_updates"
    __table_args__ = (
        Index(
            "ix_processed_updates_pending",
            "received_at",
            sqlite_where=text("handled_at IS NULL"),
            postgresql_where=text("handled_at IS NULL"),
        ),
    )

    update_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    handled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    payload: Mapped[str | None] = mapped_column(Text)
    # Failed attempts in a row (bot/intake/inbox.py): the class of the last error (never its
    # message, which may quote user input), and when the next attempt is due.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    last_error: Mapped[str | None] = mapped_column(String(100))
    first_failed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retry_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeadLetter(Base):
    """An update that failed ``inbox.max_attempts`` times in a row, kept for an admin.

    Its ``processed_updates`` row is settled (handled, payload dropped) when it lands here,
    so neither recovery nor a redelivery runs it; ``/retry <update_id>`` puts it back
    (``retried_at``/``retried_by`` until that attempt ends). See docs/operations.md.
    """

    __tablename__ = "dead_letters"

    update_id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer(), "sqlite"), primary_key=True, autoincrement=False
    )
    payload: Mapped[str] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(BigInteger)
    attempts: Mapped[int] = mapped_column(Integer)
    first_failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_failed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_error: Mapped[str] = mapped_column(String(100))
    retried_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    retried_by: Mapped[int | None] = mapped_column(BigInteger)


# --- affiliates and checkout ---


class Affiliate(Base):
    """A user's referral token and money account (minor units of the accounting currency).

    ``balance_minor`` is what may be requested now: matured commissions minus payout
    requests and reversals (negative after a paid-out commission was refunded);
    ``reserved_minor`` sits in payout requests not yet paid or rejected; ``paid_minor`` has
    been paid out. Every change is an atomic SQL increment; a request reserves with a
    conditional UPDATE, so concurrent requests can never overdraw (bot/domain/payouts.py).
    """

    __tablename__ = "affiliates"
    __table_args__ = (
        CheckConstraint("reserved_minor >= 0", name="reserved_not_negative"),
        CheckConstraint("paid_minor >= 0", name="paid_not_negative"),
    )

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    token: Mapped[str] = mapped_column(String(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    balance_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    reserved_minor: Mapped[int] = mapped_column(BigInteger, default=0)
    paid_minor: Mapped[int] = mapped_column(BigInteger, default=0)


class Referral(Base):
    """One per referred user (first touch): who brought them and when they last traded."""

    __tablename__ = "referrals"

    referred_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    referrer_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_fill_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Subscription(Base):
    """A user's paid access: live while ``expires_at`` is in the future."""

    __tablename__ = "subscriptions"

    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    plan_code: Mapped[str] = mapped_column(String(16))
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Payment(Base):
    """A Telegram Stars payment, credited once per ``charge_id``."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    charge_id: Mapped[str] = mapped_column(String(255), unique=True)
    plan_code: Mapped[str] = mapped_column(String(16))
    stars: Mapped[int] = mapped_column(Integer)
    days: Mapped[int] = mapped_column(Integer)
    paid_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    refunded_by: Mapped[int | None] = mapped_column(BigInteger)


class Commission(Base):
    """What an affiliate earned from one source (a payment or a fill), at most once each.

    ``quantity`` is the Stars paid or the lots filled, ``rate`` the tier's payment share in
    basis points or its amount per lot, fixed when the commission is created.
    """

    __tablename__ = "commissions"
    __table_args__ = (
        UniqueConstraint("kind", "source_id"),
        Index("ix_commissions_affiliate_id_state", "affiliate_id", "state"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    affiliate_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    referred_user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    kind: Mapped[str] = mapped_column(String(16))
    source_id: Mapped[str] = mapped_column(String(255))
    quantity: Mapped[Decimal] = mapped_column(Numeric(20, 8))
    rate: Mapped[int] = mapped_column(Integer)
    tier: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    state: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    available_at: Mapped[datetime] = mapped_column(UTCDateTime())
    settled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class Payout(Base):
    """A payout request: requested -> approved -> paid, or rejected (the amount comes back)."""

    __tablename__ = "payouts"
    __table_args__ = (
        UniqueConstraint("user_id", "request_key"),
        CheckConstraint("amount_minor > 0", name="amount_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(BigInteger, ForeignKey("users.id"), index=True)
    # One per confirmation screen, so a double press cannot file the request twice.
    request_key: Mapped[str] = mapped_column(String(32))
    amount_minor: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(8))
    method: Mapped[str] = mapped_column(String(32))
    destination: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), index=True)
    requested_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    decided_by: Mapped[int | None] = mapped_column(BigInteger)
    reject_reason: Mapped[str | None] = mapped_column(String(500))
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    tx_reference: Mapped[str | None] = mapped_column(String(200))


# --- signals ---

# Prices: up to 10 integer and 10 decimal digits. SQLite keeps NUMERIC as a float, which
# holds the 15 significant digits the validator allows exactly (bot/domain/signal_rules.py).
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
    # The provider's market price when it made the signal (EA_PROTOCOL 5.6).
    reference_price: Mapped[Decimal | None] = mapped_column(PRICE)
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
    notify_closes: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Device(Base):
    """An Expert Advisor in a trading terminal, owned by a user.

    No secret is stored: the device's secret is derived from MASTER_KEY, ``public_id`` and
    ``key_version`` (bot/execution/device_keys.py), so a copy of this table signs nothing.
    A revoked device keeps its row (history refers to it) but never authenticates again.
    """

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(36), unique=True)
    owner_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String(8))
    key_version: Mapped[int] = mapped_column(Integer, default=1)
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    lot_size: Mapped[Decimal] = mapped_column(Numeric(18, 8))
    symbol_map: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    symbol_prefix: Mapped[str] = mapped_column(String(16), default="")
    symbol_suffix: Mapped[str] = mapped_column(String(16), default="")
    max_signal_age: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    key_rotated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_seen_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Trade management (EA_PROTOCOL 5.2), sent to v1.1 devices only; a v1 device trades
    # ``lot_size`` with every take profit in one list, as before.
    # Sizing: ``fixed`` (lot_size), ``risk_percent`` (risk_percent of risk_of) or
    # ``risk_money`` (risk_money_minor, hundredths of the account currency); max_lots caps
    # every mode (NULL: no cap of ours).
    sizing_mode: Mapped[str] = mapped_column(String(16), default="fixed")
    risk_percent: Mapped[Decimal | None] = mapped_column(Numeric(8, 4))
    risk_of: Mapped[str] = mapped_column(String(8), default="balance")
    risk_money_minor: Mapped[int | None] = mapped_column(BigInteger)
    max_lots: Mapped[Decimal | None] = mapped_column(Numeric(18, 8))
    # Take profits: ``first`` (one position, take_profit[0]) or ``split`` (one leg per TP);
    # tp_shares: the owner's shares as decimal strings (NULL: equal shares).
    tp_mode: Mapped[str] = mapped_column(String(8), default="first")
    tp_shares: Mapped[list[str] | None] = mapped_column(JSON)
    # Breakeven after leg n (0-based; NULL: off) with an offset; trailing (NULL: off).
    breakeven_after_leg: Mapped[int | None] = mapped_column(Integer)
    breakeven_offset_points: Mapped[int] = mapped_column(Integer, default=0)
    trailing_distance_points: Mapped[int | None] = mapped_column(Integer)
    trailing_step_points: Mapped[int] = mapped_column(Integer, default=0)
    trailing_start: Mapped[str] = mapped_column(String(16), default="at_open")
    # Guards for market opens (NULL: off).
    max_spread_points: Mapped[int | None] = mapped_column(Integer)
    max_distance_points: Mapped[int | None] = mapped_column(Integer)
    # Protections, checked by the server before an open is issued (NULL/empty: off).
    max_open_positions: Mapped[int | None] = mapped_column(Integer)
    daily_loss_limit_minor: Mapped[int | None] = mapped_column(BigInteger)
    symbols_allowed: Mapped[list[str]] = mapped_column(JSON, default=list)
    symbols_denied: Mapped[list[str]] = mapped_column(JSON, default=list)
    # {"days": [0..6 (Monday 0)], "start": "HH:MM", "end": "HH:MM"} in UTC; NULL: any time.
    trading_hours: Mapped[dict[str, object] | None] = mapped_column(JSON)
    loss_limit_tripped_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    loss_limit_resumed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class DeviceState(Base):
    """The latest ``POST /api/v1/ea/state`` of a device (EA_PROTOCOL 5.1); each replaces the last.

    A device with a row whose ``protocol`` is ``1.1`` is a v1.1 device: its opens carry the
    fields of 5.2 and it may get ``close_all``. Money figures are the account currency's
    decimals as the EA sent them; ``positions`` and ``symbols`` are the EA's lists, as sent.
    """

    __tablename__ = "device_states"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    protocol: Mapped[str] = mapped_column(String(8))
    ea_name: Mapped[str] = mapped_column(String(64))
    ea_version: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String(16))
    build: Mapped[int | None] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(8))
    balance: Mapped[Decimal] = mapped_column(Numeric(20, 8))
    equity: Mapped[Decimal] = mapped_column(Numeric(20, 8))
    margin_free: Mapped[Decimal] = mapped_column(Numeric(20, 8))
    leverage: Mapped[int] = mapped_column(Integer)
    trade_allowed: Mapped[bool] = mapped_column(Boolean)
    company: Mapped[str | None] = mapped_column(String(128))
    server: Mapped[str | None] = mapped_column(String(128))
    positions: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    symbols: Mapped[list[dict[str, object]]] = mapped_column(JSON, default=list)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DeviceAlert(Base):
    """A health alert of one device and one cause, told to the owner once per cause.

    ``cause``: never_seen, offline, bad_signature, stale_clock, trade_disabled. ``count``
    and ``first_at`` count occurrences in the current window; ``raised_at`` is set when
    the owner was told, ``cleared_at`` when the cause went away (a new occurrence after
    that may be told again). ``detail`` holds the figures the message names.
    """

    __tablename__ = "device_alerts"

    device_id: Mapped[int] = mapped_column(
        ForeignKey("devices.id", ondelete="CASCADE"), primary_key=True
    )
    cause: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(Integer, default=0)
    first_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    raised_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cleared_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    detail: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


# --- instructions and execution reports ---


class Instruction(Base):
    """What one device is told to do about one signal, frozen when it is issued.

    ``action``: open, modify, close or cancel. The payload columns an action does not use
    stay NULL (``symbol`` is always the device's mapped symbol). ``state`` is pending until
    the device reports on it, then acked, filled or errored (its latest report).
    """

    __tablename__ = "instructions"
    __table_args__ = (
        Index("ix_instructions_device_id", "device_id"),
        # Polls look for pending instructions only; a report on one that is no longer
        # pending (acked → filled) leaves this index alone (migration 0015).
        Index(
            "ix_instructions_pending",
            "device_id",
            "id",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_instructions_signal_id_device_id", "signal_id", "device_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    # NULL only for close_all, which belongs to no signal.
    signal_id: Mapped[int | None] = mapped_column(ForeignKey("signals.id", ondelete="CASCADE"))
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    action: Mapped[str] = mapped_column(String(16))
    symbol: Mapped[str | None] = mapped_column(String(64))
    side: Mapped[str | None] = mapped_column(String(4))
    order_type: Mapped[str | None] = mapped_column(String(8))
    entry: Mapped[Decimal | None] = mapped_column(PRICE)
    stop_loss: Mapped[Decimal | None] = mapped_column(PRICE)
    take_profit: Mapped[list[str] | None] = mapped_column(JSON)
    volume: Mapped[Decimal | None] = mapped_column(Numeric(18, 8))
    fraction: Mapped[Decimal | None] = mapped_column(Numeric(12, 10))
    comment: Mapped[str | None] = mapped_column(String(500))
    issued_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(16), default="pending")
    # v1.1 opens only (EA_PROTOCOL 5.2), frozen at issue time; NULL for a v1 device.
    sizing: Mapped[dict[str, object] | None] = mapped_column(JSON)
    legs: Mapped[list[dict[str, object]] | None] = mapped_column(JSON)
    management: Mapped[dict[str, object] | None] = mapped_column(JSON)
    guards: Mapped[dict[str, object] | None] = mapped_column(JSON)
    # state ``skipped``: a protection refused the open (never served); the reason's code.
    skip_reason: Mapped[str | None] = mapped_column(String(32))


class ExecutionRecord(Base):
    """One report of a device on one of its instructions (ack, fill or error).

    ``report_id`` is the EA's own id, unique per device: a retry finds the stored record
    (same ``content_hash``) instead of storing it twice.
    """

    __tablename__ = "execution_records"
    __table_args__ = (
        UniqueConstraint("device_id", "report_id"),
        Index("ix_execution_records_signal_id_device_id", "signal_id", "device_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    report_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))
    instruction_id: Mapped[int] = mapped_column(
        ForeignKey("instructions.id", ondelete="CASCADE"), index=True
    )
    # NULL for a report on close_all, which belongs to no signal.
    signal_id: Mapped[int | None] = mapped_column(ForeignKey("signals.id", ondelete="CASCADE"))
    ticket: Mapped[int | None] = mapped_column(BigInteger)
    price: Mapped[Decimal | None] = mapped_column(PRICE)
    volume: Mapped[Decimal | None] = mapped_column(Numeric(18, 8))
    profit: Mapped[Decimal | None] = mapped_column(Numeric(20, 8))
    code: Mapped[int | None] = mapped_column(BigInteger)
    message: Mapped[str | None] = mapped_column(String(500))
    # The leg of a split open a fill is of (EA_PROTOCOL 5.2); NULL for one position.
    leg: Mapped[int | None] = mapped_column(Integer)
    executed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    content_hash: Mapped[str] = mapped_column(String(64))


class PositionEvent(Base):
    """A position event of a v1.1 device (EA_PROTOCOL 5.4): closed, sl_moved or tp_moved.

    ``instruction_id`` is the ``open`` the position belongs to. ``report_id`` follows the
    execution records' idempotency rules (201 / 200 duplicate with the same
    ``content_hash`` / 409 otherwise) in a space of its own: unique among the device's
    events (bot/execution/report_desk.py). ``reason`` is set for ``closed`` (tp, sl,
    stop_out, manual, close_all, expert).
    """

    __tablename__ = "position_events"
    __table_args__ = (
        UniqueConstraint("device_id", "report_id"),
        Index("ix_position_events_signal_id_device_id", "signal_id", "device_id"),
        Index("ix_position_events_device_id_executed_at", "device_id", "executed_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"))
    report_id: Mapped[str] = mapped_column(String(64))
    instruction_id: Mapped[int] = mapped_column(
        ForeignKey("instructions.id", ondelete="CASCADE"), index=True
    )
    signal_id: Mapped[int | None] = mapped_column(ForeignKey("signals.id", ondelete="CASCADE"))
    leg: Mapped[int | None] = mapped_column(Integer)
    ticket: Mapped[int] = mapped_column(BigInteger)
    event: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(16))
    price: Mapped[Decimal | None] = mapped_column(PRICE)
    volume: Mapped[Decimal | None] = mapped_column(Numeric(18, 8))
    profit: Mapped[Decimal | None] = mapped_column(Numeric(20, 8))
    stop_loss: Mapped[Decimal | None] = mapped_column(PRICE)
    take_profit: Mapped[Decimal | None] = mapped_column(PRICE)
    executed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    received_at: Mapped[datetime] = mapped_column(UTCDateTime())
    content_hash: Mapped[str] = mapped_column(String(64))


# --- outbox ---


class OutboxMessage(Base):
    """A message the product owes a user, kept until Telegram has accepted it.

    Written in the transaction of the change it tells about (so it exists only if that
    change committed), sent after the commit by the outbox worker (bot/infra/outbox.py).
    ``kind``: ``message`` (text stored here), ``edit`` (of ``message_id``), ``approval``
    (a signal's message for ``approval_id``, rendered when sent) or ``refresh`` (that
    message re-rendered and edited in place). ``state``: pending until sent, expired
    (``not_after`` passed first), blocked (the user blocked the bot) or failed (Telegram
    refused it for good). A worker leases due rows (``lease_owner``, ``lease_until``) so
    that two instances never send the same row; ``dedupe_key`` merges pending refreshes of
    one message. docs/operations.md explains the delivery guarantees.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_due",
            "next_attempt_at",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        Index(
            "ix_outbox_chat_pending",
            "chat_id",
            "id",
            sqlite_where=text("state = 'pending'"),
            postgresql_where=text("state = 'pending'"),
        ),
        Index("ix_outbox_created_at", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    chat_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(16))
    text: Mapped[str | None] = mapped_column(Text)
    reply_markup: Mapped[dict[str, object] | None] = mapped_column(JSON)
    message_id: Mapped[int | None] = mapped_column(BigInteger)
    approval_id: Mapped[int | None] = mapped_column(
        ForeignKey("approvals.id", ondelete="CASCADE"), index=True
    )
    dedupe_key: Mapped[str | None] = mapped_column(String(64), unique=True)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    not_after: Mapped[datetime] = mapped_column(UTCDateTime())
    lease_owner: Mapped[str | None] = mapped_column(String(48))
    lease_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    sent_message_id: Mapped[int | None] = mapped_column(BigInteger)
