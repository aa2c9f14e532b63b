"""Start-up: launch until the first line of an existing file arrives (median of several, after a warm-up)."""

from __future__ import annotations

import statistics

from bench.context import Ctx
from bench.harness import Runner, failed, wait_lines, write_lines_file
from bench.report import Row


def run(ctx: Ctx) -> None:
    runs = ctx.settings.startup_runs
    ctx.header(f"start-up: launch to first line, median of {runs} (+1 warm-up)")
    path = ctx.mkdtemp("startup") / "app.log"
    write_lines_file(path, 10)
    row = Row(
        f"start-up to first line (ms, median of {runs})",
        "ms",
        target="≤ 60 ms",
        check=lambda a, b: a <= 60,
        absent=ctx.absent(),
    )
    tools = ctx.tools()
    times: dict[str, list[float]] = {t.key: [] for t in tools}
    for rep in range(runs + 1):
        for t in tools if rep % 2 == 0 else reversed(tools):
            if t.key in row.notes:
                continue
            with (
                ctx.guarded(row.notes, t.key, "start-up"),
                Runner(t.argvs([str(path)]), t.env, ctx.stderr(t.key)) as r,
            ):
                t1 = wait_lines(r, 1, 20)[1]
                if t1 is None:
                    raise failed(r, f"{t.key}: no first line within 20 s")
                if rep > 0:
                    times[t.key].append((t1 - r.t_launch) / 1e6)
    for k, v in times.items():
        if v:
            row.put(k, statistics.median(v))
            ctx.res.detail(
                f"start-up [{k}]: median {statistics.median(v):.1f} ms, min {min(v):.1f}, max {max(v):.1f} "
                f"({', '.join(f'{x:.1f}' for x in v)})"
            )
    ctx.add(row)
