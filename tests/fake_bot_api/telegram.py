"""The Bot API methods the bot uses, answered like Telegram with a little state behind them.

:class:`FakeTelegram` answers each method with a result aiogram's models accept, after
Telegram's own checks (empty or too long text, callback data over 64 bytes, missing chat).
It remembers the messages it "sent" (message ids count up per chat; an edit without a
keyboard drops it), the commands set with setMyCommands and the webhook set with setWebhook.
A method it does not know answers 400 "method not found", so a new call in the bot shows up.
"""

from __future__ import annotations

import html
import itertools
import json
import mimetypes
import re
from collections.abc import Callable
from typing import Any

from tests.fake_bot_api.builders import bot_user_dict, chat_dict, now, utf16_len
from tests.fake_bot_api.calls import Call
from tests.fake_bot_api.failures import FakeApiError

JSONDict = dict[str, Any]
Handler = Callable[[Call], Any]
"""A method handler: receives the recorded call, returns the JSON ``result`` or raises
:class:`FakeApiError`."""

MAX_TEXT_LENGTH = 4096
MAX_CAPTION_LENGTH = 1024
MAX_CALLBACK_DATA_BYTES = 64
MAX_CALLBACK_ANSWER_LENGTH = 200


def _visible_length(text: str, parse_mode: Any) -> int:
    """Approximate length after entity parsing (never overestimates for marked-up text)."""
    mode = parse_mode.lower() if isinstance(parse_mode, str) else ""
    if mode == "html":
        text = html.unescape(re.sub(r"<[^>]*>", "", text))
    elif mode.startswith("markdown"):
        text = re.sub(r"[\\*_~|`\[\]()]", "", text)
    return utf16_len(text)


def _file_meta(value: Any, kind: str, serial: int) -> tuple[str, int | None, str | None, str]:
    """(file_id, size, filename, mime type) for an uploaded file dict or a file_id/URL string."""
    if isinstance(value, dict) and "size" in value:
        filename = value.get("filename")
        mime = mimetypes.guess_type(filename or "")[0] or value.get("content_type") or ""
        return f"{kind}-fake-{serial}", int(value["size"]), filename, mime
    if isinstance(value, str) and value:
        if value.startswith(("http://", "https://")):
            return f"{kind}-fake-{serial}", None, None, ""
        return value, None, None, ""
    raise FakeApiError(400, f"Bad Request: there is no {kind} in the request")


def _scope_key(scope: Any, language_code: Any) -> tuple[str, str]:
    scope_key = json.dumps(scope, sort_keys=True) if scope else '{"type": "default"}'
    return scope_key, str(language_code or "")


def _text(call: Call) -> str:
    text = call.params.get("text")
    if not isinstance(text, str) or not text.strip():
        raise FakeApiError(400, "Bad Request: message text is empty")
    if _visible_length(text, call.params.get("parse_mode")) > MAX_TEXT_LENGTH:
        raise FakeApiError(400, "Bad Request: message is too long")
    return text


def _caption(call: Call) -> str | None:
    caption = call.params.get("caption")
    if caption is None:
        return None
    caption = str(caption)
    if _visible_length(caption, call.params.get("parse_mode")) > MAX_CAPTION_LENGTH:
        raise FakeApiError(400, "Bad Request: message caption is too long")
    return caption


def _inline_markup(call: Call) -> JSONDict | None:
    markup = call.params.get("reply_markup")
    if not isinstance(markup, dict) or "inline_keyboard" not in markup:
        return None
    for row in markup["inline_keyboard"]:
        for button in row:
            data = button.get("callback_data") if isinstance(button, dict) else None
            if isinstance(data, str) and not 1 <= len(data.encode()) <= MAX_CALLBACK_DATA_BYTES:
                raise FakeApiError(400, "Bad Request: BUTTON_DATA_INVALID")
    return markup


def _answer_callback_query(call: Call) -> bool:
    text = call.params.get("text")
    if isinstance(text, str) and len(text) > MAX_CALLBACK_ANSWER_LENGTH:
        raise FakeApiError(400, "Bad Request: MESSAGE_TOO_LONG")
    return True


def _send_invoice_content(call: Call) -> JSONDict:
    params = call.params
    prices = params.get("prices")
    if not isinstance(prices, list) or not prices:
        raise FakeApiError(400, "Bad Request: prices must be non-empty")
    return {
        "title": str(params.get("title", "")),
        "description": str(params.get("description", "")),
        "start_parameter": str(params.get("start_parameter", "")),
        "currency": str(params.get("currency", "")),
        "total_amount": sum(int(p.get("amount", 0)) for p in prices if isinstance(p, dict)),
    }


class FakeTelegram:
    """Telegram's side of each method the bot calls (see the module docstring)."""

    def __init__(self, drop_pending_updates: Callable[[], None]) -> None:
        """:param drop_pending_updates: what setWebhook/deleteWebhook's flag of that name does."""
        self.webhook: dict[str, Any] | None = None
        """The parameters of the last setWebhook, None before it and after deleteWebhook."""
        self.messages: dict[tuple[int | str, int], JSONDict] = {}
        """Messages this server "sent" or edited, by (chat_id, message_id)."""
        self._drop_pending_updates = drop_pending_updates
        self._message_ids: dict[int | str, int] = {}
        self._file_serial = itertools.count(1)
        self._commands: dict[tuple[str, str], list[Any]] = {}
        self.handlers: dict[str, Handler] = {
            "getme": lambda call: self.me,
            "sendmessage": lambda call: self._new_message(call, text=_text(call)),
            "editmessagetext": lambda call: self._edit(call, text=_text(call)),
            "editmessagereplymarkup": lambda call: self._edit(call),
            "deletemessage": lambda call: True,
            "sendchataction": lambda call: True,
            "answercallbackquery": _answer_callback_query,
            "sendphoto": self._send_photo,
            "senddocument": self._send_document,
            "sendinvoice": lambda call: self._new_message(
                call, invoice=_send_invoice_content(call)
            ),
            "answerprecheckoutquery": lambda call: True,
            "refundstarpayment": lambda call: True,
            "setmycommands": self._set_my_commands,
            "setwebhook": self._set_webhook,
            "deletewebhook": self._delete_webhook,
        }

    @property
    def me(self) -> JSONDict:
        """The bot ``User`` returned by getMe."""
        return {
            **bot_user_dict(),
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    def commands(self, scope: dict[str, Any] | None = None, language_code: str = "") -> list[Any]:
        """Commands last set with setMyCommands for ``scope`` (default scope when None)."""
        return list(self._commands.get(_scope_key(scope, language_code), []))

    # ---------------------------------------------------------------- messages

    @staticmethod
    def _chat(call: Call) -> tuple[int | str, JSONDict]:
        """The validated ``chat_id`` of the call and the ``Chat`` to answer with."""
        chat_id = call.params.get("chat_id")
        if chat_id is None or chat_id == "":
            raise FakeApiError(400, "Bad Request: chat_id is empty")
        if isinstance(chat_id, bool) or not isinstance(chat_id, int | str):
            raise FakeApiError(400, "Bad Request: chat not found")
        return chat_id, chat_dict(chat_id)

    def _bot_message(self, message_id: int, chat: JSONDict) -> JSONDict:
        return {"message_id": message_id, "from": bot_user_dict(), "chat": chat, "date": now()}

    def _new_message(self, call: Call, **content: Any) -> JSONDict:
        chat_id, chat = self._chat(call)
        message_id = self._message_ids.get(chat_id, 0) + 1
        self._message_ids[chat_id] = message_id
        message = self._bot_message(message_id, chat)
        message.update({k: v for k, v in content.items() if v is not None})
        markup = _inline_markup(call)
        if markup is not None:
            message["reply_markup"] = markup
        self.messages[(chat_id, message_id)] = message
        return message

    def _edit(self, call: Call, **content: Any) -> JSONDict | bool:
        markup = _inline_markup(call)
        if call.params.get("inline_message_id"):
            return True
        message_id = call.params.get("message_id")
        if not isinstance(message_id, int):
            raise FakeApiError(400, "Bad Request: message identifier is not specified")
        chat_id, chat = self._chat(call)
        old = self.messages.get((chat_id, message_id))
        message = dict(old) if old is not None else self._bot_message(message_id, chat)
        message.update(content)
        message.pop("reply_markup", None)
        if markup is not None:
            message["reply_markup"] = markup
        message["edit_date"] = now()
        self.messages[(chat_id, message_id)] = message
        return message

    def _send_photo(self, call: Call) -> JSONDict:
        caption = _caption(call)
        serial = next(self._file_serial)
        file_id, size, _, _ = _file_meta(call.params.get("photo"), "photo", serial)
        sizes: list[JSONDict] = [
            {
                "file_id": f"{file_id}-{suffix}",
                "file_unique_id": f"AQAD{serial}{suffix}",
                "width": width,
                "height": height,
                "file_size": max((size or 60_000) * width * height // (800 * 600), 1),
            }
            for suffix, (width, height) in (("s", (90, 68)), ("m", (320, 240)), ("x", (800, 600)))
        ]
        sizes[-1]["file_id"] = file_id
        return self._new_message(call, photo=sizes, caption=caption)

    def _send_document(self, call: Call) -> JSONDict:
        caption = _caption(call)
        serial = next(self._file_serial)
        file_id, size, filename, mime = _file_meta(call.params.get("document"), "document", serial)
        document: JSONDict = {"file_id": file_id, "file_unique_id": f"AgAD{serial}"}
        if filename:
            document["file_name"] = filename
        if mime:
            document["mime_type"] = mime
        if size is not None:
            document["file_size"] = size
        return self._new_message(call, document=document, caption=caption)

    # ---------------------------------------------------------------- bot settings

    def _set_my_commands(self, call: Call) -> bool:
        commands = call.params.get("commands")
        if not isinstance(commands, list):
            raise FakeApiError(400, "Bad Request: commands must be an array")
        key = _scope_key(call.params.get("scope"), call.params.get("language_code"))
        self._commands[key] = commands
        return True

    def _set_webhook(self, call: Call) -> bool:
        if not call.params.get("url"):
            raise FakeApiError(400, "Bad Request: bad webhook: URL must be provided")
        self.webhook = dict(call.params)
        if call.params.get("drop_pending_updates"):
            self._drop_pending_updates()
        return True

    def _delete_webhook(self, call: Call) -> bool:
        self.webhook = None
        if call.params.get("drop_pending_updates"):
            self._drop_pending_updates()
        return True
