"""Payout requests: reserve, approve, reject (the amount comes back) or mark paid.

A request moves its amount from the balance into ``reserved_minor`` with one conditional
UPDATE (``AffiliateRepository.reserve``), in the same transaction that files it, so two
requests at once or a double press can never reserve more than is available, on SQLite
(one writer) and on PostgreSQL (row lock, condition re-checked). A request key per
confirmation screen makes a repeated confirmation a no-op instead of a second request.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import Settings
from bot.domain.commissions import after_payout_paid, settle
from bot.domain.errors import ConflictError, ErrorCode, InvalidInputError, NotFoundError
from bot.domain.money import Money
from bot.domain.payout_destinations import normalize_destination
from db.models import Payout, User
from db.repositories.affiliates import AffiliateRepository
from db.repositories.payouts import PayoutRepository

logger = logging.getLogger(__name__)

HISTORY_PAGE_SIZE = 5
OPEN_LIST_LIMIT = 20
REASON_MAX = 500
TX_REFERENCE_MAX = 200


class PayoutState(StrEnum):
    REQUESTED = "requested"
    APPROVED = "approved"
    PAID = "paid"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True)
class PayoutDTO:
    id: int
    user_id: int
    amount_minor: int
    currency: str
    method: str
    destination: str
    state: PayoutState
    requested_at: datetime
    decided_at: datetime | None
    reject_reason: str | None
    paid_at: datetime | None
    tx_reference: str | None
    user_first_name: str = ""
    user_username: str | None = None

    @classmethod
    def of(cls, payout: Payout, user: User | None = None) -> PayoutDTO:
        return cls(
            id=payout.id,
            user_id=payout.user_id,
            amount_minor=payout.amount_minor,
            currency=payout.currency,
            method=payout.method,
            destination=payout.destination,
            state=PayoutState(payout.state),
            requested_at=payout.requested_at,
            decided_at=payout.decided_at,
            reject_reason=payout.reject_reason,
            paid_at=payout.paid_at,
            tx_reference=payout.tx_reference,
            user_first_name=user.first_name if user else "",
            user_username=user.username if user else None,
        )


@dataclass(frozen=True, slots=True)
class HistoryPage:
    items: list[PayoutDTO]
    page: int
    pages: int


@dataclass(frozen=True, slots=True)
class Balance:
    available_minor: int
    pending_minor: int


async def available_balance(session: AsyncSession, user_id: int, now: datetime) -> int:
    account = await settle(session, user_id, now)
    return account.balance_minor if account else 0


async def balance_overview(session: AsyncSession, user_id: int, now: datetime) -> Balance:
    available = await available_balance(session, user_id, now)
    pending = await AffiliateRepository(session).sum_in_state(user_id, "pending")
    return Balance(available_minor=available, pending_minor=pending)


def check_amount(settings: Settings, amount_minor: int, balance_minor: int) -> None:
    money = Money.from_settings(settings.affiliates)
    minimum = settings.affiliates.payout_minimum_minor
    if amount_minor < minimum:
        raise InvalidInputError(ErrorCode.PAYOUT_BELOW_MINIMUM, minimum=money.format(minimum))
    if amount_minor > balance_minor:
        raise InvalidInputError(ErrorCode.PAYOUT_ABOVE_BALANCE, balance=money.format(balance_minor))


async def request_payout(
    session: AsyncSession,
    settings: Settings,
    *,
    user_id: int,
    request_key: str,
    method: str,
    destination: str,
    amount_minor: int,
    now: datetime,
) -> PayoutDTO:
    """File a request and reserve its amount, or raise with the reason for the user."""
    if method not in settings.affiliates.payout_methods:
        raise InvalidInputError(ErrorCode.PAYOUT_METHOD_GONE)
    destination = normalize_destination(method, destination)
    repo = PayoutRepository(session)
    balance = await available_balance(session, user_id, now)
    check_amount(settings, amount_minor, balance)
    added = await repo.add(
        {
            "user_id": user_id,
            "request_key": request_key,
            "amount_minor": amount_minor,
            "currency": settings.affiliates.currency,
            "method": method,
            "destination": destination,
            "state": PayoutState.REQUESTED.value,
            "requested_at": now,
        }
    )
    if not added:
        raise ConflictError(ErrorCode.PAYOUT_ALREADY_SENT)
    if not await AffiliateRepository(session).reserve(user_id, amount_minor):
        money = Money.from_settings(settings.affiliates)
        balance = await _current_balance(session, user_id)
        raise InvalidInputError(ErrorCode.PAYOUT_ABOVE_BALANCE, balance=money.format(balance))
    filed = await repo.by_key(user_id, request_key)
    assert filed is not None
    payout, user = await _load(repo, filed.id)
    logger.info("payout %s requested by %s: %s minor", payout.id, user_id, amount_minor)
    return PayoutDTO.of(payout, user)


async def _current_balance(session: AsyncSession, user_id: int) -> int:
    account = await AffiliateRepository(session).lock(user_id)
    return account.balance_minor if account else 0


async def _load(repo: PayoutRepository, payout_id: int) -> tuple[Payout, User]:
    found = await repo.with_user(payout_id)
    if found is None:
        raise NotFoundError(ErrorCode.PAYOUT_NOT_FOUND)
    return found


def _refuse(payout: Payout) -> ConflictError:
    return ConflictError(ErrorCode.PAYOUT_STEP_DONE, id=payout.id, state=PayoutState(payout.state))


async def approve_payout(
    session: AsyncSession, payout_id: int, *, admin_id: int, now: datetime
) -> PayoutDTO:
    repo = PayoutRepository(session)
    payout, _ = await _load(repo, payout_id)
    if not await repo.transition(
        payout_id, ("requested",), "approved", decided_at=now, decided_by=admin_id
    ):
        payout, _ = await _load(repo, payout_id)
        raise _refuse(payout)
    payout, user = await _load(repo, payout_id)
    logger.info("payout %s approved by %s", payout_id, admin_id)
    return PayoutDTO.of(payout, user)


async def reject_payout(
    session: AsyncSession, payout_id: int, *, admin_id: int, reason: str, now: datetime
) -> PayoutDTO:
    reason = reason.strip()
    if not reason:
        raise InvalidInputError(ErrorCode.PAYOUT_REASON_EMPTY)
    if len(reason) > REASON_MAX:
        raise InvalidInputError(ErrorCode.REASON_TOO_LONG, limit=REASON_MAX)
    repo = PayoutRepository(session)
    payout, _ = await _load(repo, payout_id)
    await AffiliateRepository(session).lock(payout.user_id)
    if not await repo.transition(
        payout_id,
        ("requested", "approved"),
        "rejected",
        decided_at=now,
        decided_by=admin_id,
        reject_reason=reason,
    ):
        payout, _ = await _load(repo, payout_id)
        raise _refuse(payout)
    await AffiliateRepository(session).change(
        payout.user_id, balance_minor=payout.amount_minor, reserved_minor=-payout.amount_minor
    )
    payout, user = await _load(repo, payout_id)
    logger.info("payout %s rejected by %s", payout_id, admin_id)
    return PayoutDTO.of(payout, user)


async def mark_payout_paid(
    session: AsyncSession,
    payout_id: int,
    *,
    admin_id: int,
    tx_reference: str | None,
    now: datetime,
) -> PayoutDTO:
    tx_reference = (tx_reference or "").strip() or None
    if tx_reference is not None and len(tx_reference) > TX_REFERENCE_MAX:
        raise InvalidInputError(ErrorCode.REFERENCE_TOO_LONG, limit=TX_REFERENCE_MAX)
    repo = PayoutRepository(session)
    payout, _ = await _load(repo, payout_id)
    await AffiliateRepository(session).lock(payout.user_id)
    if not await repo.transition(
        payout_id, ("approved",), "paid", paid_at=now, tx_reference=tx_reference
    ):
        payout, _ = await _load(repo, payout_id)
        raise _refuse(payout)
    await AffiliateRepository(session).change(
        payout.user_id, reserved_minor=-payout.amount_minor, paid_minor=payout.amount_minor
    )
    await after_payout_paid(session, payout.user_id, now)
    payout, user = await _load(repo, payout_id)
    logger.info("payout %s marked paid by %s", payout_id, admin_id)
    return PayoutDTO.of(payout, user)


async def get_payout(session: AsyncSession, payout_id: int) -> PayoutDTO:
    payout, user = await _load(PayoutRepository(session), payout_id)
    return PayoutDTO.of(payout, user)


async def payout_history(session: AsyncSession, user_id: int, page: int) -> HistoryPage:
    repo = PayoutRepository(session)
    total = await repo.count_for_user(user_id)
    pages = max(math.ceil(total / HISTORY_PAGE_SIZE), 1)
    page = min(max(page, 0), pages - 1)
    items = await repo.page_for_user(user_id, page * HISTORY_PAGE_SIZE, HISTORY_PAGE_SIZE)
    return HistoryPage([PayoutDTO.of(item) for item in items], page, pages)


async def open_payouts(session: AsyncSession) -> tuple[list[PayoutDTO], int]:
    """Requests waiting for a decision or a payment, oldest first, and how many in all."""
    repo = PayoutRepository(session)
    rows = await repo.open_requests(OPEN_LIST_LIMIT)
    return [PayoutDTO.of(p, u) for p, u in rows], await repo.count_open()
