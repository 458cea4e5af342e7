"""Every text the bot sends, a module per feature; ``texts.NAME`` finds any of them.

Templates are ``Text``/``Plural`` (bot/chat/i18n.py): English message ids, translated into
the user's language when used. HTML parse mode; every user value is quoted. Helpers that
hold logic (money, lots, dates) are code here, not catalog entries.
"""

from bot.chat.texts.checkout import *  # noqa: F403
from bot.chat.texts.common import *  # noqa: F403
from bot.chat.texts.devices import *  # noqa: F403
from bot.chat.texts.errors import *  # noqa: F403
from bot.chat.texts.notices import *  # noqa: F403
from bot.chat.texts.payouts import *  # noqa: F403
from bot.chat.texts.referrals import *  # noqa: F403
from bot.chat.texts.signals import *  # noqa: F403
from bot.chat.texts.trade import *  # noqa: F403
from bot.chat.texts.trading import *  # noqa: F403
