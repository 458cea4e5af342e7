"""Domain errors: a code and the values its message needs; the chat layer words them.

The words live in the chat layer's catalogs (bot/chat/texts/errors.py), so the same error
reads right in every language, and a side-server view can map the code to its own answer.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    NOT_AVAILABLE = "not_available"
    # devices
    NAME_LENGTH = "name_length"
    NAME_ONE_LINE = "name_one_line"
    NAME_SLASH = "name_slash"
    NAME_TAKEN = "name_taken"  # name
    LOT_SIZE_INVALID = "lot_size_invalid"  # min, max (Decimal)
    MAX_AGE_INVALID = "max_age_invalid"  # min, max (seconds)
    PAIR_INVALID = "pair_invalid"  # item
    PAIR_DUPLICATE = "pair_duplicate"  # symbol
    PAIRS_TOO_MANY = "pairs_too_many"  # limit
    AFFIX_INVALID = "affix_invalid"
    DEVICE_LIMIT_REACHED = "device_limit_reached"  # limit
    # protocol v1.1 protections (bot/execution/protections.py)
    LOSS_LIMIT_NOT_TRIPPED = "loss_limit_not_tripped"
    # payouts
    PAYOUT_BELOW_MINIMUM = "payout_below_minimum"  # minimum (minor units)
    PAYOUT_ABOVE_BALANCE = "payout_above_balance"  # balance (minor units)
    PAYOUT_METHOD_GONE = "payout_method_gone"
    PAYOUT_ALREADY_SENT = "payout_already_sent"
    PAYOUT_NOT_FOUND = "payout_not_found"
    PAYOUT_STEP_DONE = "payout_step_done"  # id, state
    PAYOUT_REASON_EMPTY = "payout_reason_empty"
    REASON_TOO_LONG = "reason_too_long"  # limit
    REFERENCE_TOO_LONG = "reference_too_long"  # limit
    AMOUNT_NOT_A_NUMBER = "amount_not_a_number"  # example
    AMOUNT_NOT_POSITIVE = "amount_not_positive"
    AMOUNT_TOO_PRECISE = "amount_too_precise"  # currency, digits
    AMOUNT_TOO_LARGE = "amount_too_large"
    TRC20_INVALID = "trc20_invalid"
    IBAN_INVALID = "iban_invalid"
    IBAN_LENGTH = "iban_length"  # country, expected, actual
    IBAN_CHECKSUM = "iban_checksum"
    METHOD_NOT_OFFERED = "method_not_offered"
    # checkout
    CHECKOUT_UNKNOWN_INVOICE = "checkout_unknown_invoice"
    CHECKOUT_PLAN_GONE = "checkout_plan_gone"
    CHECKOUT_PRICE_CHANGED = "checkout_price_changed"
    REFUND_UNKNOWN_CHARGE = "refund_unknown_charge"
    REFUND_ALREADY = "refund_already"
    REFUND_TELEGRAM_REFUSED = "refund_telegram_refused"  # reason
    # signals
    SIGNAL_NOT_FOUND = "signal_not_found"
    SIGNAL_NOT_OPEN = "signal_not_open"  # state
    SIGNAL_SYNTAX = "signal_syntax"  # problem (a SyntaxProblem), word, field
    SIGNAL_INVALID = "signal_invalid"  # fields: field -> problem (likewise)
    # the device protocol (answered by the side server, never in the chat)
    UNKNOWN_INSTRUCTION = "unknown_instruction"
    UNKNOWN_SIGNAL = "unknown_signal"
    REPORT_CONFLICT = "report_conflict"
    # devices: trade management (protocol v1.1)
    RISK_PERCENT_INVALID = "risk_percent_invalid"  # max
    MONEY_INVALID = "money_invalid"
    MAX_LOTS_INVALID = "max_lots_invalid"  # min, max (Decimal)
    TP_SHARES_COUNT = "tp_shares_count"  # max
    TP_SHARE_INVALID = "tp_share_invalid"  # item
    TP_SHARES_SUM = "tp_shares_sum"  # total
    BREAKEVEN_INVALID = "breakeven_invalid"  # max_tp, max
    TRAILING_INVALID = "trailing_invalid"  # max
    POINTS_INVALID = "points_invalid"  # max
    POSITIONS_INVALID = "positions_invalid"  # max
    SYMBOL_INVALID = "symbol_invalid"  # item
    SYMBOLS_TOO_MANY = "symbols_too_many"  # limit
    HOURS_INVALID = "hours_invalid"
    HOURS_ORDER = "hours_order"
    CLOSE_ALL_NEEDS_UPDATE = "close_all_needs_update"


class AppError(Exception):
    """An expected failure: ``code`` says which, ``params`` hold the values it names."""

    def __init__(self, code: ErrorCode, /, **params: Any) -> None:
        super().__init__(code.value)
        self.code = code
        self.params = params


class NotFoundError(AppError):
    """The object does not exist or does not belong to the caller."""


class PermissionDeniedError(AppError):
    """The caller may not do this."""


class InvalidInputError(AppError):
    """The input was understood but is not acceptable."""


class ConflictError(AppError):
    """The object's state does not allow this any more."""
