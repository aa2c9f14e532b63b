"""Stalled reader: catch-up of the big file into a stdout pipe nobody reads for a while; peak RSS."""

from __future__ import annotations

import time

from bench.context import Ctx
from bench.harness import Runner, count_lines, failed, wait_lines, write_lines_file
from bench.report import Row
from bench.tools import Tool

SAMPLE_S = 0.05
# README: at most 3 chunks of 1 MiB in flight; slack for the allocator
BOUND_MIB = 4.0


def _baseline(ctx: Ctx, tool: Tool) -> float:
    """Peak RSS (MiB) of the same tool having printed a 10-line file: what bounded memory is compared to."""
    path = ctx.mkdtemp(f"stalled-base-{tool.key}") / "small.log"
    write_lines_file(path, 10)
    with Runner(tool.argvs([str(path)]), tool.env, ctx.stderr(tool.key)) as r:
        if wait_lines(r, 10, 30)[1] is None:
            raise failed(r, f"{tool.key}: 10 lines did not arrive within 30 s")
        time.sleep(0.3)
        return r.hwm_kib() / 1024


def _one(ctx: Ctx, tool: Tool, row: Row) -> float:
    """Peak RSS (MiB) over the stall; checks that the tool goes on once its stdout is read again."""
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
    return hwm


def run(ctx: Ctx) -> None:
    ctx.header(
        f"stalled reader: catch-up of {ctx.settings.catchup_lines:,} lines, stdout unread for "
        f"{ctx.settings.stalled_s:g} s"
    )
    row = Row("peak RSS, catch-up into a stalled reader (MiB)", "MiB", absent=ctx.absent())
    for tool in ctx.tools():
        with ctx.guarded(row.notes, tool.key, "stalled reader"):
            base = _baseline(ctx, tool)
            peak = _one(ctx, tool, row)
            row.put(tool.key, peak)
            ctx.res.detail(
                f"stalled reader [{tool.key}]: peak RSS {peak:.1f} MiB after {ctx.settings.stalled_s:g} s "
                f"with nobody reading its stdout (+{peak - base:.1f} MiB over {base:.1f} MiB after a "
                "10-line file); reading again gave lines at once"
            )
            if tool is ctx.logtail:
                limit = base + BOUND_MIB
                row.target = f"≤ {limit:.1f} MiB (own 10-line peak + {BOUND_MIB:g})"
                row.check = lambda a, b, limit=limit: a <= limit
    ctx.add(row)
