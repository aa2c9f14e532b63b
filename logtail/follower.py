"""Following one path: open, read in chunks, frame lines, move on to the next file at rotation.

A path can be backed by several files at once: after a rename or a delete the old file
is still being written until the application reopens, while a new file already sits at
the path. Each such file is a ``Generation``; they are read strictly in order and the
oldest is closed only when the next one has data (so the writer has moved on) and it
has been quiet for ``rotate_wait``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiofiles

from logtail import files, locate, rotation
from logtail.config import FIRST_LINE, Config, StartAt
from logtail.errors import StdoutClosed
from logtail.framing import LineFramer
from logtail.output import Render, Stdout, Tally, renderer
from logtail.rotation import Change, FileId, classify, retire_delay

READ_SIZE = 256 * 1024
INLINE_READ = 64 * 1024
CHUNKS_IN_FLIGHT = 8
# Read at most this much before looking at the path again and letting other files have a
# turn: a writer faster than us must not hide a rotation or starve its neighbours.
BURST = 8 * 1024 * 1024


@dataclass(slots=True)
class Stats:
    rotations: int = 0
    truncations: int = 0


@dataclass(eq=False, slots=True)
class Generation:
    """One file that is or was at the followed path, open, with what has been read of it."""

    fd: int
    id: FileId
    offset: int  # next byte to read; everything before it went through the framer
    framer: LineFramer
    printed: int = 0  # everything before this offset is on stdout (what a checkpoint may record)
    window: bytes = b""  # the last bytes before ``offset``, to notice a rewrite in place
    # While nothing is read yet: the first bytes as they were when this file was queued, so a
    # truncation before we get to it (copytruncate again, while older copies are read) shows.
    head: bytes = b""
    is_copy: bool = False  # the rest of a copytruncated file, in the copy logrotate made
    _async: Any = None  # aiofiles' wrapper, made on the first large read

    async def read(self, size: int) -> bytes:
        if os.fstat(self.fd).st_size - self.offset <= INLINE_READ:
            # A few lines just written are in the page cache: reading them here takes
            # microseconds, a hop to a worker thread would add latency to every line.
            return os.read(self.fd, size)
        if self._async is None:
            self._async = await aiofiles.open(self.fd, "rb", buffering=0, closefd=False)
        data: bytes = await self._async.read(size)
        return data

    def note_read(self, data: bytes) -> None:
        self.offset += len(data)
        if len(data) >= locate.WINDOW:
            self.window = data[-locate.WINDOW :]
        else:
            self.window = (self.window + data)[-locate.WINDOW :]

    def rewind(self, max_line_bytes: int) -> None:
        """Start again from the first byte (the file was truncated)."""
        os.lseek(self.fd, 0, os.SEEK_SET)
        self.framer = LineFramer(max_line_bytes)
        self.offset = self.printed = 0
        self.window = b""
        self.head = os.pread(self.fd, locate.WINDOW, 0)

    def intact(self) -> bool:
        """Whether the bytes that identify what was (or will be) read here are still in place."""
        try:
            if self.offset:
                return not self.window or locate.window_before(self.fd, self.offset).endswith(self.window)
            return not self.head or os.pread(self.fd, len(self.head), 0) == self.head
        except OSError:
            return True

    def close(self) -> None:
        files.close_quietly(self.fd)


@dataclass(frozen=True)
class Snapshot:
    """A position that a checkpoint can record: everything before ``offset`` of file ``id`` is printed."""

    id: FileId
    offset: int
    window: bytes  # the bytes just before ``offset``
    mtime_ns: int


@dataclass
class Shared:
    """What all followers of a run share: the configuration, stdout and the run's hooks."""

    config: Config
    stdout: Stdout
    log: Any
    until: re.Pattern[bytes] | None = None
    on_match: Callable[[], None] = lambda: None
    on_data: Callable[[], None] = lambda: None
    on_retire: Callable[[FileId, bytes], None] = lambda file_id, head: None
    followed_elsewhere: Callable[[str, FileId], bool] = lambda path, file_id: False
    # With a checkpoint, an unterminated line waits for its newline across a restart
    # instead of going out early and then again whole.
    flush_partial_at_end: bool = True
    warned: set[tuple[str, str]] = field(default_factory=set)
    # Chunks read and not yet written, across all files: what bounds memory when stdout
    # is slower than the files grow, however many files there are.
    chunks_in_flight: asyncio.Semaphore = field(default_factory=lambda: asyncio.Semaphore(CHUNKS_IN_FLIGHT))

    def warn_once(self, event: str, path: str, **kw: Any) -> None:
        key = (path, event + str(sorted(kw.items())))
        if key not in self.warned:
            self.warned.add(key)
            self.log.warning(event, path=path, **kw)


@dataclass(frozen=True)
class Resume:
    """Start from a checkpoint: these files, in order, each from its offset."""

    steps: tuple[locate.Step, ...]


Start = StartAt | Resume | None  # None: from the first byte (a file that appeared later)


@dataclass(slots=True)
class _Writing:
    """A block on its way to stdout, and what counts as printed once it is there."""

    future: asyncio.Future[None]
    gen: Generation
    printed: int
    on_data: Callable[[], None] | None
    slot: asyncio.Semaphore | None  # released once written: the chunk no longer takes memory

    async def done(self) -> None:
        try:
            await self.future
        finally:
            self.abandon()
        # Recorded right here, not in a callback: a callback runs later, and a snapshot
        # taken in between (the checkpoint at exit) would miss the last block.
        self.gen.printed = max(self.gen.printed, self.printed)
        if self.on_data is not None:
            self.on_data()

    def abandon(self) -> None:
        """Stop counting this block against the chunks in flight (once)."""
        if self.slot is not None:
            self.slot.release()
            self.slot = None


class Follower:
    """Follows one path by name, like ``tail -F``, across every kind of rotation."""

    def __init__(
        self, path: str, name: str, shared: Shared, start: Start, *, glob_member: bool, root: str
    ) -> None:
        self.path = path
        self.root = root  # what the user named; symlinks must not lead out of it
        self.name = name
        self.stats = Stats()
        self.printed = Tally()
        self.gens: deque[Generation] = deque()
        self.done = False
        self.missing = False
        self.via_symlink = False  # the path is a symlink: inotify on its directory misses the writes
        self._shared = shared
        self._config = shared.config
        self._render: Render = renderer(self._config.format, self._config.prefix, name, path)
        self._start = start
        self._glob_member = glob_member
        self._wake = asyncio.Event()
        self._wake.set()
        self._draining = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_snapshot: Snapshot | None = None
        self._matched = False

    # -- control, from the app and the watcher ------------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def drain(self) -> None:
        """Read every generation to its current end, print it, then stop."""
        self._draining = True
        self._wake.set()

    @property
    def has_rotated(self) -> bool:
        """Whether a generation that is no longer at the path is still open."""
        return len(self.gens) > 1 or self.missing

    async def run(self) -> None:
        try:
            while not self.done:
                await self._wake.wait()
                self._wake.clear()
                try:
                    await self.pump()
                except StdoutClosed:
                    raise
                except OSError as exc:
                    # A read failed (EIO on a network file system, a vanished mount): say so
                    # and try again at the next change instead of ending every other stream.
                    self._shared.warn_once("cannot read file", self.path, reason=exc.strerror or str(exc))
            if self._matched:
                self._shared.on_match()
        finally:
            if self._timer:
                self._timer.cancel()
            self._last_snapshot = self.snapshot()  # the checkpoint at exit is saved after this
            for gen in self.gens:
                gen.close()
            self.gens.clear()

    def unread(self) -> int:
        """Bytes on disk not printed yet, for the drain report."""
        total = 0
        for gen in self.gens:
            with contextlib.suppress(OSError):
                total += max(0, os.fstat(gen.fd).st_size - gen.printed)
        return total

    def snapshot(self) -> Snapshot | None:
        """Where printing stopped: the oldest open generation and its first byte not printed yet."""
        if not self.gens:
            return self._last_snapshot
        gen = self.gens[0]
        try:
            mtime_ns = os.fstat(gen.fd).st_mtime_ns
            window = locate.window_before(gen.fd, gen.printed)
        except OSError:
            return None
        return Snapshot(gen.id, gen.printed, window, mtime_ns)

    # -- the work ---------------------------------------------------------------------

    async def pump(self) -> None:
        final = self._draining or not self._config.follow
        if isinstance(self._start, Resume):
            await self._open_resume_steps(self._start)
        await self._refresh()
        # A drain reads everything up to the end seen now, however much that is.
        budget = sys.maxsize if final else BURST
        while self.gens:
            gen = self.gens[0]
            later = self.gens[1] if len(self.gens) > 1 else None
            # Look at the later files before the last read of this one: a single writer
            # only writes there after its last write here. Any of them, not just the next:
            # a rotation of an idle log leaves empty generations in between.
            next_has_data = any(_size(g.fd) > 0 for g in list(self.gens)[1:])
            target = _size(gen.fd) if final else None
            budget = await self._read(gen, budget, target)
            if budget <= 0:
                self._wake.set()  # more to read: come back after the others had a turn
                return
            if self.done:
                return
            if later is None:
                break
            delay = retire_delay(
                next_has_data, _idle_for(gen.fd), self._config.rotate_wait, final, gen.is_copy
            )
            if delay == 0:
                await self._retire(gen)
                continue
            if delay is not None:
                self._wake_in(delay)
            break
        if final:
            if self.gens and self._shared.flush_partial_at_end:
                await self._emit(self.gens[0], self.gens[0].framer.flush())
            self.done = True
        elif self._glob_member and self.missing and not self.gens:
            self.done = True  # matched by a glob, gone before it could be opened
        elif self._glob_member and self.missing and len(self.gens) == 1:
            # A file matched by a glob that went away: close it once it has been quiet.
            delay = retire_delay(True, _idle_for(self.gens[0].fd), self._config.rotate_wait, False)
            if delay == 0:
                await self._retire(self.gens[0])
                self.done = True
            elif delay is not None:
                self._wake_in(delay)

    async def _read(self, gen: Generation, budget: int, target: int | None) -> int:
        """Read ``gen`` until its end (or ``target``), printing whole lines; return the budget left.

        The next chunk is read while the previous one is being written, so catching up
        costs about the slower of the two rather than their sum.
        """
        slots = self._shared.chunks_in_flight
        writing: _Writing | None = None
        holding = False  # a slot taken for the chunk being read, not yet handed to a _Writing
        try:
            while budget > 0 and not self.done:
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
                writing, holding = self._submit(gen, block, slots), False
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

    async def _emit(self, gen: Generation, block: bytes) -> None:
        await self._submit(gen, block).done()

    def _submit(self, gen: Generation, block: bytes, slot: asyncio.Semaphore | None = None) -> _Writing:
        """Queue ``block`` for stdout; once written, everything up to here counts as printed."""
        printed = gen.offset - gen.framer.pending
        until = self._shared.until
        if until is not None and block and (matched := until.search(block)) is not None:
            end = block.find(b"\n", max(matched.start(), matched.end() - 1)) + 1
            printed -= len(block) - end
            block = block[:end]
            self._matched = self.done = True
        future = self._shared.stdout.submit(block, self._render, self.printed)
        return _Writing(future, gen, printed, self._shared.on_data if block else None, slot)

    async def _retire(self, gen: Generation) -> None:
        await self._emit(gen, gen.framer.flush())
        self.gens.popleft()
        with contextlib.suppress(OSError):
            self._shared.on_retire(gen.id, os.pread(gen.fd, locate.WINDOW, 0))
        gen.close()

    # -- what is at the path now --------------------------------------------------------

    async def _refresh(self) -> None:
        try:
            at_path: os.stat_result | None = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            at_path = None
        except OSError as exc:
            self._shared.warn_once("cannot look at file", self.path, reason=exc.strerror)
            return
        newest = self.gens[-1] if self.gens else None
        intact = True
        if (
            newest is not None
            and at_path is not None
            and FileId.of(at_path) == newest.id
            and at_path.st_size >= newest.offset
        ):
            intact = newest.intact()
        change = classify(newest.id if newest else None, newest.offset if newest else 0, at_path, intact)
        if (
            change in (Change.APPEARED, Change.REPLACED)
            and at_path is not None
            and self._glob_member
            and self._shared.followed_elsewhere(self.path, FileId.of(at_path))
        ):
            # A glob that also matches rotated names: the file now here (app.log.1) is the
            # one another follower reads as its old generation. Not ours to print again.
            change = Change.MISSING
        self.missing = change is Change.MISSING
        if change is Change.MISSING:
            if not self.gens:
                self._shared.warn_once("waiting for file to appear", self.path)
        elif change is Change.APPEARED:
            await self._open_at_path(rotated=False)
        elif change is Change.REPLACED and newest is not None:
            await self._open_missed_generations(newest)
            await self._open_at_path(rotated=True)
        elif change is Change.TRUNCATED and newest is not None:
            await self._truncated(newest)

    async def _open_at_path(self, rotated: bool) -> None:
        start = self._start
        self._start = None  # only the file found at start-up gets -n; later ones start at byte 0
        opened = await self._open(self.path)
        if opened is None:
            self._start = start
            return
        fd, st = opened
        self.via_symlink = os.path.islink(self.path)
        file_id = FileId.of(st)
        if any(g.id == file_id for g in self.gens):
            os.close(fd)  # the path went back to a file already open (a symlink flipped back)
            return
        offset = 0
        if isinstance(start, StartAt) and start != FIRST_LINE:
            offset = await asyncio.to_thread(locate.start_offset, fd, st.st_size, start)
        gen = self._generation(fd, file_id, offset)
        if rotated:
            self.stats.rotations += 1
            self._shared.log.info("file rotated", path=self.path, name=self.name)
        self.gens.append(gen)

    async def _open_missed_generations(self, newest: Generation) -> None:
        """Generations that came and went between two looks at the path (rotation faster than us)."""
        try:
            since = os.fstat(newest.fd).st_mtime_ns
        except OSError:
            return
        for gen in await self._newer_generations(since):
            self.gens.append(gen)
            self.stats.rotations += 1

    async def _newer_generations(self, since_ns: int) -> list[Generation]:
        """Open the rotated generations written since ``since_ns`` that are not open yet, oldest first."""
        known = {g.id for g in self.gens}
        opened: list[Generation] = []
        for found in locate.newer_generations(self.path, self._config.rotated_patterns, since_ns, known):
            if (result := await self._open(found.path)) is None:
                continue
            fd, st = result
            if FileId.of(st) != found.id:
                os.close(fd)  # replaced since it was listed
                continue
            opened.append(self._generation(fd, found.id, 0))
            self._shared.log.info("reading a rotated file that was missed", path=self.path, file=found.path)
        return opened

    async def _open_resume_steps(self, resume: Resume) -> None:
        self._start = None
        for step in resume.steps:
            opened = await self._open(step.path)
            if opened is None:
                continue
            fd, st = opened
            if FileId.of(st) != step.id or any(g.id == step.id for g in self.gens):
                os.close(fd)
                continue
            self.gens.append(self._generation(fd, step.id, step.offset))
            if step.path != self.path:
                self._shared.log.info("resuming in rotated file", path=self.path, file=step.path)

    async def _open(self, path: str) -> tuple[int, os.stat_result] | None:
        try:
            root = None if self._config.symlinks_anywhere else self.root
            if root is not None and not rotation.inside(root, os.path.abspath(path)):
                root = os.path.dirname(os.path.abspath(path))  # a --rotated place the user named
            return files.open_regular(path, root)
        except FileNotFoundError:
            return None
        except files.Refused as refused:
            self._shared.warn_once("not following file", path, reason=str(refused))
            return None
        except OSError as exc:  # out of descriptors, I/O error: try again at the next change
            self._shared.warn_once("cannot open file", path, reason=exc.strerror or str(exc))
            return None

    def _generation(self, fd: int, file_id: FileId, offset: int) -> Generation:
        if offset:
            os.lseek(fd, offset, os.SEEK_SET)
        gen = Generation(fd, file_id, offset, LineFramer(self._config.max_line_bytes), printed=offset)
        if offset:
            gen.window = locate.window_before(fd, offset)
        else:
            gen.head = os.pread(fd, locate.WINDOW, 0)
        return gen

    async def _truncated(self, gen: Generation) -> None:
        """The file at the path was cut short: finish what it held from its copy, if there is one."""
        self.stats.truncations += 1
        # What identifies our content: the bytes before the read offset, or, if nothing was
        # read yet, the first bytes as they were when this file was queued.
        mark, known = (gen.offset, gen.window) if gen.offset else (len(gen.head), gen.head)
        copy = locate.find_copy(self.path, self._config.rotated_patterns, mark, known, gen.id)
        opened = await self._open(copy) if copy else None
        if opened is not None:
            fd, st = opened
            rest = self._generation(fd, FileId.of(st), gen.offset)
            rest.framer, rest.printed, rest.is_copy = gen.framer, gen.printed, True
            at = self.gens.index(gen)
            self.gens.insert(at, rest)
            self._shared.log.info("file truncated; reading the rest from its copy", path=self.path, copy=copy)
            # Several copytruncates since we last looked: the copies made after this one
            # hold the generations in between, oldest first.
            for between in await self._newer_generations(st.st_mtime_ns):
                between.is_copy = True
                at += 1
                self.gens.insert(at, between)
        else:
            await self._emit(gen, gen.framer.flush())
            self._shared.log.info("file truncated; reading it from the start", path=self.path)
        gen.rewind(self._config.max_line_bytes)

    def _wake_in(self, delay: float) -> None:
        if self._timer:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake.set)


def _size(fd: int) -> int:
    return os.fstat(fd).st_size


def _idle_for(fd: int) -> float:
    return time.time() - os.fstat(fd).st_mtime
