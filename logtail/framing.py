"""Line framing: cut a byte stream into whole lines, whatever sizes it arrives in.

Works on whole chunks with bytes methods (``rfind``, ``replace``), never line by line in
Python, because catch-up speed is bounded by what happens here per byte.
"""

from __future__ import annotations

import re

NEWLINE = b"\n"

# A writer without O_APPEND that keeps its offset across a copytruncate writes past a
# hole: the file then starts with a run of NUL bytes that was never a line.
_NUL_RUN_AFTER_NEWLINE = re.compile(b"\n\x00+")


class LineFramer:
    """Turns chunks of a file into complete lines; holds back the unterminated rest.

    ``feed`` returns complete lines (each ending in a newline, possibly several, possibly
    none). A line longer than ``max_line_bytes`` goes out in pieces of at most that many
    bytes, each ending with a newline, so memory stays bounded and nothing is dropped.
    Runs of NUL bytes at the start of a line are dropped.
    """

    __slots__ = ("_carry", "max_line_bytes")

    def __init__(self, max_line_bytes: int) -> None:
        if max_line_bytes < 1:
            raise ValueError("max_line_bytes must be at least 1")
        self.max_line_bytes = max_line_bytes
        self._carry = b""

    @property
    def pending(self) -> int:
        """How many bytes of an unterminated line are held back (read, not yet printed)."""
        return len(self._carry)

    def feed(self, chunk: bytes) -> bytes:
        if b"\x00" in chunk:
            chunk = self._drop_nul_runs(chunk)
        limit = self.max_line_bytes
        end = chunk.rfind(NEWLINE) + 1
        if not end:
            complete, rest = b"", self._carry + chunk
        else:
            # One copy of the complete part, however the carry and the chunk lie.
            complete = b"".join((self._carry, memoryview(chunk)[:end])) if self._carry else chunk[:end]
            rest = chunk[end:]
            if len(chunk) <= limit:
                # Lines wholly inside a chunk no longer than the limit cannot exceed it; only
                # the first line (which carries over the previous rest) needs checking.
                first_end = complete.find(NEWLINE) + 1
                if first_end - 1 > limit:
                    complete = _split_long_lines(complete[:first_end], limit) + complete[first_end:]
            elif len(complete) - 1 > limit:
                complete = _split_long_lines(complete, limit)
        if len(rest) > limit:
            # Emit whole pieces while more than a piece is held: a rest of exactly the limit
            # may still turn out to be a line of exactly that length. Views, not copies, so
            # a line of 100 MB costs about one piece of memory at a time.
            cut = ((len(rest) - 1) // limit) * limit
            view = memoryview(rest)
            parts: list[bytes | memoryview] = [complete]
            for start in range(0, cut, limit):
                parts += (view[start : start + limit], NEWLINE)
            complete = b"".join(parts)
            rest = rest[cut:]
        self._carry = rest
        return complete

    def flush(self) -> bytes:
        """Give up waiting for the newline: the held-back rest as a line of its own."""
        rest, self._carry = self._carry, b""
        return rest + NEWLINE if rest else b""

    def _drop_nul_runs(self, chunk: bytes) -> bytes:
        if not self._carry:
            chunk = chunk.lstrip(b"\x00")
        return _NUL_RUN_AFTER_NEWLINE.sub(NEWLINE, chunk)


def _split_long_lines(block: bytes, limit: int) -> bytes:
    """Cut every line of ``block`` (which ends with a newline) into pieces of at most ``limit`` bytes."""
    out: list[bytes] = []
    start = 0
    size = len(block)
    while start < size:
        end = block.index(NEWLINE, start)
        while end - start > limit:
            out.append(block[start : start + limit])
            start += limit
        out.append(block[start:end])
        start = end + 1
    return NEWLINE.join(out) + NEWLINE
