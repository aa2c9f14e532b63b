"""What every probe is given: sizes and windows (full or quick), the tools, a temp dir, the results."""

from __future__ import annotations

import contextlib
import os
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from bench.harness import Failure, write_lines_file
from bench.report import Results, Row
from bench.tools import Tool

PREFIX = "[app] "


@dataclass(frozen=True)
class Settings:
    """Every size and time window of the probes; `quick` shrinks them for a run of about 2 minutes."""

    quick: bool
    catchup_lines: int
    catchup_repeats: int
    catchup_cap_s: float
    multiline_lines: int
    stalled_s: float
    steady_rates: tuple[int, ...]
    steady_s: float
    delay_interval_s: float
    delay_s: float
    load_rate: int
    load_s: float
    idle_s: float
    idle_settle_s: float
    startup_runs: int
    many_files: int
    many_rounds: int
    many_lines_per_round: int
    many_cap_s: float

    @classmethod
    def for_mode(cls, quick: bool) -> Settings:
        q = quick
        return cls(
            quick=q,
            catchup_lines=500_000 if q else 2_000_000,
            catchup_repeats=1 if q else 5,
            catchup_cap_s=8 if q else 20,
            multiline_lines=500_000 if q else 2_000_000,
            stalled_s=2 if q else 5,
            steady_rates=(100, 1_000, 10_000),
            steady_s=3 if q else 10,
            delay_interval_s=0.250,
            delay_s=3 if q else 25,  # 100 lines: p99 is not just the maximum
            load_rate=2_000,
            load_s=3 if q else 10,
            idle_s=5 if q else 20,
            idle_settle_s=1 if q else 2,
            startup_runs=3 if q else 7,
            many_files=1000,
            many_rounds=5 if q else 20,
            many_lines_per_round=50,
            many_cap_s=15 if q else 40,
        )


@dataclass
class Ctx:
    settings: Settings
    logtail: Tool
    gnu: Tool
    busybox: Tool | None
    tmp: Path
    res: Results = field(default_factory=Results)
    shared: dict[str, float] = field(default_factory=dict)  # figures one probe leaves for a later one
    _big: Path | None = None

    def tools(self, busybox: bool = True) -> list[Tool]:
        """The tools to run, in column order; busybox only if asked for and installed."""
        return [self.logtail, self.gnu] + ([self.busybox] if busybox and self.busybox else [])

    def absent(self, why_not_busybox: str = "") -> dict[str, str]:
        """Row.absent for a probe without busybox (why), or with it while it is not installed."""
        if self.busybox is None:
            return {"busybox": ""}  # said once in the header
        return {"busybox": why_not_busybox} if why_not_busybox else {}

    def stderr(self, key: str) -> Path:
        return self.tmp / f"stderr-{key}.log"

    def mkdtemp(self, name: str) -> Path:
        return Path(tempfile.mkdtemp(prefix=f"{name}-", dir=self.tmp))

    def big_file(self) -> Path:
        """The catch-up file (catchup_lines x 100 bytes), written once for the probes that use it."""
        if self._big is None:
            big = self.tmp / "big.log"
            t = time.monotonic()
            write_lines_file(big, self.settings.catchup_lines)
            os.sync()  # no write-back of the test files in the middle of a measurement
            print(f"(wrote {big} in {time.monotonic() - t:.1f} s)", flush=True)
            self._big = big
        return self._big

    def header(self, text: str) -> None:
        print(f"\n## {text}", flush=True)

    @contextlib.contextmanager
    def guarded(self, row_notes: dict[str, str], key: str, what: str) -> Iterator[None]:
        """One tool's measurement: a failure is noted for that tool and the probe goes on."""
        try:
            yield
        except (Failure, OSError, ValueError) as e:
            row_notes[key] = f"error: {e}"[:400]
            self.res.detail(f"ERROR {what} [{key}]: {e}")

    def add(self, row: Row) -> Row:
        self.res.rows.append(row)
        return row
