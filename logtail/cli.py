"""The command line: options and LOGTAIL_* variables in, a Config out, exit status back.

The only module that talks to humans: every error becomes one line on stderr naming the
option or path and the reason, with exit status 2 for usage errors.
"""

from __future__ import annotations

# First of all: asyncio and hashlib without ssl and OpenSSL (see _lean).
from logtail import _lean  # noqa: F401

# isort: split
import asyncio
import os
import re
import sys
from typing import Any

import click

from logtail import __version__, logs, multiline
from logtail import checkpoint as checkpoint_io
from logtail.config import Config, Format, StartAt, StreamSpec
from logtail.errors import ConfigError, LogtailError
from logtail.stops import Exit

_SIZE = re.compile(r"^\s*(\d+)\s*([kmg]?)(?:i?b)?\s*$", re.IGNORECASE)


class _StartAtType(click.ParamType[StartAt]):
    name = "[+]N"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> StartAt:
        if isinstance(value, StartAt):
            return value
        try:
            return StartAt.parse(str(value))
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


class _SizeType(click.ParamType[int]):
    name = "BYTES"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        match = _SIZE.match(str(value))
        if not match:
            self.fail(f"{value!r} is not a size (examples: 4096, 64K, 1M)", param, ctx)
        size: int = int(match[1]) * 1024 ** " kmg".index(match[2].lower() or " ")
        if size < 1:
            self.fail("must be at least 1 byte", param, ctx)
        return size


class _ModeType(click.ParamType[str]):
    """--multiline's values as given: a regex may hold spaces, so LOGTAIL_MULTILINE holds one mode
    per line, not one per word."""

    name = "[NAME=]MODE"
    envvar_list_splitter = "\n"


class _Command(click.Command):
    """A click command that keeps everything after ``--exec --`` as the command to run."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if "--" in args:
            cut = args.index("--")
            if "--exec" in args[:cut]:
                ctx.meta["logtail.command"] = tuple(args[cut + 1 :])
                args = args[:cut]
        return super().parse_args(ctx, args)


_POSITIVE = click.FloatRange(min=0, min_open=True)


@click.command(
    cls=_Command,
    context_settings={
        "auto_envvar_prefix": "LOGTAIL",
        "help_option_names": ["-h", "--help"],
        "max_content_width": 100,
    },
)
@click.argument("paths", nargs=-1, envvar="LOGTAIL_FILES", metavar="[NAME=]PATH...")
@click.option(
    "-n",
    "--lines",
    "lines",
    type=_StartAtType(),
    default="+1",
    show_default=True,
    help="Where to start in files present at start: +N from line N, N the last N lines, 0 only new lines.",
)
@click.option(
    "--follow/--no-follow",
    default=True,
    show_default=True,
    help="Keep following; --no-follow prints what is there and exits.",
)
@click.option("--prefix", metavar="TEMPLATE", help="Put before every line, with {name} and {path} filled in.")
@click.option(
    "--format",
    "format",
    type=click.Choice([f.value for f in Format]),
    default="raw",
    show_default=True,
    help="raw: the file's bytes; json: one object per line with message, name and file.",
)
@click.option(
    "--max-line-bytes",
    type=_SizeType(),
    default="1M",
    show_default=True,
    help="Split longer lines into pieces of this many bytes (K and M suffixes accepted).",
)
@click.option(
    "--poll-interval",
    type=_POSITIVE,
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="How often every file is checked (a safety net for inotify, or the only check with --poll).",
)
@click.option(
    "--batch-interval",
    type=click.FloatRange(min=0, max=1),
    default=Config.batch_interval,
    show_default=True,
    metavar="SECONDS",
    help="While files are written without pause, read them at most this often (less CPU per line, "
    "up to this much later); a line after a quiet spell is read at once. 0: at every write.",
)
@click.option("--poll", is_flag=True, help="Do not use inotify (NFS and other network file systems).")
@click.option(
    "--rotate-wait",
    type=click.FloatRange(min=0),
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Keep reading a rotated-away file this long after its successor has data.",
)
@click.option(
    "--rotated",
    "rotated",
    multiple=True,
    metavar="GLOB",
    help="Where rotated generations live ({path} is the followed path). "
    "[default: {path}.[0-9]* {path}-[0-9]*]",
)
@click.option(
    "--checkpoint", metavar="FILE", help="Save positions here and resume from them after a restart."
)
@click.option(
    "--checkpoint-interval",
    type=_POSITIVE,
    default=1.0,
    show_default=True,
    metavar="SECONDS",
    help="Save the checkpoint at most this often (and at exit).",
)
@click.option(
    "--drain-timeout",
    type=click.FloatRange(min=0),
    default=10.0,
    show_default=True,
    metavar="SECONDS",
    help="On SIGTERM/SIGINT, how long to finish printing; past it exit with status 3.",
)
@click.option(
    "--pid",
    "pid",
    type=click.IntRange(min=1),
    multiple=True,
    help="Stop (after reading every file to its end) once these processes have exited.",
)
@click.option("--until", metavar="REGEX", help="Exit 0 right after printing the first line that matches.")
@click.option(
    "--timeout",
    type=_POSITIVE,
    metavar="SECONDS",
    help="Stop after this long, printing what came, and exit 124 (as timeout(1) does).",
)
@click.option(
    "--idle-exit", type=_POSITIVE, metavar="SECONDS", help="Exit 0 after this long without new data."
)
@click.option(
    "--exec",
    "exec",
    is_flag=True,
    help="Run the command given after '--', follow while it runs, exit with its status.",
)
@click.option(
    "--multiline",
    type=_ModeType(),
    multiple=True,
    metavar="[NAME=]MODE",
    help="Group lines into records (a stack trace is one record): start:REGEX (a record starts at a "
    "matching line) or a preset: java, python, go, node. NAME= for one stream only. Repeatable.",
)
@click.option(
    "--multiline-timeout",
    type=_POSITIVE,
    default=multiline.DEFAULT_TIMEOUT,
    show_default=True,
    metavar="SECONDS",
    help="Print a record once its file has been quiet this long (its next line may continue it).",
)
@click.option(
    "--multiline-max-lines",
    type=click.IntRange(min=1),
    default=multiline.DEFAULT_MAX_LINES,
    show_default=True,
    help="A record longer than this is printed and the rest continues as a new record.",
)
@click.option(
    "--multiline-max-bytes",
    type=_SizeType(),
    default="256K",
    show_default=True,
    help="A record larger than this is printed and the rest continues as a new record.",
)
@click.option(
    "--max-files",
    type=click.IntRange(min=1),
    default=1024,
    show_default=True,
    help="Follow at most this many files at once; more glob matches are reported, not followed.",
)
@click.option(
    "--follow-symlinks-anywhere",
    "follow_symlinks_anywhere",
    is_flag=True,
    help="Follow symlinks whose target lies outside the link's directory (refused by default).",
)
@click.option(
    "--log-level",
    type=click.Choice(logs.LEVELS),
    default="info",
    show_default=True,
    help="Least severe diagnostic written to stderr.",
)
@click.option(
    "--log-format",
    type=click.Choice(["json", "console"]),
    help="Diagnostics format on stderr. [default: console on a terminal, json otherwise]",
)
@click.version_option(__version__, "--version", prog_name="logtail")
@click.pass_context
def command(ctx: click.Context, /, paths: tuple[str, ...], **options: Any) -> int:
    """Follow log files like `tail -n+1 -F` and print every whole line on stdout.

    Survives rename, delete and copytruncate rotation without losing or repeating a line,
    drains on SIGTERM, and resumes where it stopped with --checkpoint. Every option can be
    given as LOGTAIL_<OPTION> (e.g. LOGTAIL_PREFIX), the paths as LOGTAIL_FILES.
    """
    logs.configure(options.pop("log_level"), options.pop("log_format"))
    command_args: tuple[str, ...] = ctx.meta.get("logtail.command", ())
    # Parameters are named after their options so that LOGTAIL_<OPTION> works for every one.
    config = build_config(
        paths,
        command_args,
        run_command=options.pop("exec"),
        fmt=options.pop("format"),
        start_at=options.pop("lines"),
        poll_only=options.pop("poll"),
        pids=options.pop("pid"),
        symlinks_anywhere=options.pop("follow_symlinks_anywhere"),
        multiline_modes=options.pop("multiline"),
        **options,
    )
    from logtail.app import App

    return asyncio.run(App(config).run())


def build_config(
    paths: tuple[str, ...],
    command_args: tuple[str, ...],
    *,
    run_command: bool,
    fmt: str,
    prefix: str | None,
    until: str | None,
    checkpoint: str | None,
    rotated: tuple[str, ...],
    multiline_modes: tuple[str, ...] = (),
    **options: Any,
) -> Config:
    """Check the arguments against each other and the file system; raise ConfigError naming the culprit."""
    if not paths:
        raise ConfigError("no PATH given (as arguments or in LOGTAIL_FILES)")
    if run_command and not command_args:
        raise ConfigError("--exec needs a command after '--', e.g. --exec -- make test")
    unknown = sorted(set(re.findall(r"\{(\w*)\}", prefix or "")) - {"name", "path"})
    if unknown:
        raise ConfigError(
            f"--prefix {prefix!r}: unknown placeholder {{{unknown[0]}}} (use {{name}} or {{path}})"
        )
    if prefix and "\n" in prefix:
        raise ConfigError("--prefix must not contain a newline: every line of a file stays one line")
    if prefix and fmt == Format.JSON.value:
        raise ConfigError("--prefix applies to --format raw only; JSON lines carry the name instead")
    if until is not None:
        try:
            re.compile(until.encode())
        except re.error as exc:
            raise ConfigError(f"--until {until!r}: not a valid regular expression ({exc})") from None
    modes = []
    for text in multiline_modes:
        try:
            modes.append(multiline.parse_option(text))
        except ValueError as exc:
            raise ConfigError(f"--multiline {text!r}: {exc}") from None
    if checkpoint:
        checkpoint = os.path.abspath(checkpoint)
        checkpoint_io.check_writable(checkpoint)
    return Config(
        streams=tuple(_stream(arg) for arg in paths),
        format=Format(fmt),
        prefix=prefix or None,
        until=until,
        checkpoint=checkpoint,
        rotated_patterns=rotated or Config.rotated_patterns,
        command=command_args,
        multiline=tuple(modes),
        **options,
    )


def _stream(arg: str) -> StreamSpec:
    name: str | None = None
    path = arg
    head, sep, tail = arg.partition("=")
    if sep and "/" not in head:
        if not head:
            raise ConfigError(f"{arg!r}: NAME= needs a name before '=' (or write the path as ./{arg})")
        if not tail:
            raise ConfigError(f"{arg!r}: no path after '{head}='")
        name, path = head, tail
    if not path.strip():
        raise ConfigError("an empty PATH was given")
    path = os.path.abspath(path)
    spec = StreamSpec(pattern=path, name=name)
    if not spec.is_glob and os.path.exists(path):
        if os.path.isdir(path):
            raise ConfigError(
                f"{path}: is a directory (give the files in it, or a quoted glob like '{path}/*.log')"
            )
        if not os.access(path, os.R_OK):
            raise ConfigError(f"{path}: permission denied (logtail runs as uid {os.getuid()})")
    return spec


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the command, turn every error into one line and an exit status."""
    try:
        status = command.main(args=argv, prog_name="logtail", standalone_mode=False)
    except click.exceptions.Exit as exc:
        status = exc.exit_code
    except click.UsageError as exc:
        _error(exc.format_message())
        status = Exit.USAGE
    except ConfigError as exc:
        _error(str(exc))
        status = Exit.USAGE
    except LogtailError as exc:
        _error(str(exc))
        status = Exit.FAILURE
    except (KeyboardInterrupt, click.exceptions.Abort):
        status = Exit.INTERRUPTED
    sys.exit(int(status) if isinstance(status, int) else 0)


def _error(message: str) -> None:
    one_line = " ".join(message.split())
    print(f"logtail: error: {one_line}", file=sys.stderr)
