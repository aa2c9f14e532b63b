"""Catch-up: launch on a pre-written 2,000,000-line file until every line is out on stdout."""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from pathlib import Path

from bench.context import PREFIX, Ctx
from bench.harness import LINE_LEN, Runner, count_lines, drain, failed
from bench.report import Row, fmt
from bench.tools import Tool

NO_BUSYBOX_PREFIX = "it has no prefix option (a `busybox tail | sed` pipeline would measure sed)"


@dataclass
class Run:
    rate: float  # lines/s from launch to the last line
    partial: str  # why the run stopped early, or ""
    first_ms: float | None  # launch to first output
    after_first: float | None  # lines/s from the first output on


def measure(ctx: Ctx, tool: Tool, path: Path, n: int, prefix: str | None, label: str) -> Run:
    """One launch: lines/s over what arrived, capped at catchup_cap_s."""
    cap = ctx.settings.catchup_cap_s
    with Runner(tool.argvs([str(path)], prefix), tool.env, ctx.stderr(tool.key)) as r:
        got = count_lines(r, n, time.monotonic() + cap)
        seen = got.lines
        dt = (got.t_end - r.t_launch) / 1e9
        cpu, hwm = r.cpu_seconds(), r.hwm_kib() / 1024
        partial = ""
        if seen < n:
            seen += drain(r) if r.alive() else 0
            if seen == 0:
                raise failed(r, f"{tool.key}: no line within {cap:.0f} s")
            partial = f"partial: {seen:,} of {n:,} lines in {dt:.1f} s (capped)"
    exp_bytes = n * (LINE_LEN + len(prefix or ""))
    extra = "" if got.nbytes == exp_bytes or seen < n else f" BYTES {got.nbytes:,} != {exp_bytes:,}"
    extra += f" EXTRA LINES {seen - n:,}" if seen > n else ""
    run = Run(seen / dt, partial, None, None)
    after = ""
    if got.t_first is not None and got.t_end > got.t_first:
        run.first_ms = (got.t_first - r.t_launch) / 1e6
        run.after_first = seen / ((got.t_end - got.t_first) / 1e9)
        after = f" (first output after {run.first_ms:.0f} ms, then {fmt(run.after_first, 'lines/s')} lines/s)"
    ctx.res.detail(
        f"{label} [{tool.key}]: {fmt(run.rate, 'lines/s')} lines/s, {dt:.3f} s{after}, "
        f"cpu {cpu:.2f} s, peak RSS {hwm:.1f} MiB{' (' + partial + ')' if partial else ''}{extra}"
    )
    return run


def _runs(ctx: Ctx, prefix: str | None, row: Row, label: str) -> dict[str, list[Run]]:
    """Up to catchup_repeats launches per tool, alternating the order; a slow or failing tool stops early."""
    tools = ctx.tools(busybox=prefix is None)
    runs: dict[str, list[Run]] = {t.key: [] for t in tools}
    spent = dict.fromkeys(runs, 0.0)
    path = ctx.big_file()
    for rep in range(ctx.settings.catchup_repeats):
        for t in tools if rep % 2 == 0 else reversed(tools):
            done = runs[t.key]
            # the sed pipeline crawls (~25 k lines/s): it runs once, capped, rate over what arrived
            if t.key in row.notes or (done and done[-1].partial) or spent[t.key] > ctx.settings.catchup_cap_s:
                continue
            with ctx.guarded(row.notes, t.key, label):
                t0 = time.monotonic()
                done.append(
                    measure(ctx, t, path, ctx.settings.catchup_lines, prefix, f"{label} run {rep + 1}")
                )
                spent[t.key] += time.monotonic() - t0
    return runs


def _fill(row: Row, runs: dict[str, list[Run]]) -> None:
    for key, rs in runs.items():
        if not rs:
            row.put(key, None)
            continue
        row.put(key, statistics.median(r.rate for r in rs), rs[-1].partial)
    lt = runs.get("logtail", [])
    if lt and not row.notes.get("logtail") and all(r.first_ms is not None for r in lt):
        # how much of the time is start-up: the table times from launch, as specified
        row.notes["logtail"] = (
            f"first line after {statistics.median(r.first_ms or 0 for r in lt):.0f} ms (median), "
            f"{fmt(statistics.median(r.after_first or 0 for r in lt), 'lines/s')} lines/s from then on"
        )


def run_plain(ctx: Ctx) -> None:
    n = ctx.settings.catchup_lines
    ctx.header(f"catch-up, no prefix: {n:,} lines x {LINE_LEN} B")
    row = Row(f"catch-up no prefix (lines/s, {n / 1e6:g} M lines)", "lines/s", absent=ctx.absent())
    row.target = "≥ 0.8x GNU"
    row.check = lambda a, b: b is not None and a >= 0.8 * b
    _fill(row, _runs(ctx, None, row, "catch-up"))
    gnu = row.values.get("gnu")
    if gnu and not row.notes.get("gnu"):
        ctx.shared["gnu_plain_catchup"] = gnu
    ctx.add(row)


def run_prefix(ctx: Ctx) -> None:
    n = ctx.settings.catchup_lines
    ctx.header(f"catch-up, prefix {PREFIX!r}: {n:,} lines x {LINE_LEN} B")
    row = Row(
        f"catch-up with prefix (lines/s, {n / 1e6:g} M lines)",
        "lines/s",
        labels={"gnu": ctx.gnu.prefix_label},
        absent=ctx.absent(NO_BUSYBOX_PREFIX),
    )
    _fill(row, _runs(ctx, PREFIX, row, "catch-up prefix"))
    plain = ctx.shared.get("gnu_plain_catchup")
    if plain:
        row.target = f"≥ 0.6x GNU tail plain (≥ {fmt(0.6 * plain, 'lines/s')})"
        row.check = lambda a, b: a >= 0.6 * plain
    else:
        row.target = "≥ 0.6x GNU tail plain (run catchup first)"
    ctx.add(row)
