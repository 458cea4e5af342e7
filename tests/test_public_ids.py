"""Public ids of bulk-written rows (db/ids.py): time-ordered, in token_urlsafe's shape."""

from __future__ import annotations

import re

from bot.execution.issuing import new_instruction_id
from bot.execution.report_desk import new_event_id, new_record_id
from db.ids import sortable_id

# What secrets.token_urlsafe(12) made before: 16 URL-safe characters after the prefix.
SHAPE = re.compile(r"^(exe|evt|ins)_[A-Za-z0-9_-]{16}$")


def test_ids_keep_their_shape() -> None:
    for make in (new_record_id, new_event_id, new_instruction_id):
        made = make()
        assert SHAPE.fullmatch(made), made


def test_a_later_id_sorts_after_an_earlier_one() -> None:
    # Across a millisecond, a second, a year and the top of the 48-bit range: string
    # order is time order, so new rows go to the end of their unique index.
    moments = [0, 1, 63, 64, 999, 1_000, 1_764_000_000_000, 1_795_536_000_000, 2**48 - 1]
    made = [sortable_id("exe_", at_ms=ms) for ms in moments]
    assert made == sorted(made)
    assert len({item[4:12] for item in made}) == len(moments)  # the time part differs


def test_ids_made_in_one_millisecond_do_not_collide() -> None:
    made = {sortable_id("exe_", at_ms=1_764_000_000_000) for _ in range(20_000)}
    assert len(made) == 20_000
