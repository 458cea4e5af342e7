"""The side server's typed application keys: what the views find on ``request.app``."""

from __future__ import annotations

from aiohttp import web

from bot.chat.webhook import WebhookIntake
from bot.container import Container
from bot.lifecycle import ShutdownGate

CONTAINER: web.AppKey[Container] = web.AppKey("container", Container)
WEBHOOK_INTAKE: web.AppKey[WebhookIntake] = web.AppKey("webhook_intake", WebhookIntake)
# Closed first on shutdown: new requests get 503 shutting_down (bot/lifecycle.py).
SHUTDOWN_GATE: web.AppKey[ShutdownGate] = web.AppKey("shutdown_gate", ShutdownGate)
