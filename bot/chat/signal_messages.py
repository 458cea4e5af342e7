"""The recipient's message for a signal, as a pure function of what it shows.

``render_approval_message(signal, approval, devices)``: the signal's levels and state,
the user's decision, and one line per device of the user with its latest state. Sending,
broadcasting and coalesced edits all render through here, so a message always shows the
same thing for the same data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from aiogram.types import InlineKeyboardMarkup

from bot.chat import keyboards, texts
from bot.domain.signal_dto import ApprovalDTO, DeviceLine, SignalDTO


@dataclass(frozen=True, slots=True)
class RenderedMessage:
    text: str
    reply_markup: InlineKeyboardMarkup | None


def render_approval_message(
    signal: SignalDTO, approval: ApprovalDTO, devices: Sequence[DeviceLine] = ()
) -> RenderedMessage:
    """Approve / Reject buttons only while the decision is open and the signal too."""
    markup = (
        keyboards.approval_keyboard(signal.id) if approval.is_pending and signal.is_open else None
    )
    return RenderedMessage(texts.approval_text(signal, approval, devices), markup)
