"""Update builders: users, chats and updates in the shape Telegram sends them.

The updates come without ``update_id``: ``FakeBotAPI.inject_update`` and the conftest ``Chat``
add one. Generated message, callback and pre-checkout ids are unique within a test run.
"""

from __future__ import annotations

import itertools
import time
import zlib
from typing import Any

JSONDict = dict[str, Any]

DEFAULT_BOT_ID = 7000000001
DEFAULT_BOT_USERNAME = "signalbridge_test_bot"
DEFAULT_BOT_FIRST_NAME = "SignalBridge Test"

_user_message_ids = itertools.count(100_001)
_callback_ids = itertools.count(4_000_000_000_000_000_001)
_pre_checkout_ids = itertools.count(5_000_000_000_000_000_001)


def now() -> int:
    """Telegram's ``date``: Unix seconds."""
    return int(time.time())


def utf16_len(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units)."""
    return len(text.encode("utf-16-le")) // 2


def user_dict(
    user_id: int,
    first_name: str = "Test",
    *,
    username: str | None = None,
    last_name: str | None = None,
    language_code: str | None = "en",
) -> JSONDict:
    """A Telegram ``User`` (a human, ``is_bot`` false); optional fields are left out when None."""
    user: JSONDict = {"id": user_id, "is_bot": False, "first_name": first_name}
    if last_name is not None:
        user["last_name"] = last_name
    if username is not None:
        user["username"] = username
    if language_code is not None:
        user["language_code"] = language_code
    return user


def bot_user_dict(
    bot_id: int = DEFAULT_BOT_ID,
    username: str = DEFAULT_BOT_USERNAME,
    first_name: str = DEFAULT_BOT_FIRST_NAME,
) -> JSONDict:
    """The bot's ``User`` as it appears in the ``from`` field of messages the bot sent."""
    return {"id": bot_id, "is_bot": True, "first_name": first_name, "username": username}


def chat_dict(
    chat_id: int | str, *, first_name: str = "Test", username: str | None = None
) -> JSONDict:
    """A ``Chat`` for ``chat_id``.

    Positive ids are private chats, ids below ``-1000000000000`` supergroups, other negative ids
    groups, and ``"@name"`` strings channels.
    """
    if isinstance(chat_id, str):
        name = chat_id.removeprefix("@")
        channel_id = -1_001_000_000_000 - zlib.crc32(name.encode())
        return {"id": channel_id, "type": "channel", "title": name, "username": name}
    if chat_id > 0:
        chat: JSONDict = {"id": chat_id, "type": "private", "first_name": first_name}
        if username is not None:
            chat["username"] = username
        return chat
    if chat_id < -1_000_000_000_000:
        return {"id": chat_id, "type": "supergroup", "title": "Test supergroup"}
    return {"id": chat_id, "type": "group", "title": "Test group"}


def message_update(
    user_id: int,
    text: str,
    *,
    first_name: str = "Test",
    username: str | None = None,
    message_id: int | None = None,
    chat_id: int | None = None,
    language_code: str | None = "en",
) -> JSONDict:
    """An update with a text ``message`` from ``user_id``.

    The chat is the user's private chat unless ``chat_id`` says otherwise (a negative id gives a
    group). A leading ``/command`` gets a ``bot_command`` entity, as real Telegram sends.
    ``message_id`` defaults to a unique number (starting above 100000).
    """
    user = user_dict(user_id, first_name, username=username, language_code=language_code)
    message: JSONDict = {
        "message_id": next(_user_message_ids) if message_id is None else message_id,
        "from": user,
        "chat": chat_dict(
            user_id if chat_id is None else chat_id, first_name=first_name, username=username
        ),
        "date": now(),
        "text": text,
    }
    if text.startswith("/"):
        command = text.split(maxsplit=1)[0] if text.strip() else text
        message["entities"] = [{"type": "bot_command", "offset": 0, "length": utf16_len(command)}]
    return {"message": message}


def callback_update(
    user_id: int,
    data: str,
    *,
    message_id: int = 1,
    chat_id: int | None = None,
    message_text: str = "…",
    first_name: str = "Test",
) -> JSONDict:
    """An update with a ``callback_query`` (unique id) pressed on a bot message ``message_id``."""
    chat = chat_dict(user_id if chat_id is None else chat_id, first_name=first_name)
    return {
        "callback_query": {
            "id": str(next(_callback_ids)),
            "from": user_dict(user_id, first_name),
            "message": {
                "message_id": message_id,
                "from": bot_user_dict(),
                "chat": chat,
                "date": now(),
                "text": message_text,
            },
            "chat_instance": str(-zlib.crc32(str(chat["id"]).encode()) - 10**17),
            "data": data,
        }
    }


def pre_checkout_update(
    user_id: int,
    *,
    payload: str,
    total_amount: int,
    currency: str = "XTR",
    query_id: str | None = None,
    first_name: str = "Test",
) -> JSONDict:
    """An update with a ``pre_checkout_query`` for an invoice with ``payload``."""
    return {
        "pre_checkout_query": {
            "id": query_id if query_id is not None else str(next(_pre_checkout_ids)),
            "from": user_dict(user_id, first_name),
            "currency": currency,
            "total_amount": total_amount,
            "invoice_payload": payload,
        }
    }


def successful_payment_update(
    user_id: int,
    *,
    payload: str,
    total_amount: int,
    charge_id: str,
    currency: str = "XTR",
    first_name: str = "Test",
) -> JSONDict:
    """An update with a service ``message`` carrying ``successful_payment`` in a private chat."""
    return {
        "message": {
            "message_id": next(_user_message_ids),
            "from": user_dict(user_id, first_name),
            "chat": chat_dict(user_id, first_name=first_name),
            "date": now(),
            "successful_payment": {
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": payload,
                "telegram_payment_charge_id": charge_id,
                "provider_payment_charge_id": "",
            },
        }
    }
