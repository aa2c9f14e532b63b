"""Multi-line records: group complete lines into records (a stack trace is one record).

Pure and block-level: a block of complete lines is grouped with one ``finditer`` of one
compiled bytes regex, never line by line in Python, because catch-up speed is bounded by
what happens here per byte.

How a mode is expressed. Every mode compiles to one regex whose matches are the *runs of
continuation lines*: lines that belong to the record of the line before them. Every line
outside a run starts a record. A run is written as a sequence of units, each unit being
``\\n`` followed by the content of one continuation line (without its own newline), so a
match begins at the newline that ends the line it continues. The regex is searched over
the text from the newline before the first line to classify up to (not including) the
final newline, so no unit can match the empty "line" after it.

Three properties make grouping independent of how the stream is cut into blocks
(``tests/test_multiline.py`` checks it with hypothesis):

- whether a line continues depends only on that line and the lines before it, never on
  lines after it (a blank line that may or may not be followed by ``The above exception
  ...`` continues either way);
- every prefix of a run is a run, and the regex takes the longest one;
- the last record of what has arrived is always held back (``pending``): any record may
  still get more lines, so it goes out only once the next record starts, at ``flush`` or
  when it reaches a bound.

Stateless modes (``start:REGEX``, ``java``) decide each line alone, so a new block is
scanned from its first line. Stateful modes (``python``, ``go``, ``node``: a traceback's
exception line, a goroutine's frames, the line after node's caret) need the lines before,
so when the last run reached the end of what has arrived, the next scan starts again at
that run's first line; the runs begin at lines that identify themselves (``Traceback``,
``panic:``, ``goroutine N [...]:``, a caret), so that restart is cheap.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

NEWLINE = b"\n"

# What a unit that is a blank line looks like after its newline: nothing, up to the next
# newline or the end.
_BLANK = rb"(?![^\n])"


def _runs(*units: bytes) -> bytes:
    """A run of lines each matching one of ``units`` (regexes for a line's content).

    Spelled with a literal newline first, outside any repetition: then ``re`` finds
    candidates with its fast literal-prefix search instead of trying every position (ten
    times faster on a block where no line continues).
    """
    unit = rb"\n(?:" + b"|".join(units) + rb")"
    return b"(" + unit + b"(?:" + unit + b")*)"


# Built from `e.printStackTrace()` of JDK 17 (tests/runtimes/Traces.java): frames
# ("\tat ", "\t\tat " inside a suppressed one), causes ("Caused by: ", "\tCaused by: "
# inside a suppressed one), "\tSuppressed: ", "\t... 8 more" (and logback's "... 8 common
# frames omitted" and "Wrapped by: "). The exception line that opens a trace (a qualified
# class name ending in Exception, Error or Throwable, then ":" or the end of the line)
# continues the log line before it, as logback and printStackTrace after a log line print
# it. The JVM's own report of an uncaught exception, `Exception in thread "main" ...`,
# starts a record.
_JAVA = _runs(
    rb"[ \t]+at [^\n]*",
    rb"[ \t]*(?:Caused by|Suppressed|Wrapped by): [^\n]*",
    rb"[ \t]*\.\.\. \d+ (?:more|common frames omitted)[^\n]*",
    rb"(?:[A-Za-z_$][\w$]*\.)+[A-Za-z_$][\w$]*(?:Exception|Error|Throwable)(?=:|(?![^\n]))[^\n]*",
)

# Built from CPython 3.11 (tests/runtimes/python_traces.py): `logging.exception` and the
# interpreter's report of an uncaught exception. A traceback is the "Traceback (most recent
# call last):" line, indented lines (frames, source, caret lines), then one line that is not
# indented: the exception. A chain continues with a blank line, "The above exception was the
# direct cause of the following exception:" or "During handling of the above exception,
# another exception occurred:", a blank line, and the next traceback. An exception group is
# indented from its first line ("  + Exception Group Traceback ...") to its last. The whole
# continues the log line before it.
_PY_TRACEBACK = (
    rb"\n(?:Traceback \(most recent call last\):[^\n]*(?:\n[ \t][^\n]*)*(?:\n[^ \t\n][^\n]*)?"
    rb"|[ \t]+\+ Exception Group Traceback \(most recent call last\):[^\n]*(?:\n[ \t][^\n]*)*)"
    rb"(?:\n" + _BLANK + rb"(?:\n(?:The above exception was the direct cause of the following exception:"
    rb"|During handling of the above exception, another exception occurred:)[^\n]*(?:\n" + _BLANK + rb")?)?)?"
)
_PYTHON = b"(" + _PY_TRACEBACK + b"(?:" + _PY_TRACEBACK + b")*)"

# Built from Go 1.19 with GOTRACEBACK=all (tests/runtimes/traces.go, deadlock.go): the
# "panic: ..." or "fatal error: ..." line starts the record; after it come
# "[signal SIGSEGV ...]", "\tpanic: ..." of a nested panic, blank lines, and goroutine
# sections: "goroutine 18 [chan receive]:", then frames of a function line
# ("main.worker(0x0?, 0x0?)", "main.(*store).get(...)") and a tab-indented file line,
# "created by main.main [in goroutine 1]", "...additional frames elided...". A goroutine
# header identifies itself, so a dump is grouped even where its panic line was cut off
# (the second alternative, whose run is the whole match).
_GO_UNIT = (
    rb"\n(?:\t[^\n]*|\[signal [^\n]*|goroutine \d+ [^\n]*\]:(?![^\n])|created by [^\n]*"
    rb"|\.\.\.additional frames elided\.\.\.[^\n]*|[^\s(][^\s]*\([^\n]*\)(?![^\n])|" + _BLANK + rb")"
)
_GO = (
    rb"\n(?:(?:panic: |fatal error: )[^\n]*(" + _GO_UNIT + b"(?:" + _GO_UNIT + rb")*)"
    rb"|goroutine \d+ [^\n]*\]:(?![^\n])(?:" + _GO_UNIT + rb")*)"
)

# Built from Node.js 20 (tests/runtimes/traces.js): `console.error(err.stack)` prints
# "Error: ..." and "    at ..." frames; `console.error(err)` adds "    ... 5 lines matching
# cause stack trace ...", an indented "[cause]: ..." block and a closing "}"; an uncaught
# exception prints "/path/file.js:13", the source line, a caret line, a blank line, the
# stack as above, a blank line and "Node.js v20.20.2". Indented lines, "}", blank lines and
# "Node.js vN" continue; so does the line after a caret line's blank line (the error), so
# an uncaught exception is one record from its location line to "Node.js vN".
_NODE = _runs(
    rb"[ \t]+\^+[ \t]*(?![^\n])(?:\n" + _BLANK + rb"(?:\n[^\n]+)?)?",
    rb"[ \t]+\S[^\n]*",
    rb"\}(?![^\n])",
    rb"Node\.js v\d[^\n]*",
    _BLANK,
)

PRESETS: dict[str, tuple[bytes, bool]] = {
    # name: (runs regex, stateful)
    "java": (_JAVA, False),
    "python": (_PYTHON, True),
    "go": (_GO, True),
    "node": (_NODE, True),
}

# Defaults proposed for --multiline-timeout, --multiline-max-lines, --multiline-max-bytes.
# Timeout: the real runtimes of tests/runtimes/ write a trace in bursts whose widest inner
# gap (50 runs each on a shared 2-core machine) was 2.3 ms at the median and 17.6 ms at
# worst (Java, between the println calls of printStackTrace; Go's fatal error 7 ms while it
# stops the world; Node writes one block). 200 ms is ten times that, leaves room for GC
# pauses and for a CPU-limited container throttled for a CFS period (100 ms), and is what
# the last record of a burst waits: below the 1 s that log agents batch for anyway.
DEFAULT_TIMEOUT = 0.2
# 1000 lines holds a deep framework stack with its causes; 256 KiB is the largest event that
# CloudWatch Logs, Cloud Logging and Loki (max_line_size) accept by default.
DEFAULT_MAX_LINES = 1000
DEFAULT_MAX_BYTES = 256 * 1024

# At most this many bytes of a stateful run already given out (cut at a bound) are kept to
# judge the run's next lines. Real runs are far smaller: CPython folds recursion ("[Previous
# line repeated 996 more times]"), Go elides a goroutine's frames past 100.
CONTEXT_MAX = 1 << 20

_LEADING_FLAGS = re.compile(r"^\(\?([aiLmsux]+)\)")


@dataclass(frozen=True)
class Mode:
    """Where records start: ``runs`` finds the runs of continuation lines.

    A run is group 1 of a match, or the whole match where group 1 took no part (go's
    goroutine section without its panic line).

    ``stateful``: whether a line's fate depends on lines before it (then a run that reached
    the end of the data is scanned again, whole, when more lines arrive).
    """

    text: str
    runs: re.Pattern[bytes]
    stateful: bool

    def __str__(self) -> str:
        return self.text


def parse_mode(text: str) -> Mode:
    """Parse ``--multiline``: ``start:REGEX`` or a preset name; raise ValueError saying why not.

    With ``start:REGEX`` a line starts a record when REGEX matches somewhere in it (as
    ``grep`` and ``--until`` do: anchor it with ``^`` for the start of the line, which is
    what a timestamp regex wants); every other line continues the record before it. The
    regex is matched against one line at a time: ``^`` and ``$`` are the line's ends, and a
    regex that matches a newline itself (``\\n``, ``(?s).``) is not supported.
    """
    if text.startswith("start:"):
        return Mode(text, _start_regex(text[len("start:") :]), stateful=False)
    preset = PRESETS.get(text)
    if preset is None:
        names = ", ".join(sorted(PRESETS))
        raise ValueError(f"{text!r} is neither start:REGEX nor a preset ({names})")
    pattern, stateful = preset
    return Mode(text, re.compile(pattern), stateful)


def parse_option(text: str) -> tuple[str | None, Mode]:
    """Parse one ``--multiline [NAME=]MODE``: the stream it is for (None: every stream) and the mode.

    A mode is ``start:...`` or a preset name, neither of which has "=" before its first
    ":", so ``NAME=`` is told apart as with ``NAME=PATH`` (``start:a=b`` is a mode).
    """
    head, sep, rest = text.partition("=")
    if sep and ":" not in head and head not in PRESETS:
        if not head:
            raise ValueError(f"{text!r}: NAME= needs a name before '='")
        return head, parse_mode(rest)
    return None, parse_mode(text)


def _start_regex(user: str) -> re.Pattern[bytes]:
    if not user:
        raise ValueError("start: needs a regular expression, e.g. 'start:^\\d{4}-\\d\\d-\\d\\d'")
    source = user.encode("utf-8", "surrogateescape")
    try:
        re.compile(source)
    except re.error as exc:
        raise ValueError(f"start:{user}: not a valid regular expression ({exc})") from None
    # Leading inline flags ("(?i)...") must stay at the start of the whole expression.
    flags = _LEADING_FLAGS.match(user)
    head = f"(?{flags[1]})".encode() if flags else b""
    body = source[len(head) :]
    # A unit is a line in which the user's regex matches nowhere. A regex anchored at the
    # line start is tried there only; any other is searched along the line (lazily, so a
    # start line is recognised at its first match).
    scan = b"" if _anchored(body.decode("utf-8", "surrogateescape")) else rb"[^\n]*?"
    return re.compile(head + _runs(rb"(?!" + scan + rb"(?:" + body + rb"))[^\n]*"), re.MULTILINE)


def _anchored(regex: str) -> bool:
    """Whether ``regex`` only matches at a line start: it begins with ``^``, no ``|`` outside groups."""
    if not regex.startswith("^"):
        return False
    depth = 0
    at = 0
    while at < len(regex):
        char = regex[at]
        if char == "\\":
            at += 1
        elif char == "[":
            # A class ends at the first "]" that is not its first character (after "^").
            at += 1
            if regex.startswith("^", at):
                at += 1
            if regex.startswith("]", at):
                at += 1
            while at < len(regex) and regex[at] != "]":
                at += 2 if regex[at] == "\\" else 1
        elif char == "(":
            depth += 1
        elif char == ")":
            depth -= 1
        elif char == "|" and depth == 0:
            return False
        at += 1
    return True


@dataclass(frozen=True)
class Records:
    """Complete records: their bytes and where the ones with several lines lie.

    ``data`` is whole lines (each ending in a newline). ``groups`` holds the (start, end)
    offsets within ``data`` of every record of more than one line, in order; every other
    line is a record of its own. This keeps the common case (one record per line) free of
    per-line Python; :meth:`starts` and :func:`messages` expand it when needed.
    """

    data: bytes = b""
    groups: tuple[tuple[int, int], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.data)

    def spans(self) -> Iterator[tuple[int, int]]:
        """(start, end) of every record in order, the end including its last newline."""
        data = self.data
        at = 0
        for start, end in (*self.groups, (len(data), len(data))):
            while at < start:
                line_end = data.index(NEWLINE, at) + 1
                yield at, line_end
                at = line_end
            if start < end:
                yield start, end
            at = end

    def starts(self) -> list[int]:
        """The offset of every record's first byte within ``data``."""
        return [start for start, _ in self.spans()]

    def upto(self, offset: int) -> Records:
        """The records up to and including the one that holds byte ``offset`` (for ``--until``)."""
        data = self.data
        end = data.index(NEWLINE, offset) + 1
        groups = []
        for start, group_end in self.groups:
            if start >= end:
                break
            groups.append((start, group_end))
            end = max(end, group_end)
        return Records(data[:end], tuple(groups))

    def __add__(self, other: Records) -> Records:
        """Both, in order (e.g. ``grouper.feed(framer.flush()) + grouper.flush()`` at the end)."""
        if not self.data:
            return other
        shift = len(self.data)
        return Records(
            self.data + other.data, self.groups + tuple((a + shift, b + shift) for a, b in other.groups)
        )

    def __len__(self) -> int:
        """How many records."""
        data = self.data
        count = data.count(NEWLINE)
        for start, end in self.groups:
            count -= data.count(NEWLINE, start, end) - 1
        return count


def messages(records: Records) -> Iterator[bytes]:
    """Each record's lines joined by ``\\n``, without a trailing newline: a JSON ``message``."""
    data = records.data
    at = 0
    for start, end in records.groups:
        if at < start:
            yield from data[at : start - 1].split(NEWLINE)
        yield data[start : end - 1]
        at = end
    if at < len(data):
        yield from data[at:-1].split(NEWLINE)


class Grouper:
    """Groups the complete lines of one stream into records; holds back the last record.

    ``feed`` takes a run of complete lines (what ``LineFramer.feed`` returns) and returns
    the records now complete; the last record stays pending, since its next line may
    continue it. ``flush`` gives the pending record up (quiet for the timeout, rotation,
    drain, exit). A record reaching ``max_lines`` lines or ``max_bytes`` bytes is cut there
    (never inside a line; a single line longer than ``max_bytes`` is a record by itself) and
    the rest continues as a new record: nothing is dropped, and what is held stays below
    ``max_bytes`` plus one line (plus up to ``CONTEXT_MAX`` of context while a stateful
    preset's run is being cut, see ``_keep``), plus the block being fed.

    Every byte fed comes out exactly once, in order, in ``feed`` or ``flush``; ``pending``
    says how many are held, so a checkpoint can count only bytes of written records.
    """

    __slots__ = ("_buf", "_resume", "_start", "_take_lines", "max_bytes", "max_lines", "mode")

    def __init__(self, mode: Mode, max_lines: int, max_bytes: int) -> None:
        if max_lines < 1:
            raise ValueError("max_lines must be at least 1")
        if max_bytes < 1:
            raise ValueError("max_bytes must be at least 1")
        self.mode = mode
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        # Up to max_lines whole lines, found in C when a record must be cut.
        self._take_lines = re.compile(rb"(?:[^\n]*\n){1,%d}" % max_lines)
        # "\n", then lines kept only as context for a stateful mode, then the pending record.
        self._buf = NEWLINE
        self._start = 1  # where the pending record starts in _buf
        self._resume = 0  # the newline in _buf where the next scan begins

    @property
    def pending(self) -> int:
        """How many bytes of the last record are held back (read, not yet given out)."""
        return len(self._buf) - self._start

    def feed(self, block: bytes) -> Records:
        """Add ``block`` (complete lines, each ending in a newline); return the records now complete."""
        if not block:
            return Records()
        buf = self._buf + block
        first_new = len(self._buf)
        start = self._start
        # The record being built: it starts at `start` and ends (so far) at `end`.
        end = first_new if start < first_new else buf.index(NEWLINE, start) + 1
        groups: list[tuple[int, int]] = []
        last_run = -1
        for match in self.mode.runs.finditer(buf, self._resume, len(buf) - 1):
            run_start, run_end = match.span(1)
            if run_start < 0:  # go: a goroutine section without its panic line
                run_start, run_end = match.start(), match.end()
            if run_start >= end:
                # The run continues a line after the record being built: that line starts a
                # new record (the lines in between are records of one line each).
                if buf.find(NEWLINE, start, end) < end - 1:
                    groups.append((start, end))
                start = buf.rfind(NEWLINE, 0, run_start) + 1
            # Otherwise the run continues the record being built (its last line ends at
            # run_start, or the run was scanned again from inside it).
            end = run_end + 1
            last_run = match.start()
        if end < len(buf):
            # The last line is a record of its own; the one before is complete.
            if buf.find(NEWLINE, start, end) < end - 1:
                groups.append((start, end))
            start = buf.rfind(NEWLINE, 0, len(buf) - 1) + 1
            last_run = -1
        out_from = self._start
        cut_groups, start = self._bound(buf, groups, start)
        if start == out_from:
            out = Records()
        else:
            out = Records(buf[out_from:start], tuple((a - out_from, b - out_from) for a, b in cut_groups))
        self._keep(buf, start, last_run)
        return out

    def flush(self) -> Records:
        """Give up waiting: the pending record (cut at the bounds) as complete records."""
        buf, start = self._buf, self._start
        self._buf, self._start, self._resume = NEWLINE, 1, 0
        if start == len(buf):
            return Records()
        groups = self._pieces(buf, start, len(buf))
        return Records(buf[start:], tuple((a - start, b - start) for a, b in groups))

    def _bound(
        self, buf: bytes, groups: list[tuple[int, int]], start: int
    ) -> tuple[list[tuple[int, int]], int]:
        """Cut complete records and the pending one at the bounds; return groups and the new pending start."""
        out: list[tuple[int, int]] = []
        for a, b in groups:
            if self._within(buf, a, b):
                out.append((a, b))
            else:
                out += self._pieces(buf, a, b)
        tail = len(buf)
        if not self._within(buf, start, tail):
            pieces = self._pieces(buf, start, tail, keep_last=True)
            if pieces:
                start = pieces.pop()[0]
                out += pieces
        return out, start

    def _within(self, buf: bytes, start: int, end: int) -> bool:
        size = end - start
        # A record of at most max_lines bytes cannot have more than max_lines lines.
        return size <= self.max_bytes and (
            size <= self.max_lines or buf.count(NEWLINE, start, end) <= self.max_lines
        )

    def _pieces(self, buf: bytes, start: int, end: int, keep_last: bool = False) -> list[tuple[int, int]]:
        """Cut the record buf[start:end] greedily into pieces within the bounds.

        Returns the pieces of more than one line; with ``keep_last``, also the last piece
        (whatever its size), so the caller can keep it pending.
        """
        if self._within(buf, start, end):
            return [(start, end)] if keep_last or buf.find(NEWLINE, start, end) < end - 1 else []
        max_bytes = self.max_bytes
        take_lines = self._take_lines.match
        pieces: list[tuple[int, int]] = []
        piece = start
        while piece < end:
            stop = take_lines(buf, piece, end).end()  # type: ignore[union-attr]  # always matches a line
            if stop - piece > max_bytes:
                # As many whole lines as fit; a first line longer than max_bytes goes alone.
                fit = buf.rfind(NEWLINE, piece, piece + max_bytes) + 1
                stop = fit if fit > piece else buf.index(NEWLINE, piece) + 1
            pieces.append((piece, stop))
            piece = stop
        last = pieces[-1] if keep_last else None
        multi = [(a, b) for a, b in pieces if buf.find(NEWLINE, a, b) < b - 1]
        if last is not None and (not multi or multi[-1] != last):
            multi.append(last)
        return multi

    def _keep(self, buf: bytes, start: int, last_run: int) -> None:
        """Hold the pending record, and for a stateful mode what the next scan needs, for the next feed."""
        keep = start - 1  # the newline before the pending record
        resume = len(buf) - 1  # the next scan begins with the next block's first line
        if self.mode.stateful:
            # The last line may open a run (a "panic:" line) whose first unit comes next.
            resume = buf.rfind(NEWLINE, 0, len(buf) - 1)
            # The last run reached the end: scan it again, whole, with the next lines. If
            # it began in records already given out (it was cut at a bound), keep those
            # lines as context, unless that would hold more than CONTEXT_MAX: then the rest
            # is judged without them (a traceback or goroutine dump that long).
            if 0 <= last_run < resume and keep - last_run <= CONTEXT_MAX:
                resume = last_run
            keep = min(keep, resume)
        self._buf = buf[keep:]
        self._start = start - keep
        self._resume = resume - keep
