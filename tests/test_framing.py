"""Line framing: whole lines out, whatever way the byte stream is cut into chunks."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logtail.framing import LineFramer


def frame(chunks: list[bytes], limit: int = 1 << 20) -> tuple[bytes, LineFramer]:
    framer = LineFramer(limit)
    out = b"".join(framer.feed(chunk) for chunk in chunks)
    return out, framer


def expected(stream: bytes, limit: int) -> tuple[bytes, int]:
    """The reference, line by line: what goes out, and how many bytes are held back.

    Each line loses its leading NULs and is cut into pieces of at most ``limit``; of the
    unterminated rest, every piece but the last goes out already.
    """
    *complete, rest = (line.lstrip(b"\x00") for line in stream.split(b"\n"))
    out = []
    for line in complete:
        out.extend([line[i : i + limit] for i in range(0, len(line), limit)] or [b""])
    held = len(rest) - ((len(rest) - 1) // limit) * limit if rest else 0
    out.extend(rest[i : i + limit] for i in range(0, len(rest) - held, limit))
    return b"".join(piece + b"\n" for piece in out), held


def test_partial_line_waits_for_its_newline() -> None:
    """A line goes out only once its newline has arrived."""
    framer = LineFramer(100)
    assert framer.feed(b"hello wor") == b""
    assert framer.pending == 9
    assert framer.feed(b"ld\nnext") == b"hello world\n"
    assert framer.flush() == b"next\n"
    assert framer.flush() == b""


def test_long_line_is_split_into_pieces_and_nothing_dropped() -> None:
    """A line longer than the limit goes out in pieces of at most the limit, each as a line."""
    out, framer = frame([b"abcdefghij", b"klm\n"], limit=4)
    assert out == b"abcd\nefgh\nijkl\nm\n"
    assert framer.pending == 0


def test_line_of_exactly_the_limit_is_not_followed_by_an_empty_piece() -> None:
    """A held rest of exactly the limit may still end there; no empty line is invented."""
    out, _ = frame([b"abcd", b"\n"], limit=4)
    assert out == b"abcd\n"


def test_memory_stays_bounded_for_a_line_without_newline() -> None:
    """Without a newline, at most the limit is held back, whatever comes."""
    framer = LineFramer(1000)
    for _ in range(1000):
        framer.feed(b"x" * 777)
        assert framer.pending <= 1000


def test_nul_runs_at_line_start_are_dropped_across_chunks() -> None:
    """NULs left by a writer without O_APPEND after a truncation are not printed."""
    out, _ = frame([b"a\n\x00\x00", b"\x00\x00b\n", b"\x00", b"c\x00d\n"], limit=100)
    assert out == b"a\nb\nc\x00d\n"


@settings(max_examples=400, deadline=None)
@given(
    stream=st.binary(max_size=600).map(lambda b: b.replace(b"\x01", b"\n")),
    cuts=st.lists(st.integers(min_value=0, max_value=600), max_size=20),
    limit=st.integers(min_value=1, max_value=64),
)
def test_any_chunking_gives_the_same_lines(stream: bytes, cuts: list[int], limit: int) -> None:
    """However the stream is cut into chunks, the output is its lines (long ones in pieces)."""
    points = sorted({0, len(stream), *(c for c in cuts if c <= len(stream))})
    chunks = [stream[a:b] for a, b in itertools.pairwise(points)]
    out, framer = frame(chunks, limit)
    assert (out, framer.pending) == expected(stream, limit)


@pytest.mark.parametrize("limit", [0, -1])
def test_limit_must_be_positive(limit: int) -> None:
    """A zero or negative limit is refused where the framer is made."""
    with pytest.raises(ValueError, match="at least 1"):
        LineFramer(limit)
