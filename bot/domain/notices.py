"""Messages the product owes someone outside an update, by code and values, never text.

They are outbox rows (bot/infra/outbox.py ``Outbox.notice``) carrying a ``NoticeCode`` and
its params (JSON: strings, numbers, None); the chat layer words them when they are sent,
in the recipient's language (bot/chat/notices.py). The params each code carries are listed
beside it; amounts and dates come formatted (they read the same in every language).
"""

from __future__ import annotations

from enum import StrEnum


class NoticeCode(StrEnum):
    # devices (bot/execution): device, symbol, side, action, price, volume, profit | None
    FILL = "fill"
    # device, symbol, side, action, code, message
    DEVICE_ERROR = "device_error"
    # a closed position (EA_PROTOCOL 5.4): device, symbol, side, leg | None, reason, price,
    # volume, profit (decimal strings), currency | None
    POSITION_CLOSED = "position_closed"
    # the daily loss limit stopped opens today: device, device_pk, loss, limit, currency
    LOSS_LIMIT_TRIPPED = "loss_limit_tripped"
    # admins (bot/intake/inbox.py): update_id, user_id | None, error, attempts, again
    DEAD_LETTER = "dead_letter"
    # update_id
    DEAD_LETTER_DONE = "dead_letter_done"
    # referrals and payments (handlers): name
    REFERRAL_JOINED = "referral_joined"
    # name, amount, available
    COMMISSION_EARNED = "commission_earned"
    # stars, user_id, charge_id, expires, commission: {amount, state, balance} | None
    REFUND_DONE = "refund_done"
    # charge_id, stars, expires
    REFUND_USER = "refund_user"
    # amount, balance
    REFUND_AFFILIATE = "refund_affiliate"
    # user_id, name, username | None, question
    PAYSUPPORT_QUESTION = "paysupport_question"
    # payouts: id, amount
    PAYOUT_APPROVED = "payout_approved"
    # id, amount, reason
    PAYOUT_REJECTED = "payout_rejected"
    # id, amount, destination, reference | None
    PAYOUT_PAID = "payout_paid"
    # the review card for admins: the fields of bot/chat/views.py payout_card_values
    PAYOUT_CARD = "payout_card"
