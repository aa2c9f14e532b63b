"""The results: rows of the table, the environment header, and the markdown they are rendered to."""

from __future__ import annotations

import contextlib
import datetime
import os
import platform
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field

import psutil

from bench.tools import KEYS, Tool, run_once

COLUMNS = {"logtail": "logtail", "gnu": "GNU tail", "busybox": "busybox"}
BUSYBOX_NOTE = (
    "busybox `tail -F` has no inotify: it sleeps 1 s (`-s`) between looks at its files and then "
    "copies what came in one go, so it spends little CPU per line and delays lines by up to 1 s."
)


@dataclass
class Row:
    """One metric: a value per tool (None: not measured), notes, and logtail's target."""

    metric: str
    unit: str  # "lines/s", "ms", "%", "MiB": picks the number format
    values: dict[str, float | None] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)  # footnote per tool (partial run, error...)
    labels: dict[str, str] = field(default_factory=dict)  # what was run, when not the tool alone
    absent: dict[str, str] = field(default_factory=dict)  # tool not run for this metric: why
    lost: dict[str, int] = field(default_factory=dict)  # lines a tool did not print
    text: dict[str, str] = field(default_factory=dict)  # a cell's text instead of a number
    target: str = "—"
    check: Callable[[float, float | None], bool] | None = None  # (logtail, GNU tail) -> target met?
    err: str = ""

    def put(self, key: str, value: float | None, note: str = "", lost: int = 0) -> None:
        self.values[key] = value
        if note:
            self.notes[key] = note
        if lost:
            self.lost[key] = lost


@dataclass
class Results:
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)

    def detail(self, s: str) -> None:
        """A line for the per-run details, printed as it comes."""
        self.details.append(s)
        print("  " + s, flush=True)


def fmt(v: float | None, unit: str) -> str:
    if v is None:
        return "n/a"
    if unit == "lines/s":
        if v >= 1e6:
            return f"{v / 1e6:.2f} M"
        if v >= 1e3:
            return f"{v / 1e3:.1f} k"
        return f"{v:.0f}"
    if unit == "%":
        return f"{v:.3f} %"
    if unit == "MiB":
        return f"{v:.1f} MiB"
    if unit == "ms":
        return f"{v:.2f} ms" if v < 100 else f"{v:.0f} ms"
    return f"{v:g}"


def _first_line(argv: list[str]) -> str:
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        return (out.stdout or out.stderr).splitlines()[0].strip()
    except (OSError, subprocess.SubprocessError, IndexError):
        return "?"


def machine_info(lt: Tool, busybox: Tool | None) -> list[str]:
    """The environment header: date, machine, kernel, Python, tool versions, load."""
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    ltv = (run_once(lt, ["--version"]).splitlines() or ["?"])[-1][:120]
    bbv = _first_line([busybox.argvs(["x"])[0][0]]) if busybox else "not found: its column stays empty"
    return [
        f"- date: {datetime.datetime.now(datetime.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"- machine: {os.cpu_count()} cores (usable {len(os.sched_getaffinity(0))}), {model}, "
        f"{round(psutil.virtual_memory().total / 2**30)} GiB RAM",
        f"- kernel: Linux {platform.release()}; Python {platform.python_version()}",
        f"- {_first_line(['tail', '--version'])}; sed: {_first_line(['sed', '--version'])}",
        f"- busybox: {bbv}",
        f"- load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} "
        "(other work on the machine disturbs the numbers)",
        f"- logtail command: `{lt.label}` (version: {ltv or '?'})",
    ]


def _ratio(row: Row) -> str:
    lt, gnu = row.values.get("logtail"), row.values.get("gnu")
    if lt is None or not gnu:
        return "n/a"
    q = lt / gnu
    return f"{q:.2f}x" if q < 100 else f"{q:.0f}x"


def _cell(row: Row, key: str) -> str:
    if key in row.text:
        return row.text[key]
    if key in row.absent:
        return "—"
    v = row.values.get(key)
    text = fmt(v, row.unit)
    if row.labels.get(key) and v is not None:
        text += f" ({row.labels[key]})"
    if row.lost.get(key):
        text += f" **LOST {row.lost[key]:,}**"
    return text + (" *" if row.notes.get(key) else "")


def _verdict(row: Row) -> str:
    lt = row.values.get("logtail")
    if row.err or (lt is None and row.notes.get("logtail", "").startswith("error")):
        return "error"
    if row.lost.get("logtail"):
        return "**miss** (lost lines)"
    if row.check is None or lt is None:
        return ""
    return "pass" if row.check(lt, row.values.get("gnu")) else "**miss**"


def table(rows: list[Row]) -> list[str]:
    out = [
        "| metric | logtail | GNU tail | busybox | ratio | target | result |",
        "|---|---:|---:|---:|---:|---|---|",
    ]
    for row in rows:
        cells = " | ".join(_cell(row, k) for k in KEYS)
        out.append(f"| {row.metric} | {cells} | {_ratio(row)} | {row.target} | {_verdict(row)} |")
    return out


def footnotes(rows: list[Row]) -> list[str]:
    notes = []
    not_run: dict[tuple[str, str], list[str]] = {}  # (tool, why) -> metrics, so each reason is said once
    for r in rows:
        for key in KEYS:
            if r.notes.get(key):
                notes.append(f"- \\* {r.metric}: {COLUMNS[key]} {r.notes[key]}")
        for key, why in r.absent.items():
            if why:
                not_run.setdefault((key, why), []).append(r.metric)
        notes += [f"- error in {r.metric}: {r.err}"] if r.err else []
    for (key, why), metrics in not_run.items():
        notes.append(f"- — {COLUMNS[key]} not run ({'; '.join(metrics)}): {why}")
    return notes


def render(res: Results, header: list[str], mode: str, with_busybox: bool) -> str:
    notes = footnotes(res.rows)
    return "\n".join(
        [
            "# logtail benchmark vs GNU tail and busybox tail",
            "",
            *header,
            f"- mode: {mode}",
            "",
            "ratio = logtail ÷ GNU tail. lines/s: higher is better; ms, %, MiB: lower is better. "
            "CPU: on-CPU time of the tool's processes over the window (scheduler ns, else psutil "
            "ticks), in % of one core; peak RSS: VmHWM. **LOST n**: lines the tool never printed.",
            "",
            *([BUSYBOX_NOTE, ""] if with_busybox else []),
            *table(res.rows),
            *(["", *notes] if notes else []),
            "",
            "<details><summary>per-run details</summary>",
            "",
            "```",
            *res.details,
            "```",
            "",
            "</details>",
            "",
        ]
    )
