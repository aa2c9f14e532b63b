"""The probes by name, in the order a full run takes them; each takes the shared Ctx and adds rows."""

from __future__ import annotations

from collections.abc import Callable

from bench.context import Ctx

from . import catchup, delay, idle, manyfiles, multiline, stalled, startup, steady

PROBES: dict[str, Callable[[Ctx], None]] = {
    "catchup": catchup.run_plain,
    "catchup-prefix": catchup.run_prefix,
    "catchup-multiline": multiline.run,
    "stalled": stalled.run,
    "steady-100": lambda ctx: steady.run(ctx, 100),
    "steady-1000": lambda ctx: steady.run(ctx, 1_000),
    "steady-10000": lambda ctx: steady.run(ctx, 10_000),
    "delay": delay.run_isolated,
    "delay-prefix": delay.run_prefix,
    "delay-load": delay.run_load,
    "idle-2": lambda ctx: idle.run(ctx, 2),
    "idle-1000": lambda ctx: idle.run(ctx, 1000),
    "startup": startup.run,
    "manyfiles": manyfiles.run,
}
