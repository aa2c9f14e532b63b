"""Moving a generation's complete lines to stdout: chunked reads overlapped with writes, a bound on
chunks in flight across all files, and the ``--until`` cut.
"""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import dataclass

from logtail.generation import Generation
from logtail.output import Render, Stdout, Tally

READ_SIZE = 256 * 1024
CHUNKS_IN_FLIGHT = 8


@dataclass(slots=True)
class _Writing:
    """A block on its way to stdout, and what counts as printed once it is there."""

    future: asyncio.Future[None]
    gen: Generation
    printed: int
    printer: Printer | None  # told when a non-empty block is out (for --idle-exit)
    slot: asyncio.Semaphore | None  # released once written: the chunk no longer takes memory
    matched: bool = False  # ends with the line that matched --until

    async def done(self) -> None:
        try:
            await self.future
        finally:
            self.abandon()
        # Recorded right here, not in a callback: a callback runs later, and a snapshot
        # taken in between (the checkpoint at exit) would miss the last block.
        self.gen.printed = max(self.gen.printed, self.printed)
        if self.printer is not None:
            self.printer.last_output = time.monotonic()
            if self.matched:
                # Only now: the run ends once the matching line is out and counted as printed.
                self.printer.matched.set()

    def abandon(self) -> None:
        """Stop counting this block against the chunks in flight (once)."""
        if self.slot is not None:
            self.slot.release()
            self.slot = None


@dataclass(slots=True)
class Stream:
    """How one followed path's lines go out: rendered for its name, counted for the summary."""

    render: Render
    tally: Tally


class Printer:
    """The one way followers print: bounded memory across files, ``--until`` across files."""

    def __init__(
        self, stdout: Stdout, until: re.Pattern[bytes] | None, chunks_in_flight: int = CHUNKS_IN_FLIGHT
    ) -> None:
        self.stdout = stdout
        self._until = until
        # Chunks read and not yet written, across all files: what bounds memory when stdout
        # is slower than the files grow, however many files there are.
        self._slots = asyncio.Semaphore(chunks_in_flight)
        self.cut = False  # a line matched --until: nothing after it is read
        self.matched = asyncio.Event()  # ... and it has been written: the run is over
        self.last_output = time.monotonic()

    async def read(self, gen: Generation, stream: Stream, budget: int, target: int | None) -> int:
        """Read ``gen`` until its end (or ``target``), printing whole lines; return the budget left.

        The next chunk is read while the previous one is being written, so catching up
        costs about the slower of the two rather than their sum. Stops early once a line
        matched ``--until``.
        """
        slots = self._slots
        writing: _Writing | None = None
        holding = False  # a slot taken for the chunk being read, not yet handed to a _Writing
        try:
            while budget > 0 and not self.cut:
                if target is not None and gen.offset >= target:
                    break
                if writing is not None and slots.locked():
                    # No chunk may be read while all are in flight: finish ours first, so a
                    # follower never waits for a slot while holding one (no deadlock).
                    previous, writing = writing, None
                    await previous.done()
                await slots.acquire()
                holding = True
                data = await gen.read(READ_SIZE)
                if not data:
                    break
                gen.note_read(data)
                budget -= len(data)
                block = gen.framer.feed(data)
                del data  # held by this frame, it would outlive its slot while we wait for the next
                if writing is not None:
                    previous, writing = writing, None
                    await previous.done()
                writing, holding = self._submit(gen, stream, block, slots), False
                del block
        except BaseException:
            # Cancelled (a drain past its deadline) or failed: give the slots back without
            # waiting for a stdout that may never move again.
            if writing is not None:
                writing.abandon()
            if holding:
                slots.release()
            raise
        if holding:
            slots.release()
        if writing is not None:
            await writing.done()
        return budget

    async def emit(self, gen: Generation, stream: Stream, block: bytes) -> None:
        """Print ``block`` (whole lines of ``gen``) and wait until it is written."""
        await self._submit(gen, stream, block).done()

    def _submit(
        self, gen: Generation, stream: Stream, block: bytes, slot: asyncio.Semaphore | None = None
    ) -> _Writing:
        """Queue ``block`` for stdout; once written, everything up to here counts as printed."""
        printed = gen.offset - gen.framer.pending
        cut = False
        if self._until is not None and block and (matched := self._until.search(block)) is not None:
            end = block.find(b"\n", max(matched.start(), matched.end() - 1)) + 1
            printed -= len(block) - end
            block = block[:end]
            self.cut = cut = True
        future = self.stdout.submit(block, stream.render, stream.tally)
        return _Writing(future, gen, printed, self if block else None, slot, cut)
