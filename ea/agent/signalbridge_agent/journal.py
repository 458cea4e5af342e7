"""The journal: a local SQLite file that makes the agent safe to kill at any moment.

Written before and after every executor call. It holds each instruction received (with
its raw JSON and where its execution stands), the tickets the agent owns per signal, and
every report with whether the server accepted it yet. Each write is one committed
transaction, so after a crash the file says exactly what was done:

- ``received``: journaled and acked, not executed yet → execute it (checks again);
- ``executing``: the executor was called and the outcome is not written → reconcile with
  the executor (its positions, orders and history) before anything else;
- ``done``: the outcome and its reports are written; reports still ``queued`` are sent.
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
"""


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
            "state) VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (ticket) DO UPDATE SET "
            "kind = excluded.kind, volume = excluded.volume, state = excluded.state",
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
                )
                for h in holdings
            ],
        )

    def holdings(self, signal_id: str | None = None, *, open_only: bool = True) -> list[Owned]:
        query = (
            "SELECT ticket, signal_id, instruction_id, kind, symbol, side, volume, state "
            "FROM holdings WHERE (? IS NULL OR signal_id = ?) AND (? = 0 OR state = 'open') "
            "ORDER BY ticket"
        )
        rows = self._db.execute(query, (signal_id, signal_id, int(open_only))).fetchall()
        return [
            Owned(
                ticket=int(row[0]),
                signal_id=row[1],
                instruction_id=row[2],
                kind=HoldingKind(row[3]),
                symbol=row[4],
                side=Side(row[5]),
                volume=Decimal(row[6]),
                state=HoldingState(row[7]),
            )
            for row in rows
        ]

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
