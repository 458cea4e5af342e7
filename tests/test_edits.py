"""The edit scheduler merges bursts; the message renderer is a pure function."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime
from decimal import Decimal

from bot.services.edits import EditContent, EditScheduler
from bot.services.signal_dto import ApprovalDTO, DeviceLine, SignalDTO
from bot.services.signal_messages import render_approval_message


class Board:
    """What each message should show (the "database"), and the edits made."""

    def __init__(self) -> None:
        self.state: dict[int, str] = {}
        self.renders: list[list[int]] = []
        self.edits: list[EditContent] = []

    async def render(self, keys: Sequence[int]) -> dict[int, EditContent]:
        self.renders.append(list(keys))
        return {key: EditContent(key, 1, self.state[key]) for key in keys if key in self.state}

    async def edit(self, content: EditContent) -> None:
        await asyncio.sleep(0)
        if content.chat_id == 666:
            raise RuntimeError("Telegram hiccup")
        self.edits.append(content)


async def test_a_burst_makes_two_edits_with_the_latest_state() -> None:
    board = Board()
    scheduler = EditScheduler(board.render, board.edit, interval=0.3)
    for version in range(5):
        board.state[1] = f"v{version}"
        scheduler.touch([1])
        await asyncio.sleep(0.01)
    await scheduler.drain()
    assert [edit.text for edit in board.edits] == ["v0", "v4"]
    assert scheduler.pending == 0


async def test_messages_do_not_wait_for_each_other_and_failures_stay_local() -> None:
    board = Board()
    board.state.update({1: "one", 2: "two", 666: "boom", 3: "three"})
    scheduler = EditScheduler(board.render, board.edit, interval=10)
    scheduler.touch([1, 666])
    await asyncio.sleep(0.01)
    scheduler.touch([1])  # waits 10 s for its next slot
    scheduler.touch([2, 3, 404])  # 404: nothing to show, skipped
    await asyncio.sleep(0.05)
    assert sorted(edit.text for edit in board.edits) == ["one", "three", "two"]
    assert scheduler.pending == 1
    await scheduler.close()
    assert scheduler.pending == 0


def _signal(**changes: object) -> SignalDTO:
    values: dict[str, object] = {
        "id": 7,
        "public_id": "sig_test",
        "symbol": "EURUSD<x>",
        "side": "buy",
        "order_type": "limit",
        "entry": Decimal("1.0850"),
        "stop_loss": Decimal("1.0800000000"),
        "take_profit": (Decimal("1.095"), Decimal("1.1")),
        "comment": "a <b>bold</b> idea",
        "issued_at": datetime(2026, 1, 1, 12, 0, tzinfo=UTC),
        "expires_at": datetime(2026, 1, 1, 12, 15, tzinfo=UTC),
        "state": "open",
        "closed_fraction": Decimal(0),
        "client_id": None,
        "source": "provider",
        "created_by_id": None,
        "modified_at": None,
        "ended_at": None,
    }
    values.update(changes)
    return SignalDTO(**values)  # type: ignore[arg-type]


def _approval(decision: str) -> ApprovalDTO:
    return ApprovalDTO(
        id=1, signal_id=7, user_id=42, decision=decision, message_id=9, decided_at=None
    )


def test_renderer_shows_levels_decision_and_devices() -> None:
    pending = render_approval_message(_signal(), _approval("pending"))
    assert "BUY EURUSD&lt;x&gt;" in pending.text
    assert "Entry: <code>1.085</code>" in pending.text
    assert "SL: <code>1.08</code>" in pending.text
    assert "TP: <code>1.095</code> · <code>1.1</code>" in pending.text
    assert "a &lt;b&gt;bold&lt;/b&gt; idea" in pending.text
    assert "Valid 15 min, until 2026-01-01 12:15 UTC" in pending.text
    assert pending.reply_markup is not None
    assert [b.callback_data for b in pending.reply_markup.inline_keyboard[0]] == [
        "sv:a:7",
        "sv:r:7",
    ]

    devices = [
        DeviceLine("MT5 <main>", "filled", price=Decimal("1.08512"), volume=Decimal("0.10")),
        DeviceLine("MT4", "error", code=10019, message="Not enough money"),
        DeviceLine("VPS", "waiting"),
        DeviceLine("Laptop", "acked", ticket=5012345),
        DeviceLine("Old", "closed", profit=Decimal("-12.50")),
    ]
    approved = render_approval_message(_signal(), _approval("approved"), devices)
    assert approved.reply_markup is None
    lines = approved.text.splitlines()
    assert "✅ You approved this signal." in lines
    assert "• MT5 &lt;main&gt;: filled 0.1 @ <code>1.08512</code>" in lines
    assert "• MT4: error 10019: Not enough money" in lines
    assert "• VPS: waiting" in lines
    assert "• Laptop: accepted, ticket 5012345" in lines
    assert "• Old: closed, profit -12.5" in lines

    cancelled = render_approval_message(_signal(state="cancelled"), _approval("pending"))
    assert cancelled.reply_markup is None and "Cancelled by the provider" in cancelled.text
    partial = render_approval_message(_signal(closed_fraction=Decimal("0.4375")), _approval("auto"))
    assert "43.75% of the position closed so far" in partial.text
    assert "Auto-approved" in partial.text
