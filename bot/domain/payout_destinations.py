"""Payout destinations per method: a TRON (TRC-20) address or an IBAN, checked offline.

A TRON address is Base58Check: version byte 0x41, 20 bytes of account, and 4 bytes of
double SHA-256 checksum, 34 characters starting with "T". An IBAN is checked for its
country's length and the ISO 13616 mod-97 checksum. Both catch the typing mistakes that
would otherwise send money to nobody.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from bot.domain.errors import ErrorCode, InvalidInputError

BASE58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
TRC20_RE = re.compile(r"^T[1-9A-HJ-NP-Za-km-z]{33}$")
TRON_VERSION = 0x41

# ISO 13616 registry: IBAN length per country.
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BI": 27, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24,
    "DE": 22, "DJ": 27, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18,
    "FK": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27,
    "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27,
    "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MN": 20, "MR": 27,
    "MT": 31, "MU": 30, "NI": 28, "NL": 18, "NO": 15, "OM": 23, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "RU": 33, "SA": 24, "SC": 31,
    "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25, "SV": 28,
    "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20, "YE": 30,
}  # fmt: skip
IBAN_RE = re.compile(r"^[A-Z]{2}[0-9]{2}[A-Z0-9]{11,30}$")


@dataclass(frozen=True, slots=True)
class PayoutMethodInfo:
    """A payout method; the chat layer names it and says what it asks for."""

    code: str
    example: str


METHODS: dict[str, PayoutMethodInfo] = {
    "usdt_trc20": PayoutMethodInfo("usdt_trc20", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"),
    "bank_transfer": PayoutMethodInfo("bank_transfer", "DE89 3704 0044 0532 0130 00"),
}


def base58_decode(text: str) -> bytes:
    number = 0
    for char in text:
        index = BASE58_ALPHABET.find(char)
        if index < 0:
            raise ValueError(f"not a base58 character: {char!r}")
        number = number * 58 + index
    body = number.to_bytes((number.bit_length() + 7) // 8, "big") if number else b""
    leading_zeros = len(text) - len(text.lstrip(BASE58_ALPHABET[0]))
    return b"\x00" * leading_zeros + body


def base58_encode(data: bytes) -> str:
    number = int.from_bytes(data, "big")
    chars = []
    while number:
        number, index = divmod(number, 58)
        chars.append(BASE58_ALPHABET[index])
    leading_zeros = len(data) - len(data.lstrip(b"\x00"))
    return BASE58_ALPHABET[0] * leading_zeros + "".join(reversed(chars))


def _checksum(payload: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]


def tron_address(account: bytes) -> str:
    """The Base58Check TRON address of a 20-byte account (tests, examples)."""
    payload = bytes([TRON_VERSION]) + account
    return base58_encode(payload + _checksum(payload))


def is_valid_trc20_address(address: str) -> bool:
    if not TRC20_RE.match(address):
        return False
    raw = base58_decode(address)
    if len(raw) != 25 or raw[0] != TRON_VERSION:
        return False
    return _checksum(raw[:21]) == raw[21:]


def iban_check_digits_ok(iban: str) -> bool:
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(char, 36)) for char in rearranged)
    return int(digits) % 97 == 1


def normalize_iban(text: str) -> str:
    return re.sub(r"[\s-]", "", text).upper()


def is_valid_iban(text: str) -> bool:
    iban = normalize_iban(text)
    if not IBAN_RE.match(iban):
        return False
    if IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    return iban_check_digits_ok(iban)


def format_iban(iban: str) -> str:
    """Groups of four, as printed on bank statements."""
    return " ".join(iban[i : i + 4] for i in range(0, len(iban), 4))


def normalize_destination(method: str, text: str) -> str:
    """The destination as stored, or InvalidInputError saying what is wrong."""
    text = text.strip()
    if method == "usdt_trc20":
        if not is_valid_trc20_address(text):
            raise InvalidInputError(ErrorCode.TRC20_INVALID)
        return text
    if method == "bank_transfer":
        iban = normalize_iban(text)
        if not IBAN_RE.match(iban) or iban[:2] not in IBAN_LENGTHS:
            raise InvalidInputError(ErrorCode.IBAN_INVALID)
        if IBAN_LENGTHS[iban[:2]] != len(iban):
            raise InvalidInputError(
                ErrorCode.IBAN_LENGTH,
                country=iban[:2],
                expected=IBAN_LENGTHS[iban[:2]],
                actual=len(iban),
            )
        if not iban_check_digits_ok(iban):
            raise InvalidInputError(ErrorCode.IBAN_CHECKSUM)
        return iban
    raise InvalidInputError(ErrorCode.METHOD_NOT_OFFERED)


def display_destination(method: str, destination: str) -> str:
    return format_iban(destination) if method == "bank_transfer" else destination
