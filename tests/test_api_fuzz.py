"""A property-based fuzzer against the running side server (schemathesis + Hypothesis).

The real app, on a real migrated database, listens on loopback in a thread of its own (so
schemathesis can call it with plain blocking requests and re-send cases for its checks).
Every operation of bot/web/openapi.json is fuzzed three ways, seeded and bounded:

- signed: device requests carry a valid HMAC signature of the exact bytes sent (a requests
  auth hook signs the prepared request) and provider requests the Bearer token, so cases
  get past auth into the endpoint logic; positive and negative (schema-violating) data;
- unsigned: no credentials at all, every answer must be the documented 401.

Each answer must not be a 5xx and must match the document (status, headers, content type,
body schema); a request that breaks the schema must be refused (4xx). Half the generated
instruction and signal ids are replaced by real ones, so reports and changes reach the
database instead of stopping at 404.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from aiohttp import web
from hypothesis import HealthCheck, Phase, settings
from schemathesis import GenerationMode
from sqlalchemy import select

from bot.execution.reports import RECORD_ID_RE
from bot.factory import create_bot, create_container
from bot.web.signing import sign_request
from db.models import Instruction
from tests.conftest import POSTGRES_URL, _truncate_all, make_settings
from tests.devices_support import add_device
from tests.fake_bot_api import FakeBotAPI, close_bot_session
from tests.loop_support import approve, publish
from tests.openapi_support import DOCUMENT
from tests.signals_support import PROVIDER_TOKEN
from webhook_server import create_app

FuzzCase = schemathesis.Case[Any]
OWNER = 3501
EXAMPLES = 25  # per operation and run: about 20 s for all of them on the shared machine

schema = schemathesis.openapi.from_dict(DOCUMENT)
schema.config.generation.update(
    modes=[GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
    deterministic=True,
    database="none",
    max_examples=EXAMPLES,
)
# positive_data_acceptance is left out: cross-field rules (a buy's stop loss below its
# entry, a known instruction id) cannot be written in a schema, so valid-looking requests
# are rightly refused. Every other check runs.
schema.config.checks.update(excluded_check_names=["positive_data_acceptance"])

FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


class LiveServer:
    """The side server on 127.0.0.1, run by its own event loop in a thread."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self.url = ""
        self.device_id = self.secret = ""
        self.instruction_ids: list[str] = []
        self.signal_ids: list[str] = []
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="live-side-server", daemon=True)

    def __enter__(self) -> LiveServer:
        self._thread.start()
        if not self._ready.wait(timeout=60):
            raise RuntimeError("the live side server did not start within 60 s")
        if self._failure is not None:
            raise self._failure
        return self

    def __exit__(self, *_exc: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=30)

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        if POSTGRES_URL:
            await _truncate_all(self.database_url)
        api = FakeBotAPI()
        await api.start()
        config = make_settings(self.database_url, api.base_url)
        bot = create_bot(config)
        container = create_container(config, bot=bot)
        runner = web.AppRunner(create_app(container), access_log=None, handle_signals=False)
        try:
            _device, credentials = await add_device(container, OWNER)
            self.device_id, self.secret = credentials.device_id, credentials.secret
            outcome = await publish(container)
            await approve(container, outcome, OWNER)
            self.signal_ids.append(outcome.signal.public_id)
            async with container.sessionmaker() as session:
                ids = await session.scalars(select(Instruction.public_id))
                self.instruction_ids.extend(ids)
            # Long polls answer at once: a fuzzed wait=25 must not hold the run for 25 s.
            container.device_hub.release_all()
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            host, port = runner.addresses[0][:2]
            self.url = f"http://{host}:{port}"
            self._ready.set()
            await self._stop.wait()
        finally:
            await runner.cleanup()
            await container.stop_background(within=5.0)
            await container.engine.dispose()
            await close_bot_session(bot)
            await api.close()


class DeviceSignature(requests.auth.AuthBase):
    """Signs the request exactly as it goes out (EA_PROTOCOL.md section 2).

    Only the signing headers the case carries get real values: a case that leaves one out
    (schemathesis tests that a missing header is refused) goes out without it.
    """

    def __init__(self, device_id: str, secret: str) -> None:
        self.device_id = device_id
        self.secret = secret

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        sent = request.body or b""
        body = sent.encode("utf-8") if isinstance(sent, str) else sent
        assert isinstance(body, bytes)
        assert request.method is not None
        headers = sign_request(
            self.device_id,
            self.secret,
            request.method,
            request.path_url,
            int(time.time()),
            secrets.token_urlsafe(18),
            body,
        )
        request.headers.update({k: v for k, v in headers.items() if k in request.headers})
        return request


class ProviderToken(requests.auth.AuthBase):
    """The provider token in the Authorization header the case carries (if it does)."""

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        if "Authorization" in request.headers:
            request.headers["Authorization"] = f"Bearer {PROVIDER_TOKEN}"
        return request


@pytest.fixture(scope="module")
def live_server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[LiveServer]:
    if POSTGRES_URL:
        url = str(request.getfixturevalue("postgres_ready"))
    else:
        template: Path = request.getfixturevalue("sqlite_template")
        path = tmp_path_factory.mktemp("fuzz") / "signalbridge.sqlite3"
        shutil.copyfile(template, path)
        url = f"sqlite+aiosqlite:///{path}"
    with LiveServer(url) as server:
        yield server


def _real_half(value: Any, real: list[str]) -> Any:
    """A real id for every other well-formed generated one (decided by the value, so
    deterministic); a malformed id is what a negative case tests, so it stays."""
    if not isinstance(value, str) or not real or not RECORD_ID_RE.fullmatch(value):
        return value
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).digest()
    return real[digest[0] % len(real)] if digest[0] % 2 else value


def _with_real_ids(case: FuzzCase, server: LiveServer) -> None:
    if case.path_parameters and "signal_id" in case.path_parameters:
        params = case.path_parameters
        params["signal_id"] = _real_half(params["signal_id"], server.signal_ids)
    if isinstance(case.body, dict) and "instruction_id" in case.body:
        real = server.instruction_ids
        case.body["instruction_id"] = _real_half(case.body["instruction_id"], real)


def _auth_for(case: FuzzCase, server: LiveServer) -> requests.auth.AuthBase:
    if "device" in (case.operation.tags or []):
        return DeviceSignature(server.device_id, server.secret)
    return ProviderToken()


@schema.parametrize()
@FUZZ_SETTINGS
def test_signed_requests_get_documented_answers(case: FuzzCase, live_server: LiveServer) -> None:
    _with_real_ids(case, live_server)
    case.call_and_validate(base_url=live_server.url, auth=_auth_for(case, live_server))


@schema.exclude(tag="server").parametrize()
@settings(FUZZ_SETTINGS, max_examples=EXAMPLES // 3)
def test_unsigned_requests_get_the_documented_401(case: FuzzCase, live_server: LiveServer) -> None:
    response = case.call(base_url=live_server.url)
    # schemathesis also sends each path with methods it does not take: 405 before auth.
    expected = 401 if case.method.upper() == case.operation.method.upper() else 405
    assert response.status_code == expected, response.text
    if expected == 401:
        case.validate_response(response)
