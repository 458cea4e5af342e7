"""Users seen a moment ago, so the next update from them needs no database read.

Every update (a command, a button press) starts with the current user. The user
middleware keeps each user's DTO for ``USER_CACHE_TTL`` after a database read, and a hit
serves it only while it matches what Telegram says with this update (names, language)
and the role ``telegram.admin_ids`` gives now; anything different goes to the database,
which refreshes the row.

That check is the whole of what can make an entry stale, so no code that writes a user
row has to tell the cache anything: a :class:`UserDTO` holds only what Telegram sends
(``TELEGRAM_FIELDS``), the role, and what never changes (id, ``created_at``). What other
code writes (the blocked flag, the referrer, ``last_seen_at``) is not in it
(tests/test_user_cache.py fails when a field is added that a hit does not check).

- An entry is put only after the update's transaction commits (a rolled-back first
  contact leaves no entry for a row that does not exist).
- A user this process marked blocked goes to the database, which clears the flag.
- Several instances (``redis.url`` set) could mark a user blocked behind one another's
  back, and only a database read clears that flag when the user writes again; there the
  cache holds nothing (``ttl`` 0, bot/factory.py) and every update reads the row.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from bot.domain.users import LAST_SEEN_RESOLUTION, TELEGRAM_FIELDS, TelegramUser, UserDTO

USER_CACHE_TTL = min(timedelta(seconds=60), LAST_SEEN_RESOLUTION)
USER_CACHE_SIZE = 50_000


class UserCache:
    def __init__(self, ttl: timedelta = USER_CACHE_TTL, max_size: int = USER_CACHE_SIZE) -> None:
        self.ttl = ttl
        self.max_size = max_size
        self._entries: dict[int, tuple[UserDTO, datetime]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, tg_user: TelegramUser, role: str, now: datetime) -> UserDTO | None:
        """The cached DTO when it is fresh and Telegram's data still matches it."""
        entry = self._entries.get(tg_user.id)
        if entry is None:
            return None
        user, expires = entry
        if (
            now >= expires
            or user.role != role
            or any(getattr(user, name) != getattr(tg_user, name) for name in TELEGRAM_FIELDS)
        ):
            del self._entries[tg_user.id]
            return None
        return user

    def put(self, user: UserDTO, now: datetime) -> None:
        if self.ttl <= timedelta(0):
            return
        self._entries.pop(user.id, None)  # re-inserted last: the oldest go first when full
        if len(self._entries) >= self.max_size:
            del self._entries[next(iter(self._entries))]
        # A cached user is never "created now": that was true only of the first update.
        self._entries[user.id] = (replace(user, created_now=False), now + self.ttl)
