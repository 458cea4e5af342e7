"""Long-lived objects shared by the bot and the side server of one process."""

from __future__ import annotations

from dataclasses import dataclass, field

from aiogram import Bot
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.chat.signal_publisher import SignalPublisher
from bot.config import Settings
from bot.domain.signals import SignalService, SubscriberCheck
from bot.domain.subscriptions import active_subscribers
from bot.execution.device_activity import DeviceActivity
from bot.execution.device_hub import DeviceHub
from bot.execution.device_keys import DeviceKeyring
from bot.execution.nonces import NonceStore, create_nonce_store
from bot.execution.report_desk import ReportDesk
from bot.execution.wire import device_lines
from bot.infra.clock import Clock, utcnow
from bot.infra.metrics import Metrics
from bot.infra.notifier import Notifier
from bot.infra.outbox import Outbox, OutboxWorker
from bot.infra.pubsub import Broadcast, create_broadcast
from bot.infra.ratelimit import RateLimiter, create_rate_limiter
from bot.infra.sending import SendPath
from bot.infra.updatelog import UpdateLog
from bot.infra.user_cache import UserCache


@dataclass
class Container:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    bot: Bot | None = None
    clock: Clock = field(default=utcnow)
    notifier: Notifier | None = None
    # The one send path on the bot's session (installed by create_bot).
    send_path: SendPath | None = None
    # Which users hold an active subscription (signals.require_subscription).
    subscriber_check: SubscriberCheck = field(default=active_subscribers)
    signal_publisher: SignalPublisher | None = None
    # Messages owed to users: queued in the transaction that stored what they tell, sent
    # after its commit by the worker (which exists when there is a bot to send with).
    outbox: Outbox = field(init=False)
    outbox_worker: OutboxWorker | None = field(init=False)
    signals: SignalService = field(init=False)
    # Execution reports from devices: storage, live status, owners' notifications.
    reports: ReportDesk = field(init=False)
    # Devices: messages between instances, verification keys, long-poll wake-ups,
    # replay protection and last-seen times (in-process, or shared through Redis).
    broadcast: Broadcast = field(init=False)
    device_keys: DeviceKeyring = field(init=False)
    device_hub: DeviceHub = field(init=False)
    nonces: NonceStore = field(init=False)
    device_activity: DeviceActivity = field(init=False)
    # Protection and observability: per-user buckets, the update log, Prometheus metrics.
    metrics: Metrics = field(default_factory=Metrics)
    rate_limiter: RateLimiter | None = None
    update_log: UpdateLog = field(init=False)
    user_cache: UserCache | None = field(init=False)

    def __post_init__(self) -> None:
        if self.notifier is None and self.bot is not None:
            self.notifier = Notifier(self.bot, self.sessionmaker, self.clock)
        if self.send_path is None and self.bot is not None:
            self.send_path = SendPath.of(self.bot)
        if self.send_path is not None and self.notifier is not None:
            self.send_path.blocked = self.notifier.blocked
        redis_url, prefix = self.settings.redis.url, self.settings.redis.prefix
        self.outbox_worker = None
        if self.bot is not None:
            self.outbox_worker = OutboxWorker(
                self.bot, self.sessionmaker, self.settings, self.clock, shared=bool(redis_url)
            )
        worker = self.outbox_worker
        self.outbox = Outbox(self.settings, self.clock, worker.wake if worker else _nobody)
        if self.signal_publisher is None and worker is not None:
            self.signal_publisher = SignalPublisher(
                self.outbox, worker, self.sessionmaker, device_lines=device_lines
            )

        self.broadcast = create_broadcast(redis_url, prefix)
        self.device_keys = DeviceKeyring(
            self.settings.require_secret("master_key"), self.sessionmaker, self.broadcast
        )
        self.device_hub = DeviceHub(self.broadcast)
        self.nonces = create_nonce_store(redis_url, prefix)
        self.device_activity = DeviceActivity(self.sessionmaker)

        # One instance owns its users' rows; several could change them behind its back.
        self.user_cache = UserCache() if not redis_url else None
        if self.rate_limiter is None:
            self.rate_limiter = create_rate_limiter(self.settings, self.clock)
        self.update_log = UpdateLog(self.metrics)
        if self.bot is not None:
            # Inside the send path: every real request (retries too) is counted.
            self.bot.session.middleware(self.metrics.bot_api_middleware())
        hub, send_path = self.device_hub, self.send_path
        self.metrics.watch_long_polls(lambda: hub.waiting)
        if send_path is not None:
            self.metrics.watch_send_queue(lambda: send_path.queue_depth)
        self.signals = SignalService(
            self.settings,
            self.clock,
            publisher=self.signal_publisher,
            subscriber_check=self.subscriber_check,
            wake_device=self.device_hub.notify,
        )
        self.reports = ReportDesk(
            self.settings,
            self.sessionmaker,
            self.clock,
            outbox=self.outbox,
            publisher=self.signal_publisher,
        )

    async def stop_background(self, within: float) -> int:
        """Let messages being sent get their answers for up to ``within`` s, then stop;
        what was not sent stays in the outbox for the next run. Returns how many sends
        were cut short."""
        await self.reports.close()
        cut = 0
        if self.outbox_worker is not None:
            cut = await self.outbox_worker.close(within)
        if self.notifier is not None:
            await self.notifier.drain()
        return cut

    async def start(self) -> None:
        """Connect what needs connecting (Redis), and take up the outbox, before serving."""
        await self.broadcast.start()
        if self.outbox_worker is not None:
            await self.outbox_worker.start()

    async def aclose(self) -> None:
        """Disconnect from Redis; the engine is disposed by whoever created it."""
        await self.broadcast.close()
        await self.nonces.close()
        if self.rate_limiter is not None:
            await self.rate_limiter.close()
        if self.send_path is not None:
            await self.send_path.close()

    def require_notifier(self) -> Notifier:
        if self.notifier is None:
            raise RuntimeError("this container has no bot, so nothing can be sent")
        return self.notifier

    @property
    def admin_ids(self) -> frozenset[int]:
        return frozenset(self.settings.telegram.admin_ids)


def _nobody() -> None:
    """No bot in this container: queued messages wait for a process that has one."""
