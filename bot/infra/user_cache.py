"""Users seen a moment ago, so the next update from them needs no database read.

Every update (a command, a button press) starts with the current user. The row changes
rarely: names and language come from Telegram with each update, the role from
``telegram.admin_ids``, and ``ensure_user`` rewrites the row only when one of those
changed, the user had blocked the bot, or ``last_seen_at`` is five minutes old. So the
user middleware keeps each user's DTO for ``USER_CACHE_TTL`` after a database read:

- a hit must match what Telegram says now (names, language) and the role; anything
  different goes to the database, which refreshes the row;
- an entry is put only after the update's transaction commits (a rolled-back first
  contact leaves no entry for a row that does not exist);
- a user this process marked blocked goes to the database, which clears the flag;
- code that changes a user's row otherwise calls ``forget`` (referral attribution).

Several instances (``redis.url`` set) could change a row behind one another's back, so
there the cache is off and every update reads the row (bot/container.py).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

from aiogram.types import User as TelegramUser

from bot.domain.users import LAST_SEEN_RESOLUTION, UserDTO

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
            or user.first_name != tg_user.first_name
            or user.last_name != tg_user.last_name
            or user.username != tg_user.username
            or user.language_code != tg_user.language_code
        ):
            del self._entries[tg_user.id]
            return None
        return user

    def put(self, user: UserDTO, now: datetime) -> None:
        self._entries.pop(user.id, None)  # re-inserted last: the oldest go first when full
        if len(self._entries) >= self.max_size:
            del self._entries[next(iter(self._entries))]
        # A cached user is never "created now": that was true only of the first update.
        self._entries[user.id] = (replace(user, created_now=False), now + self.ttl)

    def forget(self, user_id: int) -> None:
        self._entries.pop(user_id, None)
