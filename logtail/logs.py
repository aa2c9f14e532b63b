"""logtail's own diagnostics: events on stderr, never on stdout (stdout is data).

JSON lines (the default off a terminal, so in every Pod) are written by ``_JsonLogger`` below,
in exactly the shape structlog's JSONRenderer gave them: the event's fields, then ``event``,
``level`` and ``timestamp`` (ISO 8601, UTC, ``Z``), and a traceback as one ``exception`` field.
structlog is imported only for the console renderer on a terminal: its ``__init__`` imports
all of it (1.6 MiB resident, about 20 ms of start-up, measured).
"""

from __future__ import annotations

import datetime
import json
import sys
from typing import TYPE_CHECKING, Any, Protocol, TextIO

if TYPE_CHECKING:
    import types

LEVELS = ("debug", "info", "warning", "error")
_NUMBERS = {"debug": 10, "info": 20, "warning": 30, "error": 40}


class Logger(Protocol):
    def debug(self, event: str, *args: Any, **kw: Any) -> Any: ...
    def info(self, event: str, *args: Any, **kw: Any) -> Any: ...
    def warning(self, event: str, *args: Any, **kw: Any) -> Any: ...
    def error(self, event: str, *args: Any, **kw: Any) -> Any: ...
    def exception(self, event: str, *args: Any, **kw: Any) -> Any: ...


class _JsonLogger:
    """One JSON object per event on ``stream``, events below ``min_level`` dropped."""

    def __init__(self, min_level: int, stream: TextIO) -> None:
        self._min = min_level
        self._stream = stream

    def _log(self, level: str, event: str, args: tuple[Any, ...], kw: dict[str, Any]) -> None:
        if _NUMBERS[level] < self._min:
            return
        if args:
            event = event % (args[0] if len(args) == 1 and isinstance(args[0], dict) and args[0] else args)
        exc_info = kw.pop("exc_info", None)
        kw["event"] = event
        kw["level"] = level
        kw["timestamp"] = datetime.datetime.now(tz=datetime.UTC).isoformat().replace("+00:00", "Z")
        if exc_info is not None:
            text = _format_exception(exc_info)
            if text is not None:
                kw["exception"] = text
        print(json.dumps(kw, default=_fallback), file=self._stream, flush=True)

    def debug(self, event: str, *args: Any, **kw: Any) -> None:
        self._log("debug", event, args, kw)

    def info(self, event: str, *args: Any, **kw: Any) -> None:
        self._log("info", event, args, kw)

    def warning(self, event: str, *args: Any, **kw: Any) -> None:
        self._log("warning", event, args, kw)

    def error(self, event: str, *args: Any, **kw: Any) -> None:
        self._log("error", event, args, kw)

    def exception(self, event: str, *args: Any, **kw: Any) -> None:
        kw.setdefault("exc_info", True)
        self._log("error", event, args, kw)


def _fallback(obj: Any) -> Any:
    try:
        return obj.__structlog__()
    except AttributeError:
        return repr(obj)


def _format_exception(value: Any) -> str | None:
    """The traceback of ``exc_info`` (an exception, an exc_info tuple or true), as format_exc_info."""
    info: tuple[type[BaseException], BaseException, types.TracebackType | None]
    if isinstance(value, BaseException):
        info = (type(value), value, value.__traceback__)
    elif isinstance(value, tuple) and len(value) == 3 and isinstance(value[1], BaseException):
        info = value
    elif value:
        current = sys.exc_info()
        if current[1] is None:
            return None
        info = current
    else:
        return None
    import traceback

    text = "".join(traceback.format_exception(info[0], info[1], info[2]))
    return text[:-1] if text.endswith("\n") else text


_logger: Logger | None = None


def configure(level: str = "info", fmt: str | None = None) -> None:
    """Send events at ``level`` and above to stderr, as JSON lines or for a human on a terminal."""
    global _logger
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    if fmt == "console" or "structlog" in sys.modules:  # loggers already handed out follow the change
        _configure_structlog(level, fmt)
    _logger = None if fmt == "console" else _JsonLogger(_NUMBERS[level], sys.stderr)


def _configure_structlog(level: str, fmt: str) -> None:
    import structlog

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
        wrapper_class=structlog.make_filtering_bound_logger(_NUMBERS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


def get() -> Logger:
    if _logger is not None:
        return _logger
    import structlog  # console, or not configured yet: structlog's lazy logger, as before

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
