"""The settings protocol v1.1 adds (agent.manage_wait, agent.symbols, agent.protocol, the
paper account and its symbols' tick figures), and a 1.0 journal opened by 1.1."""

from __future__ import annotations

import sqlite3
from decimal import Decimal
from pathlib import Path

import pytest
from signalbridge_agent.config import ConfigError, load
from signalbridge_agent.journal import HoldingState, Journal

ENV = {
    "SIGNALBRIDGE_SERVER_URL": "https://bot.example.com",
    "SIGNALBRIDGE_DEVICE_ID": "dev_" + "C" * 20,
    "SIGNALBRIDGE_SECRET": "s" * 43,
}


def config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "agent.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_v11_settings_and_their_defaults(tmp_path: Path) -> None:
    default = load(None, ENV)
    assert (default.settings.manage_wait, default.settings.symbols) == (1, ())
    assert default.settings.protocol == "1.1"
    assert default.paper.account.balance == Decimal("10000.00")
    loaded = load(
        config(
            tmp_path,
            """
[agent]
manage_wait = 3
symbols = ["XAUUSD", "EURUSD.m"]
protocol = "1"

[paper]
balance = "2500.50"
currency = "EUR"
leverage = 30

[paper.symbols.XAUUSD]
contract_size = "100"
tick_size = "0.01"
point = "0.01"

[paper.symbols.USDJPY]
tick_size = "0.001"
tick_value = "0.67"
""",
        ),
        ENV,
    )
    assert loaded.settings.manage_wait == 3
    assert loaded.settings.symbols == ("XAUUSD", "EURUSD.m")
    assert loaded.settings.protocol == "1"
    account = loaded.paper.account
    assert (account.balance, account.currency, account.leverage) == (Decimal("2500.50"), "EUR", 30)
    gold = loaded.paper.symbols["XAUUSD"].data("XAUUSD")
    assert (gold.tick_size, gold.tick_value, gold.point) == (
        Decimal("0.01"),
        Decimal("1.00"),  # contract size × tick size
        Decimal("0.01"),
    )
    yen = loaded.paper.symbols["USDJPY"].data("USDJPY")
    assert (yen.tick_value, yen.point) == (Decimal("0.67"), Decimal("0.001"))


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[agent]\nmanage_wait = 30", "agent.manage_wait must be a whole number, 0-25"),
        ('[agent]\nsymbols = "XAUUSD"', "agent.symbols must be a list of symbol names"),
        ('[agent]\nprotocol = "2"', 'agent.protocol must be "1.1" (the default) or "1"'),
        ('[paper]\nbalance = "-5"', "paper.balance must be a positive decimal number"),
        ('[paper]\ncurrency = ""', "paper.currency must be a currency code"),
        ('[paper.symbols.X]\ntick_value = "0"', "paper.symbols.X.tick_value must be a positive"),
    ],
)
def test_bad_v11_settings_name_their_key(tmp_path: Path, text: str, problem: str) -> None:
    with pytest.raises(ConfigError, match=problem.replace("(", r"\(").replace(")", r"\)")):
        load(config(tmp_path, text), ENV)


def test_a_journal_of_version_1_0_gains_the_new_columns_and_keeps_its_rows(
    tmp_path: Path,
) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            """
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO meta VALUES ('device_id', 'dev_CCCCCCCCCCCCCCCCCCCC');
            CREATE TABLE holdings (
                ticket INTEGER PRIMARY KEY, signal_id TEXT NOT NULL,
                instruction_id TEXT NOT NULL, kind TEXT NOT NULL, symbol TEXT NOT NULL,
                side TEXT NOT NULL, volume TEXT NOT NULL, state TEXT NOT NULL
            );
            INSERT INTO holdings VALUES
                (5000001, 'sig_1', 'ins_1', 'position', 'EURUSD', 'buy', '0.10', 'open');
            """
        )
    journal = Journal(path, "dev_" + "C" * 20)
    try:
        [owned] = journal.holdings()
        assert (owned.ticket, owned.leg, owned.exit_reason, owned.state) == (
            5000001,
            None,
            None,
            HoldingState.OPEN,
        )
        assert journal.managed(5000001).sl_reports == 0
    finally:
        journal.close()
