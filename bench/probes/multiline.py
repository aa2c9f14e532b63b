"""Catch-up with --multiline: records that begin with an ISO date, a 10-line trace every 100 lines."""

from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

from bench.context import Ctx
from bench.harness import Runner, failed, read_until_marker
from bench.report import Row, fmt
from bench.tools import Tool, has_option

OPTION = ["--multiline", r"start:^\d{4}-\d\d-\d\d"]
MARKER = b"END-OF-BENCH-RECORDS"
TRACE = 10  # indented "    at ..." lines after the head of every 100th record


def write_records(path: Path, n: int) -> None:
    """n lines (a multiple of 100): per 100, 89 one-line records and one record of 1 + TRACE lines.

    Then a record holding MARKER and a last record after it, so that the marker's record is
    complete (a grouping tool holds the last record until the next one starts).
    """
    block = []
    for i in range(100 - 1 - TRACE):
        block.append(
            b"2026-12-02T09:%02d:%02d.%06dZ INFO worker-3 request done status=200 id=%05d\n"
            % (i // 60, i % 60, i * 1000, i)
        )
    block.append(b"2026-12-02T09:59:59.999999Z ERROR worker-3 unhandled exception in handler: boom\n")
    block += [
        b"    at com.example.app.Handler.process(Handler.java:%03d) frame %02d\n" % (100 + k, k)
        for k in range(TRACE)
    ]
    chunk = b"".join(block) * 1000  # 100,000 lines
    with open(path, "wb") as f:
        for _ in range(n // 100_000):
            f.write(chunk)
        f.write(b"".join(block) * ((n % 100_000) // 100))
        f.write(b"2026-12-02T10:00:00.000000Z INFO " + MARKER + b"\n")
        f.write(b"2026-12-02T10:00:00.000001Z INFO flush\n")


def _once(ctx: Ctx, tool: Tool, path: Path, n: int, extra: list[str]) -> float:
    cap = ctx.settings.catchup_cap_s
    with Runner(tool.argvs([str(path)], extra=extra), tool.env, ctx.stderr(tool.key)) as r:
        got, found = read_until_marker(r, MARKER, time.monotonic() + cap)
        dt = (got.t_end - r.t_launch) / 1e9
        if got.nbytes == 0:
            raise failed(r, f"{tool.key}: no output within {cap:.0f} s")
        if not found:
            raise failed(
                r, f"{tool.key}: marker record not printed within {cap:.0f} s ({got.lines:,} lines out)"
            )
        cpu = r.cpu_seconds()
    ctx.res.detail(
        f"catch-up multiline [{tool.key}]: {fmt(n / dt, 'lines/s')} lines/s, {dt:.3f} s, "
        f"{got.lines:,} newlines out, cpu {cpu:.2f} s"
    )
    return n / dt


def run(ctx: Ctx) -> None:
    n = ctx.settings.multiline_lines // 100 * 100
    ctx.header(f"catch-up --multiline: {n:,} lines, a {TRACE}-line trace every 100 lines")
    row = Row(
        f"catch-up --multiline (lines/s, {n / 1e6:g} M lines)",
        "lines/s",
        labels={"gnu": "plain, no grouping"},
        absent=ctx.absent("it has no multi-line grouping"),
        target="≥ 1 M lines/s",
        check=lambda a, b: a >= 1e6,
    )
    supported = has_option(ctx.logtail, "--multiline")
    if not supported:
        row.text["logtail"] = "n/a (no --multiline)"
        ctx.res.detail("catch-up multiline [logtail]: skipped, --help does not mention --multiline")
    path = ctx.tmp / "records.log"
    write_records(path, n)
    os.sync()
    rates: dict[str, list[float]] = {}
    repeats = 1 if ctx.settings.quick else 3
    for rep in range(repeats):
        for tool in [ctx.logtail, ctx.gnu] if supported else [ctx.gnu]:
            if tool.key in row.notes:
                continue
            with ctx.guarded(row.notes, tool.key, f"catch-up multiline run {rep + 1}"):
                extra = OPTION if tool is ctx.logtail else []
                rates.setdefault(tool.key, []).append(_once(ctx, tool, path, n, extra))
    for key, v in rates.items():
        row.put(key, statistics.median(v))
    ctx.add(row)
