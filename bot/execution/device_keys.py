"""Device credentials (EA_PROTOCOL.md section 1) and the cache of verification keys.

A device's secret is never stored. It is derived when needed:

    secret = base64url_nopad(HMAC-SHA256(MASTER_KEY, label \\0 device_id \\0 key_version))

43 characters of ``[A-Za-z0-9_-]`` from 32 bytes; the EA's HMAC key is that string's
ASCII bytes. The database holds only ``device_id`` and ``key_version``, which sign
nothing without MASTER_KEY. Rotating bumps ``key_version``, so the old secret stops
matching at once; revoking marks the row, which is then never loaded again.

:class:`DeviceKeyring` derives each device's key once and keeps it in memory, so a
signed request costs no derivation and, when the key is cached, no database read.
Changes reach the cache through :meth:`DeviceKeyring.forget` (after the commit, on every
instance: bot/infra/pubsub.py).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets
import string
import time
from collections import OrderedDict
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.config import ConfigError
from bot.infra.pubsub import Broadcast
from db.models import Device

DEVICE_ID_RE = re.compile(r"^dev_[A-Za-z0-9]{16,32}$")
DEVICE_ID_RANDOM_CHARS = 24  # 62**24: about 143 bits
MIN_MASTER_KEY_CHARS = 32
KEY_CHANNEL = "device-keys"
_ALPHABET = string.ascii_letters + string.digits
_LABEL = b"signalbridge/device-secret/v1"


def new_device_id() -> str:
    return "dev_" + "".join(secrets.choice(_ALPHABET) for _ in range(DEVICE_ID_RANDOM_CHARS))


def derive_secret(master_key: bytes, device_id: str, key_version: int) -> str:
    """The secret shown to the owner (and, as ASCII bytes, the request-signing key)."""
    message = b"\0".join((_LABEL, device_id.encode("ascii"), str(key_version).encode("ascii")))
    digest = hmac.digest(master_key, message, hashlib.sha256)
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@dataclass(frozen=True, slots=True)
class DeviceIdentity:
    """The authenticated device of a signed request (``request[DEVICE]``)."""

    pk: int
    public_id: str
    owner_id: int
    key_version: int


@dataclass(frozen=True, slots=True)
class DeviceKey:
    device: DeviceIdentity
    key: bytes
    # HMAC-SHA256 already keyed with ``key``: a copy per request skips the key set-up.
    mac: hmac.HMAC

    @classmethod
    def of(cls, device: DeviceIdentity, secret: str) -> DeviceKey:
        key = secret.encode("ascii")
        return cls(device, key, hmac.new(key, digestmod=hashlib.sha256))

    def signature(self, message: bytes) -> str:
        """Lowercase hex HMAC-SHA256 of ``message`` under this device's key."""
        mac = self.mac.copy()
        mac.update(message)
        return mac.hexdigest()


class DeviceKeyring:
    """Derives device secrets and caches the verification key of each active device.

    Unknown or revoked ids are remembered for ``unknown_ttl`` seconds too, so an EA that
    keeps polling with revoked credentials costs no database read per request. Both maps
    are bounded (least recently used entries go first).
    """

    def __init__(
        self,
        master_key: str,
        sessionmaker: async_sessionmaker[AsyncSession],
        broadcast: Broadcast,
        *,
        max_entries: int = 100_000,
        unknown_ttl: float = 60.0,
    ) -> None:
        if len(master_key) < MIN_MASTER_KEY_CHARS:
            raise ConfigError(
                f"MASTER_KEY is too short: use at least {MIN_MASTER_KEY_CHARS} random characters"
            )
        self._master_key = master_key.encode("utf-8")
        self._sessionmaker = sessionmaker
        self._broadcast = broadcast
        self._max_entries = max_entries
        self._unknown_ttl = unknown_ttl
        self._known: OrderedDict[str, DeviceKey] = OrderedDict()
        self._unknown: OrderedDict[str, float] = OrderedDict()
        # Bumped by every invalidation: a load that began before one is not cached.
        self._epoch = 0
        broadcast.subscribe(KEY_CHANNEL, self._drop)
        broadcast.on_resync(self._clear)

    def secret(self, public_id: str, key_version: int) -> str:
        return derive_secret(self._master_key, public_id, key_version)

    def forget(self, public_id: str) -> None:
        """Drop the cached key of ``public_id`` here and on every instance.

        Call it after the commit that changed the device (db.hooks.after_commit).
        """
        self._broadcast.publish(KEY_CHANNEL, public_id)

    async def lookup(self, public_id: str) -> DeviceKey | None:
        """The key of an active device, or None for an unknown or revoked id."""
        known = self._known.get(public_id)
        if known is not None:
            self._known.move_to_end(public_id)
            return known
        expires = self._unknown.get(public_id)
        if expires is not None:
            if expires > time.monotonic():
                return None
            del self._unknown[public_id]
        epoch = self._epoch
        found = await self.load(public_id)
        if epoch == self._epoch:
            self._remember(public_id, found)
        return found

    def __len__(self) -> int:
        return len(self._known)

    async def load(self, public_id: str) -> DeviceKey | None:
        """The device's key as the database has it now, bypassing the cache."""
        query = select(Device.id, Device.owner_id, Device.key_version).where(
            Device.public_id == public_id, Device.revoked_at.is_(None)
        )
        async with self._sessionmaker() as session:
            row = (await session.execute(query)).first()
        if row is None:
            return None
        pk, owner_id, key_version = row
        identity = DeviceIdentity(pk, public_id, owner_id, key_version)
        return DeviceKey.of(identity, self.secret(public_id, key_version))

    def _remember(self, public_id: str, found: DeviceKey | None) -> None:
        if found is None:
            self._unknown[public_id] = time.monotonic() + self._unknown_ttl
            if len(self._unknown) > self._max_entries:
                self._unknown.popitem(last=False)
        else:
            self._known[public_id] = found
            if len(self._known) > self._max_entries:
                self._known.popitem(last=False)

    def _drop(self, public_id: str) -> None:
        self._epoch += 1
        self._known.pop(public_id, None)
        self._unknown.pop(public_id, None)

    def _clear(self) -> None:
        self._epoch += 1
        self._known.clear()
        self._unknown.clear()
