"""The side server's typed application keys: the services each view finds on ``request.app``.

``webhook_server.create_app`` sets every key from the process's services; a view asks for
the one it uses (``request.app[REPORTS]``), so what each view depends on is visible here
and nothing reaches the rest of the process through it.
"""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from bot.config import Settings
from bot.domain.signals import SignalService
from bot.execution.device_activity import DeviceActivity
from bot.execution.device_health import DeviceHealth
from bot.execution.device_hub import DeviceHub
from bot.execution.device_keys import DeviceKeyring
from bot.execution.nonces import NonceStore
from bot.execution.report_desk import ReportDesk
from bot.infra.clock import Clock
from bot.infra.metrics import Metrics
from bot.intake.webhook import WebhookIntake
from bot.lifecycle import ShutdownGate

SETTINGS: web.AppKey[Settings] = web.AppKey("settings", Settings)
# The server time of X-Server-Time, of the signatures' X-Timestamp check and of the views.
CLOCK: web.AppKey[Clock] = web.AppKey("clock")
ENGINE: web.AppKey[AsyncEngine] = web.AppKey("engine", AsyncEngine)
SESSIONMAKER: web.AppKey[async_sessionmaker[AsyncSession]] = web.AppKey("sessionmaker")
METRICS: web.AppKey[Metrics] = web.AppKey("metrics", Metrics)
# The provider API's signals; the devices' reports (bot/web/provider.py, bot/web/ea.py).
SIGNALS: web.AppKey[SignalService] = web.AppKey("signals", SignalService)
REPORTS: web.AppKey[ReportDesk] = web.AppKey("reports", ReportDesk)
# Signed requests (bot/web/device_auth.py): keys, replay protection, last-seen times.
DEVICE_KEYS: web.AppKey[DeviceKeyring] = web.AppKey("device_keys", DeviceKeyring)
NONCES: web.AppKey[NonceStore] = web.AppKey("nonces", NonceStore)
DEVICE_ACTIVITY: web.AppKey[DeviceActivity] = web.AppKey("device_activity", DeviceActivity)
# Refused requests of existing devices, counted for their owners' health alerts.
DEVICE_HEALTH: web.AppKey[DeviceHealth] = web.AppKey("device_health", DeviceHealth)
# The long polls' wake-ups (bot/web/ea.py).
DEVICE_HUB: web.AppKey[DeviceHub] = web.AppKey("device_hub", DeviceHub)
# Only in webhook mode: Telegram's updates (bot/web/telegram.py).
WEBHOOK_INTAKE: web.AppKey[WebhookIntake] = web.AppKey("webhook_intake", WebhookIntake)
# Closed first on shutdown: new requests get 503 shutting_down (bot/lifecycle.py).
SHUTDOWN_GATE: web.AppKey[ShutdownGate] = web.AppKey("shutdown_gate", ShutdownGate)
