"""The Telegram side of signals: each recipient's message, and its edits as things change.

Everything goes through the outbox (bot/infra/outbox.py), inside the transaction that
made the change: ``announce`` queues one message per recipient, ``refresh`` and
``refresh_signal`` queue edits. Messages are rendered when they are sent, from what is
stored then (``render``), so a message always shows the latest state however changes and
sends interleave, and a broadcast cut by a restart goes on where it stopped. Each message
reads in its recipient's language (``users.language_code``, bot/chat/i18n.py).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from bot.chat.i18n import in_locale
from bot.chat.signal_messages import RenderedMessage, render_approval_message
from bot.domain.signal_dto import ApprovalDTO, DeviceLine, SignalDTO
from bot.infra.outbox import ApprovalView, Outbox
from db.repositories.signals import SignalRepository

# (user id, signal id) → that user's devices on that signal, latest state each.
DeviceLinesLoader = Callable[
    [AsyncSession, Sequence[tuple[int, int]]],
    Awaitable[Mapping[tuple[int, int], Sequence[DeviceLine]]],
]


class SignalPublisher:
    def __init__(
        self,
        outbox: Outbox,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        device_lines: DeviceLinesLoader | None = None,
    ) -> None:
        self.outbox = outbox
        self.sessionmaker = sessionmaker
        self.device_lines = device_lines

    async def announce(self, session: AsyncSession, signal: SignalDTO) -> None:
        """Queue each recipient's message of a new signal, worth sending until it ends."""
        await self.outbox.announce(session, signal.id, signal.expires_at)

    async def refresh(self, session: AsyncSession, approval_ids: Iterable[int]) -> None:
        """Some approvals changed: their messages must show it."""
        await self.outbox.refresh(session, approval_ids)

    async def refresh_signal(self, session: AsyncSession, signal_id: int) -> None:
        """The signal changed: every message of it must show it."""
        await self.outbox.refresh_signal(session, signal_id)

    async def render(self, approval_ids: Sequence[int]) -> dict[int, ApprovalView]:
        """What each approval's message shows now (an approval that is gone is left out).

        Recipients who see the same thing share one rendering: the message is a function
        of the signal, the recipient's decision and devices, not of who they are, so it is
        rendered from the approval with its identity (id, user, message) left out, in the
        recipient's language. A
        broadcast's batch is then one text and one keyboard, however many recipients."""
        async with self.sessionmaker() as session:
            rows = await SignalRepository(session).with_signals(sorted(set(approval_ids)))
            devices: Mapping[tuple[int, int], Sequence[DeviceLine]] = {}
            if self.device_lines is not None and rows:
                devices = await self.device_lines(
                    session, [(a.user_id, a.signal_id) for a, _ in rows]
                )
        signals: dict[int, SignalDTO] = {}
        rendered: dict[
            tuple[int, ApprovalDTO, tuple[DeviceLine, ...], str | None], RenderedMessage
        ] = {}
        views: dict[int, ApprovalView] = {}
        for approval, signal in rows:
            signal_dto = signals.get(signal.id)
            if signal_dto is None:
                signal_dto = signals[signal.id] = SignalDTO.from_model(signal)
            shown = ApprovalDTO(
                id=0,
                signal_id=approval.signal_id,
                user_id=0,
                decision=approval.decision,
                message_id=None,
                decided_at=approval.decided_at,
            )
            language = approval.language
            lines = tuple(devices.get((approval.user_id, approval.signal_id), ()))
            key = (signal.id, shown, lines, language)
            message = rendered.get(key)
            if message is None:
                with in_locale(language):
                    message = rendered[key] = render_approval_message(signal_dto, shown, lines)
            views[approval.id] = ApprovalView(
                approval.user_id,
                approval.message_id,
                message.text,
                message.reply_markup,
                ended_unseen=not signal_dto.is_open and approval.decision in ("pending", "expired"),
            )
        return views
