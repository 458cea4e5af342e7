"""The journal: a local SQLite file that makes the agent safe to kill at any moment.

Written before and after every executor call. It holds each instruction received (with
its raw JSON and where its execution stands), the tickets the agent owns per signal, and
every report with whether the server accepted it yet. Each write is one committed
transaction, so after a crash the file says exactly what was done:

- ``received``: journaled and acked, not executed yet → execute it (checks again);
- ``executing``: the executor was called and the outcome is not written → reconcile with
  the executor (its positions, orders and history) before anything else;
- ``done``: the outcome and its reports are written; reports still ``queued`` are sent.

Protocol v1.1 adds each ticket's leg and how it ended (``exit_reason``: tp, sl, ...), and
the stop-loss management of each position (``managed``): a move intended before the
executor call, the level set after it, and the last level reported with its time, so an
``sl_moved`` event is neither lost nor sent twice across a restart.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import StrEnum
from pathlib import Path
from typing import Any

from signalbridge_agent.protocol import Side
from signalbridge_agent.trading import HoldingKind

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS instructions (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    signal_id TEXT,
    action TEXT,
    raw TEXT NOT NULL,
    state TEXT NOT NULL,
    received_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    plan TEXT,
    outcome TEXT
);
CREATE TABLE IF NOT EXISTS holdings (
    ticket INTEGER PRIMARY KEY,
    signal_id TEXT NOT NULL,
    instruction_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    volume TEXT NOT NULL,
    state TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS instructions_by_state ON instructions (state);
CREATE INDEX IF NOT EXISTS holdings_by_signal ON holdings (signal_id, state);
CREATE INDEX IF NOT EXISTS holdings_by_instruction ON holdings (instruction_id);
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    report_id TEXT NOT NULL UNIQUE,
    kind TEXT NOT NULL,
    instruction_id TEXT NOT NULL,
    body TEXT NOT NULL,
    state TEXT NOT NULL,
    record_id TEXT,
    answer TEXT,
    queued_at TEXT NOT NULL,
    answered_at TEXT
);
CREATE INDEX IF NOT EXISTS outbox_by_state ON outbox (state, seq);
CREATE TABLE IF NOT EXISTS managed (
    ticket INTEGER PRIMARY KEY,
    breakeven_done INTEGER NOT NULL DEFAULT 0,
    sl_intent TEXT,
    sl_moved TEXT,
    sl_reported TEXT,
    sl_reported_at TEXT,
    sl_reports INTEGER NOT NULL DEFAULT 0
);
"""
_SERVER_PROTOCOL = "server_protocol"
# Columns added by v1.1 to a journal written by 1.0 (ALTER TABLE keeps its rows).
_ADDED_COLUMNS = {"holdings": (("leg", "INTEGER"), ("exit_reason", "TEXT"))}


class Stage(StrEnum):
    RECEIVED = "received"
    EXECUTING = "executing"
    DONE = "done"


class ReportState(StrEnum):
    QUEUED = "queued"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


class HoldingState(StrEnum):
    OPEN = "open"
    CLOSED = "closed"
    GONE = "gone"  # deleted, cancelled or closed outside an instruction


@dataclass(frozen=True, slots=True)
class Report:
    kind: str  # ack | fill | error: the endpoint
    body: dict[str, Any]

    @property
    def report_id(self) -> str:
        return str(self.body["report_id"])

    @property
    def instruction_id(self) -> str:
        return str(self.body["instruction_id"])


@dataclass(frozen=True, slots=True)
class Entry:
    id: str
    signal_id: str | None
    action: str | None
    raw: Any
    stage: Stage
    received_at: datetime
    started_at: datetime | None
    plan: dict[str, Any] | None
    outcome: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Owned:
    """A ticket the agent placed for a signal (the journal's side of ownership)."""

    ticket: int
    signal_id: str
    instruction_id: str
    kind: HoldingKind
    symbol: str
    side: Side
    volume: Decimal
    state: HoldingState
    leg: int | None = None  # v1.1 opens only; None: a v1 open's one position
    exit_reason: str | None = None  # how it ended outside an instruction (tp, sl, ...)


@dataclass(frozen=True, slots=True)
class Managed:
    """A position's stop-loss management (absent: nothing done to it yet)."""

    ticket: int
    breakeven_done: bool = False
    sl_intent: Decimal | None = None  # a move under way: written before the executor call
    sl_moved: Decimal | None = None  # the last level management set
    sl_reported: Decimal | None = None  # the last level queued as an sl_moved event
    sl_reported_at: datetime | None = None
    sl_reports: int = 0  # events queued so far: numbers the next one's report id


@dataclass(frozen=True, slots=True)
class Queued:
    seq: int
    kind: str
    body: bytes  # exactly the bytes sent (and re-sent) to the server
    report_id: str
    instruction_id: str


@dataclass(frozen=True, slots=True)
class SentReport:
    report_id: str
    kind: str
    body: dict[str, Any]
    state: ReportState
    record_id: str | None  # the server's id, once accepted
    answer: str | None  # "201", "200 duplicate", or the error for a refused one


class JournalMismatch(Exception):
    """The journal file belongs to another device."""


def _now() -> str:
    return datetime.now(UTC).isoformat()


def _time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _number(value: str | None) -> Decimal | None:
    return None if value is None else Decimal(value)


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def encode(body: dict[str, Any]) -> bytes:
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def connect(path: Path) -> sqlite3.Connection:
    """A connection with the settings every user of the file needs (journal, paper book)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, timeout=10.0, check_same_thread=False)
    db.execute("PRAGMA journal_mode=WAL")
    # A trade must survive a power cut once the journal says it happened.
    db.execute("PRAGMA synchronous=FULL")
    db.execute("PRAGMA busy_timeout=10000")
    return db


class Journal:
    def __init__(self, path: Path, device_id: str) -> None:
        self.path = path
        self._db = connect(path)
        with self._db:
            self._db.executescript(_SCHEMA)
            for table, columns in _ADDED_COLUMNS.items():
                have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns:
                    if name not in have:
                        self._db.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            row = self._db.execute("SELECT value FROM meta WHERE key = 'device_id'").fetchone()
            if row is None:
                self._db.execute(
                    "INSERT INTO meta (key, value) VALUES ('device_id', ?)", (device_id,)
                )
            elif row[0] != device_id:
                raise JournalMismatch(
                    f"the journal {path} belongs to device {row[0]}, not {device_id}; "
                    "give each device its own journal file"
                )

    def close(self) -> None:
        self._db.close()

    def server_protocol(self) -> str | None:
        """What the server last said of protocol v1.1: "1.1" (it took a state), "1" (it
        has no state endpoint) or None (not asked yet)."""
        return self.meta(_SERVER_PROTOCOL)

    def set_server_protocol(self, protocol: str) -> None:
        self.set_meta(_SERVER_PROTOCOL, protocol)

    def events_wanted(self) -> bool:
        """Position events are queued unless the server is known to speak only v1."""
        return self.server_protocol() != "1"

    def meta(self, key: str) -> str | None:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._db:
            self._db.execute(
                "INSERT INTO meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # ------------------------------------------------------------------ instructions

    def known(self, instruction_id: str) -> bool:
        query = "SELECT 1 FROM instructions WHERE id = ?"
        return self._db.execute(query, (instruction_id,)).fetchone() is not None

    def receive(
        self,
        instruction_id: str,
        raw: Any,
        *,
        signal_id: str | None,
        action: str | None,
        reports: Sequence[Report],
        done: bool = False,
    ) -> None:
        """Journal an instruction and queue its first reports, in one transaction."""
        now = _now()
        stage = Stage.DONE if done else Stage.RECEIVED
        with self._db:
            self._db.execute(
                "INSERT INTO instructions (id, signal_id, action, raw, state, received_at, "
                "finished_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    instruction_id,
                    signal_id,
                    action,
                    json.dumps(raw),
                    stage.value,
                    now,
                    now if done else None,
                ),
            )
            self._queue(reports, now)

    def start(self, instruction_id: str, plan: dict[str, Any]) -> None:
        """Written just before the executor call: what is about to be done."""
        with self._db:
            self._db.execute(
                "UPDATE instructions SET state = ?, started_at = ?, plan = ? WHERE id = ?",
                (Stage.EXECUTING.value, _now(), json.dumps(plan), instruction_id),
            )

    def finish(
        self,
        instruction_id: str,
        outcome: dict[str, Any],
        reports: Sequence[Report],
        holdings: Iterable[Owned] = (),
    ) -> None:
        """Written just after the executor call: the outcome, its reports, the tickets."""
        now = _now()
        with self._db:
            self._db.execute(
                "UPDATE instructions SET state = ?, finished_at = ?, outcome = ? WHERE id = ?",
                (Stage.DONE.value, now, json.dumps(outcome), instruction_id),
            )
            self._queue(reports, now)
            self._own(holdings)

    def entry(self, instruction_id: str) -> Entry | None:
        row = self._db.execute(
            "SELECT id, signal_id, action, raw, state, received_at, started_at, plan, outcome "
            "FROM instructions WHERE id = ?",
            (instruction_id,),
        ).fetchone()
        return None if row is None else _entry(row)

    def entries(self, *, unfinished: bool = False) -> list[Entry]:
        """The instructions journaled, in the order received (only those not done)."""
        rows = self._db.execute(
            "SELECT id, signal_id, action, raw, state, received_at, started_at, plan, outcome "
            "FROM instructions WHERE (? = 0 OR state != 'done') ORDER BY seq",
            (int(unfinished),),
        ).fetchall()
        return [_entry(row) for row in rows]

    def unfinished(self) -> list[Entry]:
        return self.entries(unfinished=True)

    # ------------------------------------------------------------------ holdings

    def own(self, holdings: Iterable[Owned], reports: Sequence[Report] = ()) -> None:
        """Record tickets' new state and the reports that announce it, in one transaction."""
        with self._db:
            self._own(holdings)
            self._queue(reports, _now())

    def _own(self, holdings: Iterable[Owned]) -> None:
        self._db.executemany(
            "INSERT INTO holdings (ticket, signal_id, instruction_id, kind, symbol, side, volume, "
            "state, leg, exit_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
            "ON CONFLICT (ticket) DO UPDATE SET kind = excluded.kind, volume = excluded.volume, "
            "state = excluded.state, exit_reason = excluded.exit_reason",
            [
                (
                    h.ticket,
                    h.signal_id,
                    h.instruction_id,
                    h.kind.value,
                    h.symbol,
                    h.side.value,
                    str(h.volume),
                    h.state.value,
                    h.leg,
                    h.exit_reason,
                )
                for h in holdings
            ],
        )

    def holdings(self, signal_id: str | None = None, *, open_only: bool = True) -> list[Owned]:
        query = (
            f"{_HOLDINGS} WHERE (? IS NULL OR signal_id = ?) "
            "AND (? = 0 OR state = 'open') ORDER BY ticket"
        )
        rows = self._db.execute(query, (signal_id, signal_id, int(open_only))).fetchall()
        return [_owned(row) for row in rows]

    def of_instruction(self, instruction_id: str) -> list[Owned]:
        """Every ticket an open placed, whatever became of it, leg 0 first."""
        query = f"{_HOLDINGS} WHERE instruction_id = ? ORDER BY COALESCE(leg, 0), ticket"
        return [_owned(row) for row in self._db.execute(query, (instruction_id,)).fetchall()]

    def symbols(self, recent: int = 200) -> list[str]:
        """The symbols of the last ``recent`` opens journaled, in the order first received."""
        rows = self._db.execute(
            "SELECT raw FROM (SELECT seq, raw FROM instructions WHERE action = 'open' "
            "ORDER BY seq DESC LIMIT ?) ORDER BY seq",
            (recent,),
        ).fetchall()
        seen: dict[str, None] = {}
        for (raw,) in rows:
            symbol = json.loads(raw).get("symbol")
            if isinstance(symbol, str):
                seen.setdefault(symbol, None)
        return list(seen)

    # ------------------------------------------------------------------ management

    def managed(self, ticket: int) -> Managed:
        row = self._db.execute(
            "SELECT ticket, breakeven_done, sl_intent, sl_moved, sl_reported, sl_reported_at, "
            "sl_reports FROM managed WHERE ticket = ?",
            (ticket,),
        ).fetchone()
        if row is None:
            return Managed(ticket)
        return Managed(
            ticket=int(row[0]),
            breakeven_done=bool(row[1]),
            sl_intent=_number(row[2]),
            sl_moved=_number(row[3]),
            sl_reported=_number(row[4]),
            sl_reported_at=_time(row[5]),
            sl_reports=int(row[6]),
        )

    def manage(self, state: Managed, reports: Sequence[Report] = ()) -> None:
        """Store a position's management state and the events it queues, in one transaction."""
        with self._db:
            self._db.execute(
                "INSERT INTO managed (ticket, breakeven_done, sl_intent, sl_moved, sl_reported, "
                "sl_reported_at, sl_reports) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ticket) "
                "DO UPDATE SET breakeven_done = excluded.breakeven_done, "
                "sl_intent = excluded.sl_intent, sl_moved = excluded.sl_moved, "
                "sl_reported = excluded.sl_reported, sl_reported_at = excluded.sl_reported_at, "
                "sl_reports = excluded.sl_reports",
                (
                    state.ticket,
                    int(state.breakeven_done),
                    _text(state.sl_intent),
                    _text(state.sl_moved),
                    _text(state.sl_reported),
                    None if state.sl_reported_at is None else state.sl_reported_at.isoformat(),
                    state.sl_reports,
                ),
            )
            self._queue(reports, _now())

    # ------------------------------------------------------------------ reports

    def queue(self, reports: Sequence[Report]) -> None:
        with self._db:
            self._queue(reports, _now())

    def _queue(self, reports: Sequence[Report], now: str) -> None:
        # A report id is derived from its instruction and step: queuing one again is a no-op.
        self._db.executemany(
            "INSERT INTO outbox (report_id, kind, instruction_id, body, state, queued_at) "
            "VALUES (?, ?, ?, ?, 'queued', ?) ON CONFLICT (report_id) DO NOTHING",
            [
                (r.report_id, r.kind, r.instruction_id, encode(r.body).decode("utf-8"), now)
                for r in reports
            ],
        )

    def queued(self) -> list[Queued]:
        rows = self._db.execute(
            "SELECT seq, kind, body, report_id, instruction_id FROM outbox "
            "WHERE state = 'queued' ORDER BY seq"
        ).fetchall()
        return [Queued(int(r[0]), r[1], r[2].encode("utf-8"), r[3], r[4]) for r in rows]

    def answered(self, seq: int, state: ReportState, record_id: str | None, answer: str) -> None:
        with self._db:
            self._db.execute(
                "UPDATE outbox SET state = ?, record_id = ?, answer = ?, answered_at = ? "
                "WHERE seq = ?",
                (state.value, record_id, answer, _now(), seq),
            )

    def reports(self) -> list[SentReport]:
        """Every report with where it stands, in the order queued."""
        rows = self._db.execute(
            "SELECT report_id, kind, body, state, record_id, answer FROM outbox ORDER BY seq"
        ).fetchall()
        return [
            SentReport(r[0], r[1], json.loads(r[2]), ReportState(r[3]), r[4], r[5]) for r in rows
        ]


_HOLDINGS = (
    "SELECT ticket, signal_id, instruction_id, kind, symbol, side, volume, state, leg, "
    "exit_reason FROM holdings"
)


def _owned(row: Any) -> Owned:
    return Owned(
        ticket=int(row[0]),
        signal_id=row[1],
        instruction_id=row[2],
        kind=HoldingKind(row[3]),
        symbol=row[4],
        side=Side(row[5]),
        volume=Decimal(row[6]),
        state=HoldingState(row[7]),
        leg=None if row[8] is None else int(row[8]),
        exit_reason=row[9],
    )


def _entry(row: Any) -> Entry:
    return Entry(
        id=row[0],
        signal_id=row[1],
        action=row[2],
        raw=json.loads(row[3]),
        stage=Stage(row[4]),
        received_at=datetime.fromisoformat(row[5]),
        started_at=_time(row[6]),
        plan=None if row[7] is None else json.loads(row[7]),
        outcome=None if row[8] is None else json.loads(row[8]),
    )
