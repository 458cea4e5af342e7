"""The approval message previews each v1.1 device's size while the owner can decide:
"Demo: 1 % of 10,000.00 USD → about 0.2 lots", "fixed 0.01 lots: no stop loss"; a v1
device has none, and the preview gives way to the device's state once approved."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy import update

from bot.container import Container
from db.models import User
from tests.conftest import FakeClock
from tests.fake_bot_api import FakeBotAPI
from tests.loop_support import approve, device_ea, publish, settle
from tests.signals_support import add_users
from tests.wire_support import send_state, set_device
from webhook_server import create_app

OWNER = 4001


@pytest.fixture
async def devices(container: Container, aiohttp_client: Any, clock: FakeClock) -> int:
    server: TestClient[Any, Any] = await aiohttp_client(create_app(container))
    await add_users(container.sessionmaker, [OWNER], clock.now)
    demo, ea = await device_ea(container, server, clock, OWNER, "Demo")
    await device_ea(container, server, clock, OWNER, "Old")  # v1: never sent a state
    await send_state(ea)
    await set_device(
        container, demo.pk, sizing_mode="risk_percent", risk_percent=Decimal(1), tp_mode="split"
    )
    return demo.pk


def sent(fake_api: FakeBotAPI) -> str:
    return str(fake_api.sent("sendMessage", OWNER)[-1].params["text"])


@pytest.mark.usefixtures("devices")
async def test_preview_of_a_risk_device_and_none_for_v1(
    container: Container, fake_api: FakeBotAPI
) -> None:
    outcome = await publish(
        container,
        order_type="limit",
        entry="1.085",
        stop_loss="1.08",
        take_profit=["1.09", "1.095", "1.1"],
    )
    text = sent(fake_api)
    assert "• Demo: 1 % of 10,000.00 USD → about 0.2 lots, 3 take profits split" in text
    assert "Old" not in text
    await approve(container, outcome, OWNER)
    await settle(container)
    shown = str(fake_api.last("editMessageText", OWNER).params["text"])
    assert "about 0.2 lots" not in shown
    assert "• Demo: waiting" in shown and "• Old: waiting" in shown


@pytest.mark.usefixtures("devices")
async def test_preview_without_a_stop_loss_or_a_price(
    container: Container, fake_api: FakeBotAPI
) -> None:
    await publish(container, stop_loss=None, take_profit=[])
    assert "• Demo: fixed 0.01 lots: no stop loss" in sent(fake_api)
    await publish(container, stop_loss="1.08", take_profit=[])
    assert "• Demo: 1 % of 10,000.00 USD, lots computed by the EA" in sent(fake_api)


async def test_preview_in_russian_and_gone_after_a_rejection(
    container: Container, fake_api: FakeBotAPI, devices: int
) -> None:
    async with container.sessionmaker.begin() as session:
        await session.execute(update(User).where(User.id == OWNER).values(language_code="ru"))
    await set_device(container, devices, sizing_mode="risk_money", risk_money_minor=5000)
    outcome = await publish(container, order_type="stop", entry="1.09", stop_loss="1.0875")
    assert "• Demo: риск 50.00 USD → около 0.2 лота" in sent(fake_api)
    async with container.sessionmaker.begin() as session:
        await container.signals.decide(
            session, signal_id=outcome.signal.id, user_id=OWNER, approve=False
        )
    await settle(container)
    assert "Demo" not in str(fake_api.last("editMessageText", OWNER).params["text"])
