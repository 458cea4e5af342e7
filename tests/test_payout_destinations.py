"""Payout destinations: TRC-20 addresses (Base58Check) and IBANs (length and mod-97)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.chat import texts
from bot.domain.errors import InvalidInputError
from bot.domain.payout_destinations import (
    BASE58_ALPHABET,
    IBAN_LENGTHS,
    base58_decode,
    base58_encode,
    format_iban,
    is_valid_iban,
    is_valid_trc20_address,
    normalize_destination,
    tron_address,
)

KNOWN_IBANS = [
    "DE89 3704 0044 0532 0130 00",
    "GB82 WEST 1234 5698 7654 32",
    "FR14 2004 1010 0505 0001 3M02 606",
    "NL91 ABNA 0417 1643 00",
    "CH93 0076 2011 6238 5295 7",
    "NO93 8601 1117 947",
]


def with_check_digits(country: str, bban: str) -> str:
    """Build a valid IBAN (ISO 13616: 98 - mod97(bban + country + "00"))."""
    numeric = "".join(str(int(char, 36)) for char in bban + country + "00")
    return f"{country}{98 - int(numeric) % 97:02d}{bban}"


@pytest.mark.parametrize("iban", KNOWN_IBANS)
def test_known_ibans(iban: str) -> None:
    assert is_valid_iban(iban)
    assert normalize_destination("bank_transfer", iban.lower()) == iban.replace(" ", "")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("DE89 3704 0044 0532 0130 01", "check digits do not match"),
        ("DE89 3704 0044 0532 0130", "has 22 characters; this one has 20"),
        ("XX89 3704 0044 0532 0130 00", "That is not an IBAN"),
        ("hello", "That is not an IBAN"),
        ("", "That is not an IBAN"),
    ],
)
def test_bad_ibans_say_why(text: str, message: str) -> None:
    with pytest.raises(InvalidInputError) as refused:
        normalize_destination("bank_transfer", text)
    assert message in texts.error_text(refused.value)


countries = st.sampled_from(sorted(IBAN_LENGTHS))
digits = st.text(alphabet="0123456789", min_size=30, max_size=30)


@given(country=countries, filler=digits)
def test_generated_ibans_are_valid_and_one_changed_digit_is_caught(
    country: str, filler: str
) -> None:
    bban = filler[: IBAN_LENGTHS[country] - 4]
    iban = with_check_digits(country, bban)
    assert is_valid_iban(iban) and is_valid_iban(format_iban(iban))
    position = 4 + len(bban) // 2
    changed = str((int(iban[position]) + 1) % 10)
    assert not is_valid_iban(iban[:position] + changed + iban[position + 1 :])
    assert not is_valid_iban(iban + "0")


def test_known_tron_addresses() -> None:
    # The USDT contract and a well-known exchange wallet.
    for address in ("TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t", "TLa2f6VPqDgRE67v1736s7bJ8Ray5wYjU7"):
        assert is_valid_trc20_address(address)
        assert normalize_destination("usdt_trc20", f"  {address} ") == address


@pytest.mark.parametrize(
    "address",
    [
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6u",  # last character changed: checksum fails
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6",  # too short
        "0x742d35Cc6634C0532925a3b844Bc454e4438f44e",  # an Ethereum address
        "AR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t",  # not T
        "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj0t",  # 0 is not base58
    ],
)
def test_bad_tron_addresses(address: str) -> None:
    assert not is_valid_trc20_address(address)
    with pytest.raises(InvalidInputError) as refused:
        normalize_destination("usdt_trc20", address)
    assert "not a valid TRC-20 address" in texts.error_text(refused.value)


@given(account=st.binary(min_size=20, max_size=20), position=st.integers(1, 33),
       replacement=st.sampled_from(BASE58_ALPHABET))  # fmt: skip
def test_generated_tron_addresses_and_typos(
    account: bytes, position: int, replacement: str
) -> None:
    address = tron_address(account)
    assert len(address) == 34 and address[0] == "T"
    assert is_valid_trc20_address(address)
    if address[position] != replacement:
        typo = address[:position] + replacement + address[position + 1 :]
        assert not is_valid_trc20_address(typo)


@given(st.binary(max_size=40))
def test_base58_round_trip(data: bytes) -> None:
    assert base58_decode(base58_encode(data)) == data


def test_unknown_method_refused() -> None:
    with pytest.raises(InvalidInputError):
        normalize_destination("paypal", "me@example.com")
