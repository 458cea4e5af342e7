"""Bad [checkout] and [affiliates] settings stop the bot with one line naming the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ('[[checkout.plans]]\ncode = "Bad Code"\nname = "x"\nstars = 1\ndays = 1\n',
         "checkout.plans.code"),
        ('[[checkout.plans]]\ncode = "m"\nname = "x"\nstars = 0\ndays = 1\n',
         "checkout.plans.stars"),
        ("[affiliates]\ntiers = [{name = 'A', min_active_referrals = 1, per_lot_minor = 1, "
         "payment_share_bps = 1}]\n", "first tier must have min_active_referrals = 0"),
        ("[affiliates]\ntiers = [{name = 'A', min_active_referrals = 0, per_lot_minor = 1, "
         "payment_share_bps = 1}, {name = 'B', min_active_referrals = 0, per_lot_minor = 1, "
         "payment_share_bps = 1}]\n", "strictly increasing"),
        ('[affiliates]\npayout_methods = ["paypal"]\n', "affiliates.payout_methods"),
        ("[affiliates]\nhold_days = -1\n", "affiliates.hold_days"),
    ],
)  # fmt: skip
def test_bad_values_give_one_line(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "config.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_settings(path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
