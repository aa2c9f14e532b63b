"""A tool following a file that bench/pacer.py appends to at a fixed rate (steady and delay probes)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.context import Ctx
from bench.harness import Runner, drain, failed, now_ns, pacer_report, start_pacer, wait_lines
from bench.tools import Tool

GRACE_S = 3.0  # after the pacer's last line: busybox looks at its files once a second
SETTLE_S = 0.3  # after the ready line: let start-up work end before the CPU count starts


@dataclass
class Paced:
    expected: int  # lines the pacer wrote
    arrived: int  # lines the tool printed (counted by the taker)
    cpu_s: float  # CPU of the tool's processes from the pacer's start until the last line arrived
    cpu_src: str  # "schedstat" or "psutil"
    window_s: float  # the pacer's first write to one period after its last
    max_lag_ms: float  # the pacer's worst lateness against its schedule

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.arrived)

    @property
    def cpu_pct(self) -> float:
        return self.cpu_s / self.window_s * 100


# takes (chunk of stdout, arrival ns) and returns how many of the pacer's lines it held
Taker = Callable[[bytes, int], int]


def count_taker(data: bytes, _t: int) -> int:
    return data.count(b"\n")


def follow_paced(ctx: Ctx, tool: Tool, rate: float, seconds: float, take: Taker, prefix: str | None) -> Paced:
    """Start the tool on a file holding one ready line, then run the pacer and feed `take` what arrives."""
    path = ctx.mkdtemp(f"paced-{tool.key}") / "app.log"
    path.write_bytes(b"ready\n")
    with Runner(tool.argvs([str(path)], prefix), tool.env, ctx.stderr(tool.key)) as r:
        if wait_lines(r, 1, 30)[1] is None:
            raise failed(r, f"{tool.key}: ready line did not arrive within 30 s")
        time.sleep(SETTLE_S)
        drain(r)
        cpu0 = r.cpu()
        with start_pacer(path, rate, seconds, ctx.stderr("pacer")) as pacer:
            expected = max(1, round(rate * seconds))
            arrived = _collect(r, take, expected, time.monotonic() + seconds * 1.2 + 1 + GRACE_S)
            cpu_s, src = r.cpu().since(cpu0)
            report = pacer_report(pacer)
    window = (report["last_ns"] - report["first_ns"]) / 1e9 + 1 / rate
    return Paced(int(report["lines"]), arrived, cpu_s, src, window, report["max_lag_ms"])


def _collect(r: Runner, take: Taker, expected: int, deadline: float) -> int:
    arrived = 0
    while arrived < expected:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        data = r.read(left)
        if data == b"":
            raise failed(r, "stdout closed")
        if data:
            arrived += take(data, now_ns())
    return arrived


class Arrivals:
    """Write-to-arrival delays of the pacer's lines ("L <seq> <write ns> ..."), whatever the chunking."""

    def __init__(self, n: int) -> None:
        self.delays_ms: list[float | None] = [None] * n
        self._buf = b""

    def take(self, data: bytes, t_arr: int) -> int:
        self._buf += data
        *lines, self._buf = self._buf.split(b"\n")
        got = 0
        for line in lines:
            i = line.find(b"L ")
            if i < 0:
                continue
            seq, ts = line[i + 2 :].split(b" ", 2)[:2]
            k = int(seq)
            if 0 <= k < len(self.delays_ms) and self.delays_ms[k] is None:
                self.delays_ms[k] = (t_arr - int(ts)) / 1e6
                got += 1
        return got

    def values(self) -> list[float]:
        return [d for d in self.delays_ms if d is not None]
