"""Stalled reader: catch-up of the big file into a stdout pipe nobody reads for a while; peak RSS."""

from __future__ import annotations

import time

from bench.context import Ctx
from bench.harness import Runner, count_lines, failed
from bench.report import Row
from bench.tools import Tool

SAMPLE_S = 0.05
# the 2-file idle target plus what README says may be in flight: 8 chunks of 256 KiB
TARGET_MIB = 18 + 8 * 0.25


def _one(ctx: Ctx, tool: Tool, row: Row) -> None:
    stall = ctx.settings.stalled_s
    with Runner(tool.argvs([str(ctx.big_file())]), tool.env, ctx.stderr(tool.key)) as r:
        peak_rss = 0
        end = time.monotonic() + stall
        while time.monotonic() < end:
            peak_rss = max(peak_rss, r.rss_kib())
            time.sleep(SAMPLE_S)
        if not r.alive():
            raise failed(r, f"{tool.key}: exited while its stdout was not read")
        hwm = max(r.hwm_kib(), peak_rss) / 1024
        # then read for a moment: it must go on where it stopped
        got = count_lines(r, 1000, time.monotonic() + 10)
        if got.lines < 1000:
            raise failed(r, f"{tool.key}: only {got.lines} lines once its stdout was read again")
    row.put(tool.key, hwm)
    ctx.res.detail(
        f"stalled reader [{tool.key}]: peak RSS {hwm:.1f} MiB (max sampled RSS {peak_rss / 1024:.1f} MiB) "
        f"after {stall:g} s with nobody reading its stdout; reading again gave lines at once"
    )


def run(ctx: Ctx) -> None:
    ctx.header(
        f"stalled reader: catch-up of {ctx.settings.catchup_lines:,} lines, stdout unread for "
        f"{ctx.settings.stalled_s:g} s"
    )
    row = Row(
        "peak RSS, catch-up into a stalled reader (MiB)",
        "MiB",
        target=f"≤ {TARGET_MIB:g} MiB",
        check=lambda a, b: a <= TARGET_MIB,
        absent=ctx.absent(),
    )
    for tool in ctx.tools():
        with ctx.guarded(row.notes, tool.key, "stalled reader"):
            _one(ctx, tool, row)
    ctx.add(row)
