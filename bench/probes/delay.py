"""Follow delay: write-to-arrival p50/p99 of lines appended one at a time, isolated or under load."""

from __future__ import annotations

from bench.context import PREFIX, Ctx
from bench.harness import pct
from bench.report import Row

from .catchup import NO_BUSYBOX_PREFIX
from .paced import Arrivals, follow_paced


def _measure(ctx: Ctx, rate: float, seconds: float, prefix: str | None, name: str) -> tuple[Row, Row]:
    tag = "with prefix" if prefix else "no prefix"
    labels = {"gnu": ctx.gnu.prefix_label} if prefix else {}
    absent = ctx.absent(NO_BUSYBOX_PREFIX if prefix else "")
    p50 = Row(f"{name} p50 (ms, {tag})", "ms", labels=labels, absent=absent)
    p99 = Row(f"{name} p99 (ms, {tag})", "ms", labels=dict(labels), absent=dict(absent))
    name += ", prefix" if prefix else ""
    for tool in ctx.tools(busybox=prefix is None):
        with ctx.guarded(p99.notes, tool.key, name):
            arr = Arrivals(max(1, round(rate * seconds)))
            run = follow_paced(ctx, tool, rate, seconds, arr.take, prefix)
            delays = arr.values()
            if not delays:
                p99.notes[tool.key] = f"none of {run.expected} lines arrived"
                continue
            note = f"lost {run.lost:,} of {run.expected:,} lines" if run.lost else ""
            p50.put(tool.key, pct(delays, 50))
            p99.put(tool.key, pct(delays, 99), note, run.lost)
            ctx.res.detail(
                f"{name} [{tool.key}]: p50 {pct(delays, 50):.3f} ms, p90 {pct(delays, 90):.3f} ms, "
                f"p99 {pct(delays, 99):.3f} ms, max {max(delays):.3f} ms, {len(delays)}/{run.expected} lines"
                + (f", {run.lost} LOST" if run.lost else "")
                + f"; CPU {run.cpu_s * 1e6 / run.expected:.0f} us per line ({run.cpu_src})"
                + f"; writer at most {run.max_lag_ms:.1f} ms late"
            )
    return p50, p99


def run_isolated(ctx: Ctx, prefix: bool = False) -> None:
    s = ctx.settings
    name = "delay, isolated line"
    ctx.header(
        f"{name}{', prefix' if prefix else ''}: one line every {s.delay_interval_s * 1000:g} ms "
        f"for {s.delay_s:g} s"
    )
    p50, p99 = _measure(ctx, 1 / s.delay_interval_s, s.delay_s, PREFIX if prefix else None, name)
    p99.target, p99.check = "≤ 2 ms", lambda a, b: a <= 2.0
    ctx.add(p50)
    ctx.add(p99)


def run_prefix(ctx: Ctx) -> None:
    run_isolated(ctx, prefix=True)


def run_load(ctx: Ctx) -> None:
    s = ctx.settings
    name = f"delay under load ({s.load_rate:,} lines/s)"
    ctx.header(f"{name}: one write() per line for {s.load_s:g} s")
    p50, p99 = _measure(ctx, s.load_rate, s.load_s, None, name)
    p99.target, p99.check = "≤ 30 ms", lambda a, b: a <= 30.0
    ctx.add(p50)
    ctx.add(p99)
