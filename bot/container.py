"""The long-lived services of one process, as built by bot/factory.py, and their life cycle.

Holding them is all this module does: every service is built, with its dependencies
passed in, by ``create_services`` / ``create_container``; nothing happens when a
container is constructed. Handlers take them by these field names (aiogram's
``Dispatcher(**deps)``), the side server through its app keys (bot/web/keys.py).

Two shapes, nothing optional in either:

- :class:`Services`: what the side server and the business rules use. A process that
  has no bot (tools, benchmarks, a test of the side server alone) stores the messages
  it owes in the outbox, and the process with the bot sends them.
- :class:`Container`: the services plus the bot and what sends with it (the send path,
  the outbox worker, the notifier). ``python -m bot`` runs one.
"""

from __future__ import annotations

from dataclasses import dataclass

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.chat.signal_publisher import SignalPublisher
from bot.chat.user_cache import UserCache
from bot.config import Settings
from bot.domain.devices import DeviceTools
from bot.domain.signals import SignalService, SubscriberCheck
from bot.execution.device_activity import DeviceActivity
from bot.execution.device_hub import DeviceHub
from bot.execution.device_keys import DeviceKeyring
from bot.execution.nonces import NonceStore
from bot.execution.report_desk import ReportDesk
from bot.infra.clock import Clock
from bot.infra.metrics import Metrics
from bot.infra.notifier import BlockedUsers, Notifier
from bot.infra.outbox import Outbox, OutboxWorker
from bot.infra.pubsub import Broadcast
from bot.infra.ratelimit import RateLimiter
from bot.infra.sending import SendPath
from bot.infra.updatelog import UpdateLog


@dataclass(kw_only=True, slots=True)
class Services:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    clock: Clock
    # Which users hold an active subscription (signals.require_subscription).
    subscriber_check: SubscriberCheck
    # Messages owed to users: queued in the transaction that stored what they tell, sent
    # after its commit by the outbox worker of the process that has the bot.
    outbox: Outbox
    signal_publisher: SignalPublisher
    signals: SignalService
    # Execution reports from devices: storage, live status, owners' notifications.
    reports: ReportDesk
    # Devices: messages between instances, verification keys, long-poll wake-ups,
    # replay protection and last-seen times (in-process, or shared through Redis).
    broadcast: Broadcast
    device_keys: DeviceKeyring
    device_hub: DeviceHub
    nonces: NonceStore
    device_activity: DeviceActivity
    # What the owner's device screens work with (DeviceService on the update's session).
    device_tools: DeviceTools
    # Protection and observability: per-user buckets, the update log, Prometheus metrics.
    metrics: Metrics
    rate_limiter: RateLimiter
    update_log: UpdateLog
    user_cache: UserCache

    @property
    def admin_ids(self) -> frozenset[int]:
        return frozenset(self.settings.telegram.admin_ids)

    async def start(self) -> None:
        """Connect what needs connecting (Redis) before serving."""
        await self.broadcast.start()

    async def stop_background(self, within: float) -> int:
        """Finish storing the reports under way; returns how many sends were cut short
        (none: nothing is sent from here). ``within`` bounds the sends of a Container."""
        await self.reports.close()
        return 0

    async def aclose(self) -> None:
        """Disconnect from Redis; the engine is disposed by whoever created it."""
        await self.broadcast.close()
        await self.nonces.close()
        await self.rate_limiter.close()


@dataclass(kw_only=True, slots=True)
class Container(Services):
    bot: Bot
    # The one rate-limited send path on the bot's session (bot/infra/sending.py).
    send_path: SendPath
    # Who blocked the bot: the send path skips them, the user middleware lets them back.
    blocked_users: BlockedUsers
    notifier: Notifier
    outbox_worker: OutboxWorker

    async def start(self) -> None:
        """Connect (Redis), then take up the outbox a previous run left, before serving."""
        await Services.start(self)
        await self.outbox_worker.start()

    async def stop_background(self, within: float) -> int:
        """Let messages being sent get their answers for up to ``within`` s, then stop;
        what was not sent stays in the outbox for the next run. Returns how many sends
        were cut short."""
        await self.reports.close()
        cut = await self.outbox_worker.close(within)
        await self.blocked_users.drain()
        return cut

    async def aclose(self) -> None:
        """Disconnect from Redis (broadcast, nonces, rate limit, the send gate); the bot's
        session and the engine are closed by whoever created them."""
        await Services.aclose(self)
        await self.send_path.close()
