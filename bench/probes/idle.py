"""Idle: CPU share and peak RSS of each tool following 2 or 1,000 files nobody writes to."""

from __future__ import annotations

import os
import time
from pathlib import Path

from bench.context import Ctx
from bench.harness import CpuSample, Runner, drain, failed, wait_lines, write_lines_file
from bench.report import Row

LINES_EACH = 10


class _Idle:
    """Every tool at once on the same files, in the same window, so they share the machine's noise."""

    def __init__(self, ctx: Ctx, nfiles: int, cpu: Row, rss: Row) -> None:
        self.ctx, self.nfiles, self.cpu, self.rss = ctx, nfiles, cpu, rss
        self.name = f"idle, {nfiles} files"
        self.runners: dict[str, Runner] = {}

    def drop(self, key: str, why: str) -> None:
        r = self.runners.pop(key)
        e = failed(r, why)
        r.kill()
        self.cpu.notes[key] = f"error: {e}"[:400]
        self.ctx.res.detail(f"ERROR {self.name} [{key}]: {e}")

    def start(self, d: Path) -> None:
        for t in self.ctx.tools():
            with self.ctx.guarded(self.cpu.notes, t.key, self.name):
                argvs = t.argvs([str(d / "*.log")], is_glob=True)
                self.runners[t.key] = Runner(argvs, t.env, self.ctx.stderr(t.key))
        want = self.nfiles * LINES_EACH
        for k, r in list(self.runners.items()):
            seen, ok = wait_lines(r, want, 60)
            if ok is None:
                self.drop(k, f"{k}: only {seen} of {want} initial lines within 60 s")
        end = time.monotonic() + self.ctx.settings.idle_settle_s  # start-up work ends, output drained
        while time.monotonic() < end:
            for r in self.runners.values():
                drain(r)
            time.sleep(0.1)

    def window(self) -> None:
        cpu0: dict[str, CpuSample] = {k: r.cpu() for k, r in self.runners.items()}
        cs0 = {k: r.ctx_switches() for k, r in self.runners.items()}
        rss_max = dict.fromkeys(self.runners, 0)
        stray = dict.fromkeys(self.runners, 0)
        t0 = time.monotonic()
        end = t0 + self.ctx.settings.idle_s
        while time.monotonic() < end:
            time.sleep(min(0.25, max(0.0, end - time.monotonic())))
            for k, r in list(self.runners.items()):
                stray[k] += drain(r)
                rss_max[k] = max(rss_max[k], r.rss_kib())
                if not r.alive():
                    self.drop(k, f"{k}: exited during the idle window")
        win = time.monotonic() - t0
        for k, r in self.runners.items():
            used, src = r.cpu().since(cpu0[k])
            share = used / win * 100
            hwm = max(r.hwm_kib(), rss_max[k]) / 1024
            self.cpu.put(k, share)
            self.rss.put(k, hwm)
            self.ctx.res.detail(
                f"{self.name} [{k}]: cpu {used * 1000:.2f} ms in {win:.1f} s = {share:.4f} % of a core "
                f"(from {src}), {(r.ctx_switches() - cs0[k]) / win:.1f} context switches/s, "
                f"peak RSS {hwm:.1f} MiB (max sampled RSS {rss_max[k] / 1024:.1f} MiB)"
                + (f", {stray[k]} unexpected lines" if stray[k] else "")
            )


def run(ctx: Ctx, nfiles: int) -> None:
    ctx.header(f"idle, {nfiles} files: {ctx.settings.idle_s:g} s window, every tool at once")
    cpu_t = 0.05 if nfiles <= 2 else 0.2  # issue 12
    cpu = Row(
        f"idle CPU, {nfiles} files (% of a core)",
        "%",
        target=f"≤ {cpu_t:g} %",
        check=lambda a, b: a <= cpu_t,
        absent=ctx.absent(),
    )
    rss = Row(f"peak RSS, {nfiles} idle files (MiB)", "MiB", absent=ctx.absent())
    if nfiles <= 2:
        rss.target, rss.check = "≤ 18 MiB", lambda a, b: a <= 18
    d = ctx.mkdtemp(f"idle{nfiles}")
    for i in range(nfiles):
        write_lines_file(d / f"f{i:04d}.log", LINES_EACH, b"I%04d " % i)
    os.sync()
    idle = _Idle(ctx, nfiles, cpu, rss)
    try:
        idle.start(d)
        idle.window()
    finally:
        for r in idle.runners.values():
            r.kill()
    ctx.add(cpu)
    ctx.add(rss)
