"""logtail's own diagnostics: structlog events on stderr, never on stdout (stdout is data)."""

from __future__ import annotations

import logging
import sys
from typing import Any

import structlog

LEVELS = ("debug", "info", "warning", "error")


def configure(level: str = "info", fmt: str | None = None) -> None:
    """Send events at ``level`` and above to stderr, as JSON lines or for a human on a terminal."""
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    renderers: list[Any]
    if fmt == "console":
        renderers = [structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())]
    else:
        # A bug's traceback goes in one JSON field, so a log agent keeps it in one record.
        renderers = [structlog.processors.format_exc_info, structlog.processors.JSONRenderer()]
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            *renderers,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level.upper())),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get() -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger("logtail")  # type: ignore[no-any-return]


class Warnings:
    """Warnings said once per path and reason: a file that stays unreadable is not reported every look."""

    def __init__(self) -> None:
        self._said: set[tuple[str, str]] = set()

    def once(self, event: str, path: str, **kw: Any) -> None:
        key = (path, event + str(sorted(kw.items())))
        if key not in self._said:
            self._said.add(key)
            get().warning(event, path=path, **kw)
