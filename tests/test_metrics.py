"""GET /metrics: Prometheus text that parses, counters that move, hooks, switches."""

from __future__ import annotations

from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from prometheus_client.parser import text_string_to_metric_families

from bot.container import Container
from bot.infra.metrics import Metrics, create_metrics_app
from tests.conftest import Chat
from tests.fake_bot_api import FakeBotAPI, message_update
from tests.webhook_support import SECRET, WEBHOOK_OVERRIDES, start_instance
from webhook_server import create_app

ClientFactory = Any


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition, keyed by name and sorted labels."""
    parsed = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            parsed[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return parsed


def value(text: str, name: str, **labels: str) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


async def scrape(client: TestClient[Any, Any]) -> str:
    response = await client.get("/metrics")
    assert response.status == 200
    assert response.content_type == "text/plain"
    return await response.text()


@pytest.fixture
async def client(container: Container, aiohttp_client: ClientFactory) -> TestClient[Any, Any]:
    return await aiohttp_client(create_app(container))


async def test_metrics_parse_and_update_counters_move(
    client: TestClient[Any, Any], chat: Chat, fake_api: FakeBotAPI
) -> None:
    before = await scrape(client)
    assert value(before, "signalbridge_updates_total", type="message", outcome="handled") == 0
    await chat.send(8201, "/help")
    await chat.send(8201, "/help")
    fake_api.fail_next("sendMessage", error="403")
    await chat.send(8202, "/help")
    text = await scrape(client)
    assert value(text, "signalbridge_updates_total", type="message", outcome="handled") == 2
    assert value(text, "signalbridge_updates_total", type="message", outcome="error") == 1
    assert (
        value(
            text,
            "signalbridge_update_duration_seconds_count",
            handler="handlers.start:cmd_help",
        )
        == 3
    )
    # The apology to the user who blocked the bot never reaches Telegram (the send path
    # knows), so three real requests: two replies and the refused one.
    assert value(text, "signalbridge_bot_api_requests_total", method="sendMessage") == 3
    assert (
        value(text, "signalbridge_bot_api_errors_total", method="sendMessage", error="forbidden")
        == 1
    )
    names = {family.name for family in text_string_to_metric_families(text)}
    assert {
        "signalbridge_long_polls_waiting",
        "signalbridge_send_queue_depth",
        "signalbridge_webhook_queue_depth",
        "signalbridge_http_requests",
        "process_cpu_seconds",
    } <= names


async def test_every_side_server_request_is_counted_by_route_and_status(
    client: TestClient[Any, Any],
) -> None:
    await client.get("/healthz")
    await client.get("/healthz")
    await client.get("/no/such/thing")
    await client.post("/healthz")
    text = await scrape(client)
    count = "signalbridge_http_requests_total"
    assert value(text, count, endpoint="/healthz", method="GET", status="200") == 2
    assert value(text, count, endpoint="unmatched", method="GET", status="404") == 1
    assert value(text, count, endpoint="unmatched", method="POST", status="405") == 1
    assert value(text, "signalbridge_http_request_duration_seconds_count", endpoint="/healthz") == 2


async def test_webhook_deliveries_are_counted(
    container: Container, fake_api: FakeBotAPI, aiohttp_server: Any
) -> None:
    container.settings = container.settings.model_copy(
        update={
            "telegram": container.settings.telegram.model_copy(update={"mode": "webhook"}),
            "webhook": container.settings.webhook.model_copy(
                update={"url": WEBHOOK_OVERRIDES["webhook"]["url"]}
            ),
        }
    )
    instance = await start_instance(container, fake_api, aiohttp_server)
    try:
        update = {"update_id": 77, **message_update(8203, "/help")}
        await instance.deliver_and_wait(update)
        await instance.deliver_and_wait(update)
        await instance.deliver(update, secret="nope")
        text = container.metrics.render().decode()
        count = "signalbridge_http_requests_total"
        path = container.settings.webhook.path
        assert value(text, count, endpoint=path, method="POST", status="200") == 2
        assert value(text, count, endpoint=path, method="POST", status="401") == 1
        assert value(text, "signalbridge_updates_total", type="message", outcome="handled") == 1
        assert value(text, "signalbridge_updates_total", type="message", outcome="duplicate") == 1
        assert value(text, "signalbridge_webhook_queue_depth") == 0
        assert SECRET not in text
    finally:
        await instance.close()


async def test_feature_hooks_feed_the_gauges(
    client: TestClient[Any, Any], container: Container
) -> None:
    waiting = [3]
    container.metrics.watch_long_polls(lambda: waiting[0])
    container.metrics.watch_send_queue(lambda: 12)
    text = await scrape(client)
    assert value(text, "signalbridge_long_polls_waiting") == 3
    assert value(text, "signalbridge_send_queue_depth") == 12
    waiting[0] = 0
    assert value(await scrape(client), "signalbridge_long_polls_waiting") == 0


def test_each_container_has_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.updates.labels("message", "handled").inc()
    assert (
        value(
            first.render().decode(), "signalbridge_updates_total", type="message", outcome="handled"
        )
        == 1
    )
    assert (
        value(
            second.render().decode(),
            "signalbridge_updates_total",
            type="message",
            outcome="handled",
        )
        == 0
    )


@pytest.mark.parametrize(
    "metrics_settings", [{"enabled": False}, {"port": 9464}], ids=["disabled", "own-port"]
)
async def test_metrics_leave_the_side_server_when_disabled_or_moved(
    container: Container, aiohttp_client: ClientFactory, metrics_settings: dict[str, Any]
) -> None:
    container.settings = container.settings.model_copy(
        update={"metrics": container.settings.metrics.model_copy(update=metrics_settings)}
    )
    client = await aiohttp_client(create_app(container))
    response = await client.get("/metrics")
    assert response.status == 404


async def test_the_separate_metrics_listener_serves_them(
    container: Container, aiohttp_client: ClientFactory
) -> None:
    container.metrics.updates.labels("message", "handled").inc()
    client = await aiohttp_client(create_metrics_app(container.metrics))
    text = await scrape(client)
    assert value(text, "signalbridge_updates_total", type="message", outcome="handled") == 1


async def test_ea_requests_are_counted_by_route_template(client: TestClient[Any, Any]) -> None:
    await client.get("/api/v1/ea/instructions?wait=0")  # unsigned: refused
    await client.get("/api/v1/exec/status/123")
    text = await scrape(client)
    requests = {
        (labels["endpoint"], labels["status"])
        for (name, label_items), count in samples(text).items()
        if name == "signalbridge_http_requests_total" and count
        for labels in [dict(label_items)]
    }
    assert ("/api/v1/ea/instructions", "401") in requests
    assert any(endpoint == "/api/v1/exec/status/{signal_id}" for endpoint, _ in requests)
    assert not any("123" in endpoint for endpoint, _ in requests)


async def test_the_container_wires_long_polls_and_the_send_queue(
    client: TestClient[Any, Any], container: Container
) -> None:
    with container.device_hub.waiter(1), container.device_hub.waiter(2):
        text = await scrape(client)
    assert value(text, "signalbridge_long_polls_waiting") == 2
    assert value(await scrape(client), "signalbridge_long_polls_waiting") == 0
    assert value(text, "signalbridge_send_queue_depth") == container.send_path.queue_depth
