"""Multi-line records: grouping of lines into records, whatever way the stream is cut."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtail.framing import LineFramer
from logtail.multiline import Grouper, Records, messages, parse_mode, parse_option

# Lines as the runtimes print them (see tests/runtimes/), and ordinary log lines.
VOCABULARY = [
    b"2026-12-02 09:00:00 INFO served",
    b"2026-12-02 09:00:01 ERROR failed",
    b"java.lang.IllegalStateException: service failed",
    b"\tat Traces.service(Traces.java:20)",
    b"\tSuppressed: java.io.UncheckedIOException: close failed",
    b"\t\tat Traces.service(Traces.java:21)",
    b"\tCaused by: java.io.IOException: stream closed",
    b"\t\t... 9 more",
    b"Caused by: java.lang.NumberFormatException: For input string: x",
    b"\t... 8 more",
    b'Exception in thread "main" java.lang.IllegalStateException: service failed',
    b"Traceback (most recent call last):",
    b'  File "x.py", line 16, in load',
    b"    return parse(text)",
    b"           ^^^^^^^^^^^",
    b"ValueError: invalid literal for int() with base 10: 'x'",
    b"",
    b"The above exception was the direct cause of the following exception:",
    b"During handling of the above exception, another exception occurred:",
    b"  + Exception Group Traceback (most recent call last):",
    b"  | ExceptionGroup: several (2 sub-exceptions)",
    b"panic: runtime error: integer divide by zero",
    b"fatal error: all goroutines are asleep - deadlock!",
    b"[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x48108d]",
    b"goroutine 18 [chan receive]:",
    b"main.worker(0x0?, 0x0?, 0x0?)",
    b"\t/tmp/traces.go:19 +0x3d",
    b"created by main.main",
    b"/work/traces.js:13",
    b'    throw new Error("could not load " + text, { cause: err });',
    b"    ^",
    b"Error: could not load [1]",
    b"    at load (/work/traces.js:13:11)",
    b"  [cause]: TypeError: Cannot read properties of undefined (reading 'name')",
    b"}",
    b"Node.js v20.20.2",
]

MODES = ["java", "python", "go", "node", r"start:^\d{4}-", "start:ERROR|Traceback", r"start:^\S"]

lines_st = st.lists(
    st.one_of(
        st.sampled_from(VOCABULARY),
        # A runtime's line with something after it, or something that is no known line.
        st.tuples(st.sampled_from(VOCABULARY), st.binary(max_size=3)).map(lambda t: b"".join(t)),
        st.binary(max_size=12),
    ).map(lambda line: line.replace(b"\n", b"")),
    max_size=40,
)


def group(mode: str, blocks: list[bytes], max_lines: int = 1000, max_bytes: int = 1 << 20) -> list[bytes]:
    """Every record, as its bytes, from feeding ``blocks`` and flushing at the end."""
    grouper = Grouper(parse_mode(mode), max_lines, max_bytes)
    out: list[bytes] = []
    fed = 0
    for block in blocks:
        records = grouper.feed(block)
        fed += len(block)
        out += [records.data[a:b] for a, b in records.spans()]
        assert sum(map(len, out)) + grouper.pending == fed
    records = grouper.flush()
    out += [records.data[a:b] for a, b in records.spans()]
    assert grouper.pending == 0
    return out


def cut(lines: list[bytes], points: list[int]) -> list[bytes]:
    """The stream of ``lines`` cut into blocks of complete lines after the given line indexes."""
    bounds = sorted({0, len(lines), *(p for p in points if p <= len(lines))})
    return [b"".join(line + b"\n" for line in lines[a:b]) for a, b in itertools.pairwise(bounds)]


def reference_start(regex: str, lines: list[bytes], max_lines: int, max_bytes: int) -> list[bytes]:
    """start:REGEX line by line: a record at every matching line, then cut greedily at the bounds."""
    pattern = re.compile(regex.encode(), re.MULTILINE)
    records: list[list[bytes]] = []
    for line in lines:
        if not records or pattern.search(line):
            records.append([])
        records[-1].append(line + b"\n")
    out = []
    for record in records:
        piece: list[bytes] = []
        for line in record:
            if piece and (len(piece) == max_lines or sum(map(len, piece)) + len(line) > max_bytes):
                out.append(b"".join(piece))
                piece = []
            piece.append(line)
        out.append(b"".join(piece))
    return out


def test_start_regex_groups_continuation_lines_and_holds_the_last_record() -> None:
    """Lines that do not match continue the record before; the last record waits for the next start."""
    grouper = Grouper(parse_mode(r"start:^\d"), 100, 1000)
    records = grouper.feed(b"1 a\n  b\n  c\n2 d\n")
    assert records.data == b"1 a\n  b\n  c\n"
    assert records.groups == ((0, 12),)
    assert grouper.pending == 4
    assert list(messages(records)) == [b"1 a\n  b\n  c"]
    records = grouper.feed(b"3 e\n4 f\n  g\n")
    assert records.starts() == [0, 4]
    assert list(messages(records)) == [b"2 d", b"3 e"]
    assert list(messages(grouper.flush())) == [b"4 f\n  g"]
    assert grouper.pending == 0


def test_continuation_without_a_start_is_a_record_of_its_own() -> None:
    """Lines before the first start (or after a flush) form a record; nothing waits forever."""
    assert group(r"start:^\d", [b"  a\n  b\n", b"1 c\n"]) == [b"  a\n  b\n", b"1 c\n"]


def test_a_record_continues_across_blocks() -> None:
    """A record's lines may arrive in several blocks; it goes out once, whole."""
    grouper = Grouper(parse_mode("java"), 100, 10_000)
    assert not grouper.feed(b"ERROR x\n")
    assert not grouper.feed(b"java.lang.IllegalStateException: boom\n\tat A.b(A.java:1)\n")
    records = grouper.feed(b"Caused by: java.io.IOException: c\n\t... 3 more\nINFO y\n")
    assert list(messages(records)) == [
        b"ERROR x\njava.lang.IllegalStateException: boom\n\tat A.b(A.java:1)\n"
        b"Caused by: java.io.IOException: c\n\t... 3 more"
    ]


def test_bounds_cut_a_record_and_the_rest_continues() -> None:
    """Past max_lines the record is given out and its next lines form a new record."""
    stream = b"1 a\n  b\n  c\n  d\n  e\n2 f\n"
    assert group(r"start:^\d", [stream], max_lines=2) == [b"1 a\n  b\n", b"  c\n  d\n", b"  e\n", b"2 f\n"]
    assert group(r"start:^\d", [stream], max_bytes=9) == [b"1 a\n  b\n", b"  c\n  d\n", b"  e\n", b"2 f\n"]
    # A line longer than max_bytes is a record of its own, never cut.
    long_line = [b"1 a\n", b"  long line\n", b"  b\n"]
    assert group(r"start:^\d", [b"".join(long_line)], max_bytes=5) == long_line


def test_pending_record_past_the_bound_is_given_out_without_waiting() -> None:
    """A record that never ends (no line ever matches) cannot hold more than the bound."""
    grouper = Grouper(parse_mode("start:NEVER"), 3, 1 << 20)
    out = b""
    for i in range(100):
        out += grouper.feed(b"line %d\n" % i).data
        assert grouper.pending <= 3 * len(b"line 99\n")
    assert out + grouper.flush().data == b"".join(b"line %d\n" % i for i in range(100))


def test_python_traceback_is_grouped_however_its_lines_arrive() -> None:
    """The exception line and the chain's blank lines depend on the lines before them."""
    lines = [
        b"ERROR app: failed",
        b"Traceback (most recent call last):",
        b'  File "x.py", line 1, in f',
        b"ValueError: v",
        b"",
        b"The above exception was the direct cause of the following exception:",
        b"",
        b"Traceback (most recent call last):",
        b'  File "x.py", line 2, in g',
        b"RuntimeError: r",
        b"INFO next",
    ]
    whole = b"".join(line + b"\n" for line in lines[:-1])
    for blocks in ([whole + b"INFO next\n"], [line + b"\n" for line in lines]):
        assert group("python", blocks) == [whole, b"INFO next\n"]


def test_go_panic_line_alone_in_a_block_still_gets_its_goroutines() -> None:
    """The line that opens a stateful run may arrive before the lines it opens."""
    dump = b"goroutine 1 [running]:\nmain.main()\n\t/x.go:3 +0x1\n"
    blocks = [b"start\npanic: boom\n", b"\n", dump, b"after\n"]
    assert group("go", blocks) == [
        b"start\n",
        b"panic: boom\n\ngoroutine 1 [running]:\nmain.main()\n\t/x.go:3 +0x1\n",
        b"after\n",
    ]


def test_records_helpers_agree() -> None:
    """spans, starts, len and messages describe the same records."""
    records = Records(b"a\nb\nc\nd\ne\n", ((2, 6), (8, 10)))
    assert list(records.spans()) == [(0, 2), (2, 6), (6, 8), (8, 10)]
    assert records.starts() == [0, 2, 6, 8]
    assert len(records) == 4
    assert list(messages(records)) == [b"a", b"b\nc", b"d", b"e"]
    assert list(messages(Records())) == []
    assert Records(b"x\n") + records == Records(b"x\na\nb\nc\nd\ne\n", ((4, 8), (10, 12)))
    assert Records() + records == records


def test_upto_ends_with_the_record_holding_the_offset() -> None:
    """--until: what goes out ends with the whole record that holds the matching line."""
    records = Records(b"a\nb\nc\nd\ne\n", ((2, 6), (8, 10)))
    assert records.upto(0) == Records(b"a\n", ())
    assert records.upto(4) == Records(b"a\nb\nc\n", ((2, 6),))
    assert records.upto(2) == records.upto(5)
    assert records.upto(6) == Records(b"a\nb\nc\nd\n", ((2, 6),))
    assert records.upto(9) == records


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("perl", "neither start:REGEX nor a preset (go, java, node, python)"),
        ("start:(", "not a valid regular expression (missing ), unterminated subpattern at position 0)"),
        ("start:", "needs a regular expression"),
    ],
)
def test_bad_modes_are_refused_with_the_reason(text: str, reason: str) -> None:
    """An unknown preset or an unusable regex is a ValueError naming why."""
    with pytest.raises(ValueError, match=re.escape(reason)):
        parse_mode(text)


def test_option_names_the_stream_it_is_for() -> None:
    """--multiline NAME=MODE is for one stream; a start regex may hold "=" itself."""
    assert parse_option("java") == (None, parse_mode("java"))
    assert parse_option("api=java") == ("api", parse_mode("java"))
    assert parse_option("start:a=b") == (None, parse_mode("start:a=b"))
    assert parse_option("worker=start:^x=1") == ("worker", parse_mode("start:^x=1"))
    with pytest.raises(ValueError, match="needs a name"):
        parse_option("=java")
    with pytest.raises(ValueError, match="neither start:REGEX nor a preset"):
        parse_option("api=perl")


@pytest.mark.parametrize(("max_lines", "max_bytes"), [(0, 10), (10, 0), (-1, 10)])
def test_bounds_must_be_positive(max_lines: int, max_bytes: int) -> None:
    """A zero or negative bound is refused."""
    with pytest.raises(ValueError, match="must be at least 1"):
        Grouper(parse_mode("java"), max_lines, max_bytes)


def test_leading_inline_flags_are_kept() -> None:
    """start:(?i)... works as with re: the flags apply to the whole regex."""
    assert group("start:(?i)^error", [b"ERROR a\n b\nerror c\n"]) == [b"ERROR a\n b\n", b"error c\n"]


@pytest.mark.parametrize("regex", [r"^[](]|x", r"^[^]|]a|x", r"^\[a\]|x", r"^(a|x)", r"^a|x", "x"])
def test_alternatives_outside_groups_are_not_taken_for_anchored(regex: str) -> None:
    """A regex that starts with ^ but has another alternative is still searched along the line."""
    lines = [b"a", b"  x", b"  y", b"(", b"]", b"[a]", b"  ]|x"]
    stream = b"".join(line + b"\n" for line in lines)
    assert group(f"start:{regex}", [stream]) == reference_start(regex, lines, 1000, 1 << 20)


@settings(max_examples=600, deadline=None)
@given(
    mode=st.sampled_from(MODES),
    lines=lines_st,
    points=st.lists(st.integers(min_value=0, max_value=40), max_size=15),
    max_lines=st.integers(min_value=1, max_value=6) | st.just(1000),
    max_bytes=st.integers(min_value=1, max_value=300) | st.just(1 << 20),
)
def test_grouping_does_not_depend_on_how_the_stream_is_cut(
    mode: str, lines: list[bytes], points: list[int], max_lines: int, max_bytes: int
) -> None:
    """Fed in any blocks of complete lines, the records are those of the whole stream fed at once."""
    stream = b"".join(line + b"\n" for line in lines)
    whole = group(mode, [stream] if stream else [], max_lines, max_bytes)
    one_by_one = group(mode, cut(lines, list(range(len(lines)))), max_lines, max_bytes)
    chunked = group(mode, cut(lines, points), max_lines, max_bytes)
    assert chunked == whole
    assert one_by_one == whole
    assert b"".join(whole) == stream
    for record in whole:
        assert record.endswith(b"\n")
        assert record.count(b"\n") <= max_lines
        assert len(record) <= max_bytes or record.count(b"\n") == 1


@settings(max_examples=400, deadline=None)
@given(
    regex=st.sampled_from([r"^\d{4}-", "ERROR", r"^\S", "^T|ValueError$", r"^(2026|Trace)", r"^\t|at "]),
    lines=lines_st,
    points=st.lists(st.integers(min_value=0, max_value=40), max_size=15),
    max_lines=st.integers(min_value=1, max_value=6) | st.just(1000),
    max_bytes=st.integers(min_value=1, max_value=300) | st.just(1 << 20),
)
def test_start_regex_matches_a_line_by_line_reference(
    regex: str, lines: list[bytes], points: list[int], max_lines: int, max_bytes: int
) -> None:
    """start:REGEX gives what matching each line on its own gives, bounds included."""
    got = group(f"start:{regex}", cut(lines, points), max_lines, max_bytes)
    assert got == reference_start(regex, lines, max_lines, max_bytes)


@settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from(MODES),
    lines=lines_st,
    actions=st.lists(st.sampled_from(["feed", "flush"]), min_size=1, max_size=40),
    max_lines=st.integers(min_value=1, max_value=6),
    max_bytes=st.integers(min_value=1, max_value=300),
)
def test_with_flushes_anywhere_every_byte_comes_out_once_within_bounds(
    mode: str, lines: list[bytes], actions: list[str], max_lines: int, max_bytes: int
) -> None:
    """Timeouts may split a record, but never lose, repeat or reorder a byte, nor pass a bound."""
    grouper = Grouper(parse_mode(mode), max_lines, max_bytes)
    stream = b"".join(line + b"\n" for line in lines)
    out: list[Records] = []
    at = 0
    for action in actions:
        if action == "flush":
            out.append(grouper.flush())
        elif at < len(lines):
            out.append(grouper.feed(lines[at] + b"\n"))
            at += 1
        held = grouper.pending
        assert held <= max(max_bytes, max(map(len, lines[:at]), default=0) + 1) * 2 or held == 0
    out.append(grouper.feed(b"".join(line + b"\n" for line in lines[at:])))
    out.append(grouper.flush())
    assert b"".join(records.data for records in out) == stream
    for records in out:
        for a, b in records.spans():
            record = records.data[a:b]
            assert record.count(b"\n") <= max_lines
            assert len(record) <= max_bytes or record.count(b"\n") == 1
        assert b"".join(message + b"\n" for message in messages(records)) == records.data


@settings(max_examples=300, deadline=None)
@given(
    mode=st.sampled_from(MODES),
    lines=lines_st,
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
    crash=st.integers(min_value=0, max_value=12),
    small=st.booleans(),
)
def test_restart_from_the_checkpoint_reads_the_pending_record_again_whole(
    mode: str, lines: list[bytes], cuts: list[int], crash: int, small: bool
) -> None:
    """Killed after any read, a follower that resumes at read offset - framer.pending - grouper.pending
    prints the same records as one that was never killed: none lost, split or repeated."""
    if small and parse_mode(mode).stateful:
        small = False  # a stateful run cut at a bound is judged with context a restart lacks
    max_lines, max_bytes = (3, 80) if small else (1000, 1 << 20)
    # The framer drops NUL runs (a hole left by a truncation); they are not the point here.
    stream = b"".join(line.replace(b"\x00", b"0") + b"\n" for line in lines)
    points = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]

    def follow(start: int, chunks: list[bytes], stop: int | None) -> tuple[list[bytes], int]:
        """Read ``chunks`` from offset ``start``; with ``stop``, die after that many reads."""
        framer, grouper = LineFramer(1 << 20), Grouper(parse_mode(mode), max_lines, max_bytes)
        printed: list[bytes] = []
        offset = checkpoint = start
        for count, chunk in enumerate(chunks):
            if stop is not None and count == stop:
                return printed, checkpoint
            offset += len(chunk)
            records = grouper.feed(framer.feed(chunk))
            printed += [records.data[a:b] for a, b in records.spans()]
            checkpoint = offset - framer.pending - grouper.pending
        records = grouper.feed(framer.flush())
        printed += [records.data[a:b] for a, b in records.spans()]
        records = grouper.flush()
        printed += [records.data[a:b] for a, b in records.spans()]
        return printed, len(stream)

    never_killed, _ = follow(0, chunks, None)
    before, checkpoint = follow(0, chunks, crash)
    assert b"".join(before) == stream[:checkpoint]
    after, _ = follow(checkpoint, [stream[checkpoint:]], None)
    assert before + after == never_killed
