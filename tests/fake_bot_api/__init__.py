"""A fake Telegram Bot API server for tests, spoken to by aiogram's real HTTP session.

::

    api = FakeBotAPI()
    base_url = await api.start()
    bot = Bot(
        token="123456:" + "A" * 35,
        session=AiohttpSession(api=TelegramAPIServer.from_base(base_url)),
    )
    ...
    await close_bot_session(bot)
    await api.close()

One job a module: :mod:`.server` (the aiohttp server and routing), :mod:`.wire` (decoding a
request), :mod:`.calls` (the recorded requests and the queries on them), :mod:`.telegram`
(the methods' answers and the state behind them), :mod:`.failures` (Telegram-shaped errors;
429/5xx/403 and slow answers on demand), :mod:`.updates` (getUpdates and webhook delivery)
and :mod:`.builders` (updates as Telegram sends them).
"""

from tests.fake_bot_api.builders import (
    DEFAULT_BOT_ID,
    DEFAULT_BOT_USERNAME,
    callback_update,
    message_update,
    pre_checkout_update,
    successful_payment_update,
    user_dict,
)
from tests.fake_bot_api.calls import Call, button, buttons
from tests.fake_bot_api.failures import NOT_MODIFIED_DESCRIPTION, FakeApiError
from tests.fake_bot_api.server import FakeBotAPI, close_bot_session

__all__ = [
    "DEFAULT_BOT_ID",
    "DEFAULT_BOT_USERNAME",
    "NOT_MODIFIED_DESCRIPTION",
    "Call",
    "FakeApiError",
    "FakeBotAPI",
    "button",
    "buttons",
    "callback_update",
    "close_bot_session",
    "message_update",
    "pre_checkout_update",
    "successful_payment_update",
    "user_dict",
]
