"""The run's configuration: a frozen value built once by the CLI and read by everything else."""

from __future__ import annotations

import glob
import os
from dataclasses import dataclass
from enum import StrEnum

from logtail.multiline import DEFAULT_MAX_BYTES, DEFAULT_MAX_LINES, DEFAULT_TIMEOUT, Mode


class Format(StrEnum):
    RAW = "raw"
    JSON = "json"


@dataclass(frozen=True)
class StartAt:
    """Where to start reading a file that exists when logtail starts (the ``-n`` option)."""

    count: int
    from_start: bool  # "+N": start at line N; otherwise the last N lines

    @classmethod
    def parse(cls, text: str) -> StartAt:
        """Parse ``-n`` the way tail does: ``+N``, ``N`` or ``-N``; raise ValueError on anything else."""
        text = text.strip()
        from_start = text.startswith("+")
        digits = text[1:] if text[:1] in "+-" else text
        if not digits.isdigit():
            raise ValueError(f"{text!r} is not a line count: use N, +N or 0")
        count = int(digits)
        if from_start and count == 0:
            count = 1  # tail treats +0 like +1
        return cls(count=count, from_start=from_start)

    def __str__(self) -> str:
        return f"+{self.count}" if self.from_start else str(self.count)


FIRST_LINE = StartAt(count=1, from_start=True)


@dataclass(frozen=True)
class StreamSpec:
    """One ``[NAME=]PATH`` argument: a literal path or a glob, and the name its lines go out under."""

    pattern: str  # absolute
    name: str | None  # None: each file's base name

    @property
    def is_glob(self) -> bool:
        return glob.has_magic(self.pattern)

    def name_for(self, path: str) -> str:
        return self.name if self.name is not None else os.path.basename(path)


@dataclass(frozen=True)
class Config:
    streams: tuple[StreamSpec, ...]
    start_at: StartAt = FIRST_LINE
    follow: bool = True
    prefix: str | None = None
    format: Format = Format.RAW
    max_line_bytes: int = 1024 * 1024
    poll_interval: float = 1.0
    poll_only: bool = False
    batch_interval: float = 0.02  # watch.COALESCE: how long inotify events are merged while busy
    rotate_wait: float = 1.0
    # Numbered (app.log.1, RotatingFileHandler) and dated (app.log-20261125, dateext;
    # app.log.2026-11-25, TimedRotatingFileHandler) names only: a live sibling such as
    # app.log.err or app.log-worker is not a generation of app.log.
    rotated_patterns: tuple[str, ...] = ("{path}.[0-9]*", "{path}-[0-9]*")
    checkpoint: str | None = None
    checkpoint_interval: float = 1.0
    drain_timeout: float = 10.0
    pids: tuple[int, ...] = ()
    until: str | None = None
    timeout: float | None = None
    idle_exit: float | None = None
    command: tuple[str, ...] = ()
    max_files: int = 1024
    symlinks_anywhere: bool = False
    # --multiline: (stream name or None for every stream, mode), a named one winning.
    multiline: tuple[tuple[str | None, Mode], ...] = ()
    multiline_timeout: float = DEFAULT_TIMEOUT
    multiline_max_lines: int = DEFAULT_MAX_LINES
    multiline_max_bytes: int = DEFAULT_MAX_BYTES

    def multiline_for(self, name: str) -> Mode | None:
        """How the stream ``name`` groups lines into records (None: every line is a record)."""
        named = [mode for stream, mode in self.multiline if stream == name]
        anyone = [mode for stream, mode in self.multiline if stream is None]
        modes = named or anyone
        return modes[-1] if modes else None
