"""Many files: 1,000 files written round-robin by a thread of this process; lines/s until all arrived."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.context import Ctx
from bench.harness import LINE_LEN, Runner, append_fd, count_lines, drain, failed, now_ns, wait_lines
from bench.report import Row, fmt
from bench.tools import Tool


@dataclass
class _Writer:
    """Each round one block (50 lines) to every file in turn, each file through its own O_APPEND fd."""

    paths: list[Path]
    rounds: int
    per_round: int
    stop: threading.Event = field(default_factory=threading.Event)
    took_s: float = 0.0

    def run(self) -> None:
        fds = [append_fd(p) for p in self.paths]
        try:
            blocks = []
            for i in range(len(fds)):
                head = b"M%04d " % i
                blocks.append((head + b"m" * (LINE_LEN - 1 - len(head)) + b"\n") * self.per_round)
            w0 = time.monotonic()
            for _ in range(self.rounds):
                for fd, b in zip(fds, blocks, strict=True):
                    if self.stop.is_set():
                        return
                    os.write(fd, b)
            self.took_s = time.monotonic() - w0
        finally:
            for fd in fds:
                os.close(fd)


def _one(ctx: Ctx, tool: Tool, row: Row) -> None:
    s = ctx.settings
    total = s.many_files * s.many_rounds * s.many_lines_per_round
    d = ctx.mkdtemp(f"many-{tool.key}")
    paths = [d / f"f{i:04d}.log" for i in range(s.many_files)]
    for i, p in enumerate(paths):
        p.write_bytes(b"R%04d " % i + b"r" * (LINE_LEN - 7) + b"\n")
    os.sync()
    writer = _Writer(paths, s.many_rounds, s.many_lines_per_round)
    th = threading.Thread(target=writer.run, daemon=True)
    with Runner(tool.argvs([str(d / "*.log")], is_glob=True), tool.env, ctx.stderr(tool.key)) as r:
        try:
            seen, ok = wait_lines(r, s.many_files, 60)
            if ok is None:
                raise failed(r, f"{tool.key}: only {seen} of {s.many_files} ready lines within 60 s")
            time.sleep(0.3)
            drain(r)
            t0 = now_ns()
            th.start()
            got = count_lines(r, total, time.monotonic() + s.many_cap_s)
        finally:
            writer.stop.set()
            if th.ident is not None:
                th.join(10)
        cpu, hwm = r.cpu_seconds(), r.hwm_kib() / 1024
    dt = (got.t_end - t0) / 1e9
    if got.lines == 0:
        raise failed(r, f"{tool.key}: no line arrived")
    note = ""
    if got.lines < total:
        note = f"partial: {got.lines:,} of {total:,} in {dt:.1f} s (capped)"
    elif writer.took_s and dt < 1.15 * writer.took_s:
        note = (
            f"kept up with the writer ({writer.took_s:.2f} s for {total:,} lines): "
            "a lower bound of its capacity"
        )
    row.put(tool.key, got.lines / dt, note)
    ctx.res.detail(
        f"many files [{tool.key}]: {fmt(got.lines / dt, 'lines/s')} lines/s, {dt:.3f} s, writer took "
        f"{writer.took_s:.3f} s, cpu {cpu:.2f} s, peak RSS {hwm:.1f} MiB" + (f" ({note})" if note else "")
    )


def run(ctx: Ctx) -> None:
    s = ctx.settings
    total = s.many_files * s.many_rounds * s.many_lines_per_round
    ctx.header(
        f"many files: {s.many_files} files, {s.many_rounds} rounds x {s.many_lines_per_round} lines per file "
        f"= {total:,} lines"
    )
    row = Row(
        f"many files: {s.many_files} files round-robin (lines/s, {total / 1e6:g} M lines)",
        "lines/s",
        absent=ctx.absent(),
    )
    for tool in ctx.tools():
        with ctx.guarded(row.notes, tool.key, "many files"):
            _one(ctx, tool, row)
    ctx.add(row)
