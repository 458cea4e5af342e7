"""Devices in the chat: the owner's list, creation, settings, key rotation and revocation.

Every call re-checks that the device exists, is not revoked and belongs to the caller, so
a forged or stale button press changes nothing. Changes that the side server must see
(a rotated or revoked key, settings that decide what is pending) are announced after the
commit: the key cache forgets the device and its long polls re-check.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.config import DevicesSettings
from bot.domain.errors import ConflictError, ErrorCode, InvalidInputError, NotFoundError
from bot.execution.device_keys import new_device_id
from db.hooks import after_commit
from db.ids import sortable_id
from db.models import Device, DeviceState, Instruction
from db.repositories.devices import DeviceRepository

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.execution.device_activity import DeviceActivity
    from bot.execution.device_hub import DeviceHub
    from bot.execution.device_keys import DeviceKeyring
    from bot.infra.clock import Clock

NAME_MAX_CHARS = 32
SYMBOL_RE = re.compile(r"^[A-Za-z0-9._#-]{1,32}$")
AFFIX_RE = re.compile(r"^[A-Za-z0-9._#-]{1,16}$")
MAX_SYMBOL_PAIRS = 50
_LOT_RE = re.compile(r"^[0-9]{1,6}(?:[.,][0-9]{1,8})?$")
_AGE_RE = re.compile(r"^([0-9]{1,6})\s*(s|sec|secs|seconds?|m|min|mins|minutes?|h|hours?)?$")
_AGE_UNITS = {"m": 60, "h": 3600}
_PAIR_SEPARATORS = re.compile(r"[\s,;]+")
_PAIR_EQUALS = re.compile(r"\s*=\s*")
CLEAR = "-"


class Platform(StrEnum):
    MT4 = "mt4"
    MT5 = "mt5"

    @property
    def label(self) -> str:
        return self.value.upper()


def map_symbol(symbol: str, pairs: dict[str, str], prefix: str, suffix: str) -> str:
    """The provider's symbol as this device's broker names it.

    An explicit pair is used exactly as written (keys are compared in upper case);
    every other symbol gets the prefix and the suffix.
    """
    explicit = pairs.get(symbol.upper())
    return explicit if explicit is not None else f"{prefix}{symbol}{suffix}"


@dataclass(frozen=True, slots=True)
class DeviceDTO:
    pk: int
    public_id: str
    owner_id: int
    name: str
    platform: Platform
    key_version: int
    paused: bool
    lot_size: Decimal
    symbol_map: dict[str, str]
    symbol_prefix: str
    symbol_suffix: str
    max_signal_age: int
    created_at: datetime
    key_rotated_at: datetime | None
    last_seen_at: datetime | None
    # How it sizes (the list shows it; the rest of the trade settings are read where
    # they are shown): fixed (lot_size), risk_percent (of risk_of) or risk_money (in
    # hundredths of the account currency).
    sizing_mode: str = "fixed"
    risk_percent: Decimal | None = None
    risk_of: str = "balance"
    risk_money_minor: int | None = None

    @classmethod
    def from_model(cls, device: Device | Row[Any], *, last_seen_at: datetime | None) -> DeviceDTO:
        """From the ORM object or a row of the devices table (the same attribute names)."""
        return cls(
            pk=device.id,
            public_id=device.public_id,
            owner_id=device.owner_id,
            name=device.name,
            platform=Platform(device.platform),
            key_version=device.key_version,
            paused=device.paused,
            lot_size=device.lot_size,
            symbol_map=dict(device.symbol_map),
            symbol_prefix=device.symbol_prefix,
            symbol_suffix=device.symbol_suffix,
            max_signal_age=device.max_signal_age,
            created_at=device.created_at,
            key_rotated_at=device.key_rotated_at,
            last_seen_at=last_seen_at,
            sizing_mode=device.sizing_mode,
            risk_percent=device.risk_percent,
            risk_of=device.risk_of,
            risk_money_minor=device.risk_money_minor,
        )

    def map_symbol(self, symbol: str) -> str:
        return map_symbol(symbol, self.symbol_map, self.symbol_prefix, self.symbol_suffix)

    def is_online(self, now: datetime, window_s: int) -> bool:
        return self.last_seen_at is not None and now - self.last_seen_at <= timedelta(
            seconds=window_s
        )


@dataclass(frozen=True, slots=True)
class Credentials:
    device_id: str
    secret: str


# --- parsing what the owner types: a clear reason for anything refused ---


def parse_name(text: str) -> str:
    name = text.strip()
    if not 1 <= len(name) <= NAME_MAX_CHARS:
        raise InvalidInputError(ErrorCode.NAME_LENGTH)
    if not name.isprintable():
        raise InvalidInputError(ErrorCode.NAME_ONE_LINE)
    if name.startswith("/"):
        raise InvalidInputError(ErrorCode.NAME_SLASH)
    return name


def parse_lot_size(text: str, settings: DevicesSettings) -> Decimal:
    problem = InvalidInputError(
        ErrorCode.LOT_SIZE_INVALID, min=settings.min_lot_size, max=settings.max_lot_size
    )
    candidate = text.strip()
    if not _LOT_RE.match(candidate):
        raise problem
    try:
        value = Decimal(candidate.replace(",", "."))
    except InvalidOperation:
        raise problem from None
    if not settings.min_lot_size <= value <= settings.max_lot_size:
        raise problem
    return value


def parse_max_age(text: str, settings: DevicesSettings) -> int:
    match = _AGE_RE.match(text.strip().lower())
    seconds = int(match.group(1)) * _AGE_UNITS.get((match.group(2) or "s")[0], 1) if match else 0
    if not settings.min_max_signal_age <= seconds <= settings.max_max_signal_age:
        raise InvalidInputError(
            ErrorCode.MAX_AGE_INVALID,
            min=settings.min_max_signal_age,
            max=settings.max_max_signal_age,
        )
    return seconds


def parse_symbol_pairs(text: str) -> dict[str, str]:
    text = text.strip()
    if text == CLEAR:
        return {}
    pairs: dict[str, str] = {}
    for item in _PAIR_SEPARATORS.split(_PAIR_EQUALS.sub("=", text)):
        if not item:
            continue
        source, equals, target = item.partition("=")
        if not equals or not SYMBOL_RE.match(source) or not SYMBOL_RE.match(target):
            raise InvalidInputError(ErrorCode.PAIR_INVALID, item=item[:40])
        key = source.upper()
        if key in pairs:
            raise InvalidInputError(ErrorCode.PAIR_DUPLICATE, symbol=key)
        pairs[key] = target
    if not pairs:
        raise InvalidInputError(ErrorCode.PAIR_INVALID, item=text[:40])
    if len(pairs) > MAX_SYMBOL_PAIRS:
        raise InvalidInputError(ErrorCode.PAIRS_TOO_MANY, limit=MAX_SYMBOL_PAIRS)
    return pairs


def parse_affix(text: str) -> str:
    text = text.strip()
    if text == CLEAR:
        return ""
    if not AFFIX_RE.match(text):
        raise InvalidInputError(ErrorCode.AFFIX_INVALID)
    return text


class DeviceServices(Protocol):
    """The long-lived services a DeviceService works with (:class:`DeviceTools` has
    them, and so has the container)."""

    @property
    def settings(self) -> Settings: ...
    @property
    def clock(self) -> Clock: ...
    @property
    def device_keys(self) -> DeviceKeyring: ...
    @property
    def device_hub(self) -> DeviceHub: ...
    @property
    def device_activity(self) -> DeviceActivity: ...


@dataclass(frozen=True, slots=True)
class DeviceTools:
    """What DeviceService needs, as one typed dependency: handlers take it by name
    (``device_tools``) and make a DeviceService on the update's session."""

    settings: Settings
    clock: Clock
    device_keys: DeviceKeyring
    device_hub: DeviceHub
    device_activity: DeviceActivity


class DeviceService:
    """The owner's view of their devices; one instance per update, on its session."""

    def __init__(self, session: AsyncSession, container: DeviceServices) -> None:
        self.session = session
        self.repo = DeviceRepository(session)
        self.container = container
        self.settings = container.settings.devices

    @property
    def limit(self) -> int:
        return self.settings.max_per_user

    async def list_owned(self, owner_id: int) -> list[DeviceDTO]:
        return [self._dto(row) for row in await self.repo.active_rows_for_owner(owner_id)]

    async def get(self, owner_id: int, device_pk: int) -> DeviceDTO:
        return self._dto(await self._owned(owner_id, device_pk))

    async def ensure_room(self, owner_id: int) -> None:
        """Refuse, with the reason, when the owner has no room for another device."""
        if len(await self.repo.active_for_owner(owner_id)) >= self.limit:
            raise ConflictError(ErrorCode.DEVICE_LIMIT_REACHED, limit=self.limit)

    async def check_name(self, owner_id: int, text: str, *, exclude_pk: int | None = None) -> str:
        """The cleaned name, if valid and unused by the owner's other devices."""
        name = parse_name(text)
        devices = await self.repo.active_for_owner(owner_id)
        self._ensure_unique(name, devices, exclude_pk)
        return name

    async def create(
        self, owner_id: int, name: str, platform: Platform
    ) -> tuple[DeviceDTO, Credentials]:
        await self.repo.lock_owner(owner_id)
        devices = await self.repo.active_for_owner(owner_id)
        if len(devices) >= self.limit:
            raise ConflictError(ErrorCode.DEVICE_LIMIT_REACHED, limit=self.limit)
        name = parse_name(name)
        self._ensure_unique(name, devices, None)
        device = await self.repo.add(
            Device(
                public_id=new_device_id(),
                owner_id=owner_id,
                name=name,
                platform=platform.value,
                key_version=1,
                paused=False,
                lot_size=self.settings.default_lot_size,
                symbol_map={},
                symbol_prefix="",
                symbol_suffix="",
                max_signal_age=self.settings.default_max_signal_age,
                created_at=self.now(),
            )
        )
        self._announce(device, key_changed=True)
        return self._dto(device), self._credentials(device)

    async def rename(self, owner_id: int, device_pk: int, text: str) -> DeviceDTO:
        await self.repo.lock_owner(owner_id)
        device = await self._owned(owner_id, device_pk)
        name = parse_name(text)
        self._ensure_unique(name, await self.repo.active_for_owner(owner_id), device.id)
        device.name = name
        return await self._saved(device)

    async def set_lot_size(self, owner_id: int, device_pk: int, text: str) -> DeviceDTO:
        device = await self._owned(owner_id, device_pk)
        device.lot_size = parse_lot_size(text, self.settings)
        return await self._saved(device)

    async def set_max_signal_age(self, owner_id: int, device_pk: int, text: str) -> DeviceDTO:
        device = await self._owned(owner_id, device_pk)
        device.max_signal_age = parse_max_age(text, self.settings)
        return await self._saved(device)

    async def set_symbol_pairs(self, owner_id: int, device_pk: int, text: str) -> DeviceDTO:
        device = await self._owned(owner_id, device_pk)
        device.symbol_map = parse_symbol_pairs(text)
        return await self._saved(device)

    async def set_symbol_prefix(self, owner_id: int, device_pk: int, text: str) -> DeviceDTO:
        device = await self._owned(owner_id, device_pk)
        device.symbol_prefix = parse_affix(text)
        return await self._saved(device)

    async def set_symbol_suffix(self, owner_id: int, device_pk: int, text: str) -> DeviceDTO:
        device = await self._owned(owner_id, device_pk)
        device.symbol_suffix = parse_affix(text)
        return await self._saved(device)

    async def update(
        self, owner_id: int, device_pk: int, change: Callable[[Device], None]
    ) -> DeviceDTO:
        """Apply ``change`` to the owner's device (it may refuse with InvalidInputError
        before it sets anything); the device after it."""
        device = await self._owned(owner_id, device_pk)
        change(device)
        return await self._saved(device)

    async def set_paused(self, owner_id: int, device_pk: int, paused: bool) -> DeviceDTO:
        device = await self._owned(owner_id, device_pk)
        device.paused = paused
        return await self._saved(device)

    async def rotate_key(
        self, owner_id: int, device_pk: int, *, seen_version: int
    ) -> tuple[DeviceDTO, Credentials]:
        """A new secret; ``seen_version`` makes a second press of one confirm button a no-op."""
        device = await self._owned(owner_id, device_pk)
        if device.key_version != seen_version:
            raise NotFoundError(ErrorCode.NOT_AVAILABLE)
        device.key_version += 1
        device.key_rotated_at = self.now()
        await self.session.flush()
        self._announce(device, key_changed=True)
        return self._dto(device), self._credentials(device)

    async def revoke(self, owner_id: int, device_pk: int) -> DeviceDTO:
        device = await self._owned(owner_id, device_pk)
        device.revoked_at = self.now()
        await self.session.flush()
        self._announce(device, key_changed=True)
        return self._dto(device)

    async def _owned(self, owner_id: int, device_pk: int) -> Device:
        device = await self.repo.get_active(owner_id, device_pk)
        if device is None:
            raise NotFoundError(ErrorCode.NOT_AVAILABLE)
        return device

    async def _saved(self, device: Device) -> DeviceDTO:
        await self.session.flush()
        self._announce(device, key_changed=False)
        return self._dto(device)

    def _announce(self, device: Device, *, key_changed: bool) -> None:
        """After the commit: drop the cached key if it changed; let the polls re-check."""
        keys, hub = self.container.device_keys, self.container.device_hub
        public_id, pk = device.public_id, device.id
        if key_changed:
            keys.forget(self.session, public_id)
        after_commit(self.session, lambda: hub.notify(pk))

    @staticmethod
    def _ensure_unique(name: str, devices: list[Device], exclude_pk: int | None) -> None:
        wanted = name.casefold()
        for other in devices:
            if other.id != exclude_pk and other.name.casefold() == wanted:
                raise InvalidInputError(ErrorCode.NAME_TAKEN, name=name)

    def _credentials(self, device: Device) -> Credentials:
        secret = self.container.device_keys.secret(device.public_id, device.key_version)
        return Credentials(device_id=device.public_id, secret=secret)

    def _dto(self, device: Device | Row[Any]) -> DeviceDTO:
        last_seen = self.container.device_activity.last_seen(device.id, device.last_seen_at)
        return DeviceDTO.from_model(device, last_seen_at=last_seen)

    def now(self) -> datetime:
        return self.container.clock()


async def issue_close_all(
    session: AsyncSession,
    *,
    owner_id: int,
    device_pk: int,
    now: datetime,
    wake: Callable[[int], None] | None,
) -> Instruction:
    """A ``close_all`` (EA_PROTOCOL 5.3) for the owner's v1.1 device, pending at once; its
    long polls are woken after the commit (``wake``: DeviceHub.notify, as issuing does).
    One pending at a time: a second confirmation returns the first."""
    device = await DeviceRepository(session).get_active(owner_id, device_pk)
    if device is None:
        raise NotFoundError(ErrorCode.NOT_AVAILABLE)
    state = await session.get(DeviceState, device.id)
    if state is None or state.protocol != "1.1":
        raise ConflictError(ErrorCode.CLOSE_ALL_NEEDS_UPDATE)
    pending = await session.scalar(
        select(Instruction)
        .where(
            Instruction.device_id == device.id,
            Instruction.action == "close_all",
            Instruction.state == "pending",
        )
        .limit(1)
    )
    if pending is not None:
        return pending
    instruction = Instruction(
        public_id=sortable_id("ins_"),
        signal_id=None,
        device_id=device.id,
        action="close_all",
        symbol=None,
        issued_at=now,
        state="pending",
    )
    session.add(instruction)
    await session.flush()
    if wake is not None:
        after_commit(session, lambda: wake(device_pk))
    return instruction
