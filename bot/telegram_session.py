"""aiogram's aiohttp session, made cheaper per call for the Bot API requests we send most.

Three costs of aiogram's ``AiohttpSession`` are paid on every message and do no work
a user could see:

- **The response type.** aiogram parses every answer with ``Response[method.__returning__]``.
  pydantic caches parametrised generic models in a ``WeakValueDictionary``, so once the
  garbage collector frees the class, the next call builds it again (schema generation).
  One strong reference per return type makes every later call a cache hit.
- **The form.** Each request becomes an ``application/x-www-form-urlencoded`` form: every
  nested object JSON-encoded into a string field, then the whole form percent-quoted.
  The Bot API accepts ``application/json`` bodies as well, with nested objects as JSON
  values, so a request without files is sent as one JSON document instead. A request
  that uploads a file keeps aiogram's multipart form.
- **The parse.** A successful answer is validated straight from its JSON text
  (pydantic-core parses and validates in one pass) rather than loaded into Python dicts
  first. Errors take aiogram's own path, so every exception type stays aiogram's.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import TYPE_CHECKING, Any, cast

from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiohttp import ClientError, ClientTimeout
from pydantic import ValidationError

if TYPE_CHECKING:
    from aiogram import Bot

_RESPONSE_TYPES: dict[Any, type[Response[Any]]] = {}
_JSON_HEADERS = {"Content-Type": "application/json"}


def response_type(returning: Any) -> type[Response[Any]]:
    """``Response[returning]``, built once per return type and kept for the process."""
    cached = _RESPONSE_TYPES.get(returning)
    if cached is None:
        cached = _RESPONSE_TYPES[returning] = Response[returning]
    return cached


class BotApiSession(AiohttpSession):
    def json_payload(self, bot: Bot, method: TelegramMethod[TelegramType]) -> dict[str, Any] | None:
        """The request as a JSON object, or None when it uploads a file (multipart then)."""
        files: dict[str, Any] = {}
        payload: dict[str, Any] = {}
        # Unset fields (None) would be left out below anyway; not dumping them saves the walk.
        for key, value in method.model_dump(warnings=False, exclude_none=True).items():
            prepared = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            # aiogram's form leaves out exactly these two (its prepared values are strings).
            if prepared is None or prepared == "":
                continue
            payload[key] = prepared
        return None if files else payload

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 (aiogram's signature)
    ) -> TelegramType:
        payload = self.json_payload(bot, method)
        if payload is None:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(
                url,
                data=self.json_dumps(payload),
                headers=_JSON_HEADERS,
                timeout=ClientTimeout(total=self.timeout if timeout is None else timeout),
            ) as resp:
                # Bytes: the Bot API answers UTF-8 JSON, which pydantic-core and json.loads
                # read directly (no charset detection, no str copy).
                raw_result = await resp.read()
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e
        response = self.check_response(
            bot=bot,
            method=method,
            status_code=resp.status,
            content=raw_result,
        )
        return cast(TelegramType, response.result)

    def check_response(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        status_code: int,
        content: str | bytes,
    ) -> Response[TelegramType]:
        parsed = response_type(method.__returning__)
        if HTTPStatus.OK <= status_code <= HTTPStatus.IM_USED:
            try:
                response = parsed.model_validate_json(content, context={"bot": bot})
            except ValidationError:
                pass  # aiogram's path below raises its ClientDecodeError
            else:
                if response.ok:
                    return cast(Response[TelegramType], response)
        # An error answer: aiogram maps it to its exception types (retry_after, 403, ...).
        if isinstance(content, bytes):
            content = content.decode("utf-8", "replace")
        return super().check_response(bot, method, status_code, content)
