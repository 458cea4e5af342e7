"""Builds the shipped MQL files with g++ (ea/shim) and runs them: for tests/test_ea_mql*.py.

The .mqh/.mq5/.mq4 files go through ea/shim/mql2cpp.py (the one mechanical rewrite) into a
build folder, then g++ compiles them against ea/shim/mql_shim.hpp: a command-line driver
of the include files (unit), and each EA inside ea/shim/harness.cpp with the simulated
broker of ea/shim/broker_sim.hpp (mt5, mt4).
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

from tests.conftest import REPO_ROOT

EA_DIR = REPO_ROOT / "ea"
SHIM_DIR = EA_DIR / "shim"
CXX = shutil.which("g++") or "g++"
CXXFLAGS = ["-std=c++17", "-O0", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Werror"]
# After a restart the EA waits this long for the terminal to show an interrupted trade
# before it concludes there is none (30 s in the shipped EA; short here to keep tests fast).
TEST_RECONCILE_GRACE_S = 3


def load_mql2cpp() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mql2cpp", SHIM_DIR / "mql2cpp.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def translate(build: Path) -> Path:
    """The rewritten tree of ea/ (include/, mql5/, mql4/) under build/src."""
    target = build / "src"
    load_mql2cpp().translate_tree(EA_DIR, target)
    return target


def compile_all(build: Path, names: tuple[str, ...]) -> dict[str, Path]:
    """Compile the named binaries (unit, mt5, mt4) in parallel; fail with g++'s output."""
    source = translate(build)
    include = source / "include"
    jobs: dict[str, tuple[Path, subprocess.Popen[bytes]]] = {}
    for name in names:
        output = build / f"signalbridge-{name}"
        if name == "unit":
            args = ["-D__MQL5__", str(SHIM_DIR / "unit_main.cpp")]
        else:
            version = name[-1]
            ea = source / f"mql{version}" / f"SignalBridge.mq{version}"
            args = [
                f"-D__MQL{version}__",
                f'-DSB_EA_SOURCE="{ea}"',
                f"-DSB_RECONCILE_GRACE_S={TEST_RECONCILE_GRACE_S}",
                str(SHIM_DIR / "harness.cpp"),
            ]
        command = [
            CXX,
            *CXXFLAGS,
            "-I",
            str(include),
            "-I",
            str(SHIM_DIR),
            *args,
            "-o",
            str(output),
        ]
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        jobs[name] = (output, process)
    built: dict[str, Path] = {}
    failures = []
    for name, (output, process) in jobs.items():
        log, _ = process.communicate(timeout=600)
        if process.returncode != 0:
            failures.append(f"--- {name} ---\n{log.decode(errors='replace')}")
        built[name] = output
    assert not failures, "g++ failed:\n" + "\n".join(failures)
    return built


def run_unit(binary: Path, *args: str, env: dict[str, str] | None = None) -> str:
    result = subprocess.run(
        [str(binary), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode in (0, 1), result.stderr
    return result.stdout


# ---------------------------------------------------------------------- the broker


@dataclass
class Market:
    """The simulated broker's symbols ($SB_MARKET_FILE), one a line."""

    path: Path
    rows: dict[str, list[Any]] = field(default_factory=dict)

    def set(
        self,
        name: str,
        bid: str,
        ask: str,
        *,
        digits: int = 5,
        volume: tuple[str, str, str] = ("0.01", "0.01", "100"),
        contract: int = 100_000,
        trade_mode: int = 4,
        open_: bool = True,
        tick: tuple[str, str] | None = None,
    ) -> None:
        """``tick``: (tick size, tick value in the account's currency); by default the
        point and contract x point (a symbol quoted in the account's currency)."""
        self.rows[name] = [name, bid, ask, digits, *volume, contract, trade_mode, int(open_)]
        if tick is not None:
            self.rows[name].extend(tick)
        text = "".join(" ".join(str(v) for v in row) + "\n" for row in self.rows.values())
        temp = self.path.with_suffix(".tmp")
        temp.write_text(text)
        os.replace(temp, self.path)


@dataclass(frozen=True)
class Ticket:
    ticket: int
    symbol: str
    type: int
    volume: float
    price: float
    sl: float
    tp: float
    magic: int
    comment: str
    state: int  # 0 live, 1 closed, 2 deleted
    close_price: float
    profit: float


def broker_tickets(path: Path) -> list[Ticket]:
    """Every order, position and history ticket of the simulated broker."""
    if not path.exists():
        return []
    tickets = []
    for line in path.read_text().splitlines():
        fields = line.split(" ")
        if fields[0] != "ticket":
            continue
        f = fields[1:]
        tickets.append(
            Ticket(
                ticket=int(f[0]),
                symbol=f[1],
                type=int(f[2]),
                volume=float(f[3]),
                price=float(f[4]),
                sl=float(f[5]),
                tp=float(f[6]),
                magic=int(f[7]),
                comment="" if f[8] == "-" else f[8].replace("%20", " ").replace("%25", "%"),
                state=int(f[10]),
                close_price=float(f[11]),
                profit=float(f[12]),
            )
        )
    return tickets


def live(tickets: list[Ticket]) -> list[Ticket]:
    return [t for t in tickets if t.state == 0]


# ---------------------------------------------------------------------- the EA


class EARun:
    """One run of a compiled EA: the terminal starting it, and stopping (or it dying)."""

    def __init__(self, binary: Path, workdir: Path, env: dict[str, str]) -> None:
        self.binary = binary
        self.workdir = workdir
        self.env = env
        self.stop_file = workdir / "stop"
        self.process: asyncio.subprocess.Process | None = None
        self.output = ""
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> EARun:
        self.stop_file.unlink(missing_ok=True)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "SB_FILES_DIR": str(self.workdir / "Files"),
            "SB_BROKER_FILE": str(self.workdir / "broker.txt"),
            "SB_MARKET_FILE": str(self.workdir / "market.txt"),
            "SB_STOP_FILE": str(self.stop_file),
            "SB_RUN_SECONDS": "90",
            "SB_POLL_WAIT": "1",
            "SB_LOG_DETAIL": "2",
            **self.env,
        }
        (self.workdir / "Files").mkdir(exist_ok=True)
        self.process = await asyncio.create_subprocess_exec(
            str(self.binary),
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._read())
        return self

    async def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        async for line in self.process.stdout:
            self.output += line.decode(errors="replace")

    async def wait(self, timeout: float = 30) -> int:
        """The exit code once the process ends by itself."""
        assert self.process is not None and self._reader is not None
        code = await asyncio.wait_for(self.process.wait(), timeout)
        await self._reader
        return code

    async def stop(self, timeout: float = 30) -> int:
        """Removal from the chart: OnDeinit runs, the exit code is returned."""
        self.stop_file.write_text("stop")
        return await self.wait(timeout)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        if self._reader is not None:
            await self._reader
