"""Steady-state CPU: a writer appends one ~80-byte line per write() at a fixed rate; CPU % of a core."""

from __future__ import annotations

from collections.abc import Callable

from bench.context import Ctx
from bench.report import Row
from bench.tools import Tool

from .paced import Paced, count_taker, follow_paced


def _target(rate: int) -> tuple[str, Callable[[float, float | None], bool] | None]:
    """Issue 12: absolute at 100 lines/s, relative to GNU tail at 1,000 and 10,000."""
    if rate <= 100:
        return "≤ 0.5 % of a core", lambda a, b: a <= 0.5
    k = 0.5 if rate <= 1_000 else 0.25
    return f"≤ {k:g}x GNU", lambda a, b: b is not None and a <= k * b


def _one(ctx: Ctx, tool: Tool, rate: int, row: Row) -> None:
    s = ctx.settings
    run: Paced = follow_paced(ctx, tool, rate, s.steady_s, count_taker, None)
    row.put(
        tool.key, run.cpu_pct, f"lost {run.lost:,} of {run.expected:,} lines" if run.lost else "", run.lost
    )
    ctx.res.detail(
        f"steady {rate}/s [{tool.key}]: cpu {run.cpu_s * 1000:.1f} ms in {run.window_s:.2f} s = "
        f"{run.cpu_pct:.3f} % of a core (from {run.cpu_src}), {run.arrived:,}/{run.expected:,} lines"
        + (f", {run.lost:,} LOST" if run.lost else "")
        + f"; writer at most {run.max_lag_ms:.1f} ms behind schedule"
    )


def run(ctx: Ctx, rate: int) -> None:
    s = ctx.settings
    ctx.header(f"steady state: {rate:,} lines/s, one write() per 80-byte line, for {s.steady_s:g} s")
    target, check = _target(rate)
    row = Row(f"CPU at {rate:,} lines/s (% of a core)", "%", target=target, check=check, absent=ctx.absent())
    for tool in ctx.tools():
        with ctx.guarded(row.notes, tool.key, f"steady {rate}/s"):
            _one(ctx, tool, rate, row)
    ctx.add(row)
