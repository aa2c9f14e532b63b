"""Moving a generation's complete lines to stdout: chunked reads overlapped with writes, a bound on
chunks in flight across all files, and the ``--until`` cut.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

from logtail.generation import Generation
from logtail.multiline import Records
from logtail.output import Render, Stdout, Tally

# A backlog moves in chunks this large, at most this many read and not yet written across all
# files (what bounds memory when stdout is slower than the files grow). Every chunk costs a hop to
# a reader thread and one to the writer thread: 2,000,000 lines of 100 bytes into `cat` took
# 0.80 s in 256 KiB chunks (8 in flight) and 0.49-0.52 s in 1 MiB chunks (2 to 8 in flight alike).
READ_SIZE = 1024 * 1024
CHUNKS_IN_FLIGHT = 3


@dataclass(slots=True)
class Writing:
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
        self._record()

    def finish_now(self) -> bool:
        """If the block is written already (inline, and without error), record it now; say whether it was."""
        if not self.future.done() or self.future.exception() is not None:
            return False
        self.abandon()
        self._record()
        return True

    def _record(self) -> None:
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
    # How records of several lines are rendered, where not line by line (JSON); None otherwise.
    records: Callable[[Records], Render] | None = None


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
        writing: Writing | None = None
        holding = False  # a slot taken for the chunk being read, not yet handed to a Writing
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
                budget -= len(data)
                block = _take(gen, data)
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

    def print_read(self, gen: Generation, stream: Stream, data: bytes) -> Writing:
        """Print ``data``, just read from ``gen`` by its caller (a few lines appended), without
        waiting: a small block is written at once; else ``done()`` of what is returned waits.

        It takes no slot of the chunks in flight: the caller has at most one such block
        unfinished at a time, so memory stays bounded however slow stdout is.
        """
        return self._submit(gen, stream, _take(gen, data))

    async def emit(self, gen: Generation, stream: Stream, block: bytes, end_record: bool = False) -> None:
        """Print ``block`` (whole lines of ``gen``) and wait until it is written; ``end_record``: the
        record pending (--multiline) goes out too, however it ends."""
        await self._submit(gen, stream, block, end_record=end_record).done()

    def _submit(
        self,
        gen: Generation,
        stream: Stream,
        block: bytes,
        slot: asyncio.Semaphore | None = None,
        end_record: bool = False,
    ) -> Writing:
        """Queue ``block`` for stdout; once written, everything up to here counts as printed.

        With --multiline the block's lines go through the generation's grouper: what goes
        out is whole records, in one write (so another file's lines never land inside one),
        and a record still pending is not counted as printed, so a checkpoint never splits it.
        """
        records = None
        if (grouper := gen.grouper) is not None:
            records = grouper.feed(block)
            if end_record:
                records += grouper.flush()
            block = records.data
        printed = gen.offset - gen.framer.pending - (grouper.pending if grouper is not None else 0)
        cut = False
        if self._until is not None and block and (matched := self._until.search(block)) is not None:
            # --until matches a line; the run ends after the record that holds it.
            if records is not None:
                records = records.upto(matched.start())
                end = len(records.data)
            else:
                end = block.find(b"\n", max(matched.start(), matched.end() - 1)) + 1
            printed -= len(block) - end
            block = block[:end]
            self.cut = cut = True
        render = stream.render
        if records is not None and records.groups and stream.records is not None:
            render = stream.records(records)
        future = self.stdout.submit(block, render, stream.tally)
        return Writing(future, gen, printed, self if block else None, slot, cut)


def _take(gen: Generation, data: bytes) -> bytes:
    """``data`` was read from ``gen`` at its offset: move past it; return the whole lines it completes."""
    gen.note_read(data)
    gen.last_data = time.monotonic()
    return gen.framer.feed(data)
