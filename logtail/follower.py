"""Following one path by name, like ``tail -F``: the state machine over its generations.

The oldest generation is read to its end and closed only when the next one has data (so
the writer has moved on) and it has been quiet for ``rotate_wait``; what a look at the
path means is decided in ``rotation``, where reading starts in ``locate``, and how bytes
reach stdout in ``transfer``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import sys
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from logtail import files, locate, logs, renames
from logtail.config import FIRST_LINE, Config, StartAt
from logtail.errors import StdoutClosed
from logtail.generation import INLINE_READ, Generation, Snapshot, agrees
from logtail.identity import FileId, Registry
from logtail.locate import Resume, Start
from logtail.multiline import Grouper
from logtail.output import Tally, record_renderer, renderer
from logtail.renames import Renames
from logtail.rotation import Change, classify, glob_member_ending, interpret, retire_delay
from logtail.transfer import Printer, Stream, Writing

# Read at most this much before looking at the path again and letting other files have a
# turn: a writer faster than us must not hide a rotation or starve its neighbours.
BURST = 8 * 1024 * 1024
# How many files read to their end and closed each path remembers in the checkpoint, so that a
# restart never takes one of them (a copytruncate's copy, a renamed generation) for a newer file.
DONE_MEMORY = 16


@dataclass(slots=True)
class Stats:
    rotations: int = 0
    truncations: int = 0
    lost_bytes: int = 0  # known to have existed and gone before they could be printed


@dataclass(frozen=True)
class Shared:
    """What every follower of a run needs: the configuration, the printer and the file registry."""

    config: Config
    printer: Printer
    registry: Registry
    warnings: logs.Warnings
    # With a checkpoint, an unterminated line waits for its newline across a restart
    # instead of going out early and then again whole.
    flush_partial_at_end: bool = True
    # With a checkpoint: returns once the checkpoint on disk names a file (awaited before the first
    # read of each file, so a SIGKILL can repeat lines but never forget a file it printed from).
    known: Callable[[FileId], Awaitable[None]] | None = None


class Follower:
    """Follows one path by name, like ``tail -F``, across every kind of rotation."""

    def __init__(
        self, path: str, name: str, shared: Shared, start: Start, *, glob_member: bool, root: str
    ) -> None:
        self.path = path
        self.directory = os.path.dirname(path)  # where its inotify events come from
        self.root = root  # what the user named; symlinks must not lead out of it
        self.name = name
        self.stats = Stats()
        self.printed = Tally()
        self.done = False
        self.missing = False
        self.refused = False  # the path itself exists but must not be read (--no-follow then fails)
        self.via_symlink = False  # the path is a symlink: inotify on its directory misses the writes
        self._gens: deque[Generation] = deque()
        # Where files at the path were renamed to (inotify), in order: where missed generations
        # are, for rotated names that no --rotated pattern describes.
        self._renames = Renames()
        self._shared = shared
        self._config = shared.config
        self._printer = shared.printer
        self._log = logs.get()
        self._stream = Stream(
            renderer(self._config.format, self._config.prefix, name, path),
            self.printed,
            record_renderer(self._config.format, name, path),
        )
        self._records = self._config.multiline_for(name)  # --multiline: how lines make records
        self._record_timer: asyncio.TimerHandle | None = None
        self._start = start
        self.glob_member = glob_member
        self._wake = asyncio.Event()
        self._wake.set()
        self._draining = False
        self._timer: asyncio.TimerHandle | None = None
        self._last_snapshot: tuple[Snapshot, ...] = ()
        # Generations a drain read to their end that a normal run would still keep open (their
        # writer may not have reopened yet): the checkpoint keeps them, so that what is written
        # into them after logtail stopped is read after a restart.
        self._lingering: list[Snapshot] = []
        # Files read to their end and closed, newest last, as the checkpoint records them.
        self._done: deque[Snapshot] = deque(maxlen=DONE_MEMORY)
        self._pumping = False  # the follower task is in pump(): only it may read now
        # A block appended() printed that stdout did not take at once: pump() waits for it first.
        self._unfinished: Writing | None = None

    # -- control, from the app and change detection -------------------------------------

    def wake(self) -> None:
        self._wake.set()

    def appended(self) -> bool:
        """Its file was written and nothing else happened at the path (inotify said so): print
        the new lines now, from the event callback; False if the follower must look instead.

        Most wake-ups of a sidecar are this one, and the follower task's turn (a look at the
        path, the checks a rotation needs, futures for the write) costs several times what
        reading a few lines costs. Only a file read from before, alone at its path and in
        no special state, is read this way; the read itself notices a truncation.
        """
        if (
            self.done
            or self._pumping
            or self._wake.is_set()
            or self._unfinished is not None
            or self._draining
            or not self._config.follow
            or self.missing
            or self.via_symlink
            or self._start is not None
            or len(self._gens) != 1
            or self._printer.cut
        ):
            return False
        gen = self._gens[0]
        if not gen.started or gen.grouper is not None or gen.cut_short:
            return False
        try:
            data = gen.read_appended(INLINE_READ)
        except OSError:
            return False  # the follower's look says what is wrong
        if data is None:
            return False  # more than a few lines, or cut short
        if data:
            writing = self._printer.print_read(gen, self._stream, data)
            if not writing.finish_now():
                self._unfinished = writing  # to the stdout thread, or failed: pump() sees to it
                self._wake.set()
            elif self._printer.cut:
                self._wake.set()  # the line --until waits for: pump() ends the run
        return True

    def drain(self) -> None:
        """Read every generation to its current end, print it, then stop."""
        self._draining = True
        self._wake.set()

    @property
    def has_rotated(self) -> bool:
        """Whether a generation that is no longer at the path is still open."""
        return len(self._gens) > 1 or self.missing

    def signature(self) -> tuple[Any, ...]:
        """What a stat sweep compares between two looks: the path's file and every open generation's size."""
        try:
            st = os.stat(self.path)
            at_path: tuple[int, ...] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            at_path = None
        sizes = []
        for gen in list(self._gens):
            try:
                sizes.append(gen.size())
            except OSError:
                sizes.append(-1)
        return (at_path, *sizes)

    def unread(self) -> int:
        """Bytes on disk not printed yet, for the drain report."""
        total = 0
        for gen in self._gens:
            with contextlib.suppress(OSError):
                total += gen.unprinted()
        return total

    def snapshot(self) -> tuple[Snapshot, ...]:
        """Where printing stopped in every generation that may still be read, oldest first."""
        if not self._gens:
            return self._last_snapshot or (*self._done, *self._lingering)
        try:
            return (*self._done, *self._lingering, *(gen.snapshot() for gen in self._gens))
        except OSError:
            return ()

    async def run(self) -> None:
        try:
            while not self.done:
                await self._wake.wait()
                self._wake.clear()
                self._pumping = True
                try:
                    if (unfinished := self._unfinished) is not None:
                        self._unfinished = None
                        await unfinished.done()  # raises StdoutClosed if it could not be written
                    await self.pump()
                except StdoutClosed:
                    raise
                except OSError as exc:
                    # A read failed (EIO on a network file system, a vanished mount): say so
                    # and try again at the next change instead of ending every other stream.
                    self._warn("cannot read file", self.path, reason=exc.strerror or str(exc))
                finally:
                    self._pumping = False
        finally:
            for timer in (self._timer, self._record_timer):
                if timer is not None:
                    timer.cancel()
            self._last_snapshot = self.snapshot()  # the checkpoint at exit is saved after this
            while self._gens:
                self._drop(self._gens[0])

    # -- the work ---------------------------------------------------------------------

    async def pump(self) -> None:
        final = self._draining or not self._config.follow
        if isinstance(self._start, Resume):
            await self._open_resume_steps(self._start)
        await self._refresh()
        if unseen := self._renames.take_unseen():
            await self._adopt_moved(unseen)
        # A drain reads everything up to the end seen now, however much that is.
        budget = sys.maxsize if final else BURST
        while self._gens:
            gen = self._gens[0]
            later = self._gens[1] if len(self._gens) > 1 else None
            # Look at the later files before the last read of this one: a single writer
            # only writes there after its last write here. Any of them, not just the next:
            # a rotation of an idle log leaves empty generations in between.
            if not gen.started:
                if self._copy_of_queued(gen):
                    self._drop(gen)  # not the rest of anything: that file reads it, or finds it then
                    continue
                if not final and (wait := self._being_written(gen)) is not None:
                    self._wake_in(wait)
                    break
                gen.started = True
                if await self._check_queued(gen):
                    continue  # its copy was queued before it: read that first
                if self._shared.known is not None:
                    await self._shared.known(gen.id)
            next_has_data = any(g.size() > 0 for g in list(self._gens)[1:])
            target = gen.size() if final else None
            if target is not None and target < gen.offset:
                # A drain reads up to the end seen now, so its read stops before looking: a file
                # cut short under the read offset is noticed here, or its copy (queued as a missed
                # generation) would be read from its first byte, repeating what was printed.
                gen.cut_short = True
            budget = await self._printer.read(gen, self._stream, budget, target)
            if gen.cut_short:
                await self._truncated(gen)
                continue
            if self._printer.cut:
                self.done = True
                return
            if budget <= 0:
                self._wake.set()  # more to read: come back after the others had a turn
                return
            if later is None:
                break
            delay = retire_delay(next_has_data, _idle_for(gen), self._config.rotate_wait, False, gen.is_copy)
            if final and delay != 0:
                await self._linger(gen)
                continue
            if delay == 0:
                await self._retire(gen)
                continue
            if delay is not None:
                self._wake_in(delay)
            break
        if final:
            if self._gens:
                await self._end_records(self._gens[0], partial_line=self._shared.flush_partial_at_end)
            self.done = True
            return
        if self._gens:
            await self._end_quiet_record(self._gens[0])
        if self.glob_member:
            idle = _idle_for(self._gens[0]) if len(self._gens) == 1 else 0.0
            ending = glob_member_ending(self.missing, len(self._gens), idle, self._config.rotate_wait)
            if ending == 0:
                # A file matched by a glob went away (or before it could be opened) and is quiet.
                if self._gens:
                    await self._retire(self._gens[0])
                self.done = True
            elif ending is not None:
                self._wake_in(ending)

    async def _flush_partial(self, gen: Generation) -> None:
        """The file is done with: its unterminated last line, and the record pending, go out."""
        await self._end_records(gen, partial_line=True)

    async def _end_records(self, gen: Generation, partial_line: bool) -> None:
        """Print the record pending (--multiline), and the unterminated line too if ``partial_line``."""
        await self._printer.emit(
            gen, self._stream, gen.framer.flush() if partial_line else b"", end_record=True
        )

    async def _end_quiet_record(self, gen: Generation) -> None:
        """A record pending for --multiline-timeout with nothing new in its file is complete."""
        if gen.grouper is None or not gen.grouper.pending:
            return
        quiet = time.monotonic() - gen.last_data
        if quiet >= self._config.multiline_timeout:
            await self._end_records(gen, partial_line=False)
            return
        if self._record_timer is not None:
            self._record_timer.cancel()
        self._record_timer = asyncio.get_running_loop().call_later(
            self._config.multiline_timeout - quiet, self._wake.set
        )

    async def _retire(self, gen: Generation) -> None:
        """``gen`` is read to its end and the writer has moved on: print its last partial line, close it."""
        await self._flush_partial(gen)
        with contextlib.suppress(OSError):
            self._shared.registry.retired(gen.id, *gen.first_content())
            self._remember_done(gen.snapshot())
        self._drop(gen)

    def _remember_done(self, at: Snapshot) -> None:
        """``at`` is the end of a file read to its end: the checkpoint keeps it known."""
        if at.offset:  # an empty file holds nothing that could be read twice
            self._done = deque((d for d in self._done if d.id != at.id), maxlen=DONE_MEMORY)
            self._done.append(dataclasses.replace(at, done=True))

    async def _linger(self, gen: Generation) -> None:
        """A drain is done with ``gen`` before its writer may be: close it, but keep it in the checkpoint."""
        await self._end_records(gen, partial_line=self._shared.flush_partial_at_end)
        with contextlib.suppress(OSError):
            self._lingering.append(gen.snapshot())
        self._drop(gen)

    def _queued_as(self, file_id: FileId) -> Generation | None:
        return next((g for g in self._gens if g.id == file_id), None)

    def _queued_holding(self, gen: Generation, mark: int, known: bytes) -> Generation | None:
        """A queued generation other than ``gen`` that holds ``known`` just before ``mark``: its copy."""
        if not mark or not known:
            return None
        for other in self._gens:
            if other is gen:
                continue
            with contextlib.suppress(OSError):
                if other.size() >= mark and os.pread(other.fd, len(known), mark - len(known)) == known:
                    return other
        return None

    def _queue(self, gen: Generation, at: int | None = None) -> None:
        if at is None:
            self._gens.append(gen)
        else:
            self._gens.insert(at, gen)
        self._shared.registry.opened(gen.id, self.path)

    def _drop(self, gen: Generation) -> None:
        self._gens.remove(gen)
        self._shared.registry.closed(gen.id, self.path)
        gen.close()

    # -- what is at the path now --------------------------------------------------------

    async def _refresh(self) -> None:
        try:
            at_path: os.stat_result | None = os.stat(self.path)
        except (FileNotFoundError, NotADirectoryError):
            at_path = None
        except OSError as exc:
            self._warn("cannot look at file", self.path, reason=exc.strerror)
            return
        newest = self._gens[-1] if self._gens else None
        intact = True
        if (
            newest is not None
            and at_path is not None
            and FileId.of(at_path) == newest.id
            and at_path.st_size >= newest.offset
        ):
            intact = newest.intact()
        change = classify(newest.id if newest else None, newest.offset if newest else 0, at_path, intact)
        elsewhere = (
            change in (Change.APPEARED, Change.REPLACED)
            and at_path is not None
            and self.glob_member
            and self._shared.registry.read_elsewhere(self.path, FileId.of(at_path))
        )
        change = interpret(change, self.glob_member, elsewhere)
        self.missing = change is Change.MISSING
        if (
            change in _LEFT_THE_PATH
            and newest is not None
            and newest.started
            and not newest.offset
            and not newest.head
        ):
            # Renamed away with nothing read from it, and nothing in it when it was last looked at:
            # written and copytruncated in between, then written on (model seed 135), the copy of
            # what it had comes first. Nothing printed from it, it goes back to the queue, where a
            # file queued while empty is asked for such copies when it comes up (_check_queued).
            newest.started = False
        if change is Change.MISSING:
            if not self._gens:
                self._warn("waiting for file to appear", self.path)
        elif change is Change.APPEARED and at_path is not None:
            await self._open_at_path(FileId.of(at_path), rotated=False)
        elif change is Change.REPLACED and newest is not None and at_path is not None:
            await self._open_missed_generations(newest)
            await self._open_at_path(FileId.of(at_path), rotated=True)
        elif change is Change.TRUNCATED and newest is not None:
            await self._truncated(newest)
        elif change is Change.UNCHANGED and newest is not None and not newest.offset and not newest.head:
            # Empty when last looked at, nothing read: written and copytruncated in between
            # leaves it empty again, and only a copy made since then holds what it had.
            await self._check_queued(newest)

    async def _open_at_path(self, seen: FileId, rotated: bool) -> None:
        """Open the file at the path, which a look just found to be ``seen``."""
        start = self._start
        self._start = None  # only the file found at start-up gets -n; later ones start at byte 0
        opened = await self._open(self.path)
        if opened is None:
            self._start = start
            return
        fd, st = opened
        self.via_symlink = os.path.islink(self.path)
        file_id = FileId.of(st)
        if file_id != seen and not any(g.id == seen for g in self._gens):
            # Rotated again between the look and the open (a logger that rotates every few
            # milliseconds): the file that was looked at comes first, wherever it went now.
            os.close(fd)
            if (found := await self._open_by_identity(seen)) is not None:
                self._place([found])
            self._wake.set()  # look again: the newer file is at the path
            return
        if any(g.id == file_id for g in self._gens):
            os.close(fd)  # the path went back to a file already open (a symlink flipped back)
            return
        offset = 0
        if isinstance(start, StartAt) and start != FIRST_LINE:
            offset = await asyncio.to_thread(locate.start_offset, fd, st.st_size, start)
        gen = self._generation(fd, file_id, offset)
        gen.from_path = True
        if rotated:
            self.stats.rotations += 1
            self._log.info("file rotated", path=self.path, name=self.name)
        self._queue(gen)

    async def _open_missed_generations(self, newest: Generation) -> None:
        """Generations that came and went between two looks at the path (rotation faster than us)."""
        try:
            since = os.fstat(newest.fd).st_mtime_ns
        except OSError:
            return
        self._place(await self._newer_generations(since))

    async def _open_by_identity(self, file_id: FileId) -> Generation | None:
        """Open the file ``file_id`` that was at the path, wherever it went (names it was moved to,
        rotated names, or a listing of the directory by inode)."""
        places = [*self._renames.names, *locate.rotated_siblings(self.path, self._config.rotated_patterns)]
        for found in locate.by_identity(self.path, places, file_id):
            if (opened := await self._open(found.path)) is None:
                continue
            fd, st = opened
            if FileId.of(st) == file_id:
                return self._generation(fd, file_id, 0)
            os.close(fd)
        return None

    def moved(self, to: str) -> None:
        """The file at the path was renamed to ``to`` (an inotify rename pair): a place its
        generations may be found, whatever the --rotated patterns say."""
        self._renames.moved(to)

    def linked(self, name: str, links: list[str]) -> None:
        """The file renamed to ``name`` was linked to one of ``links`` and ``name`` removed."""
        self._renames.linked(name, links)

    async def _adopt_moved(self, moves: list[tuple[str, FileId | None]]) -> None:
        """Files renamed away from the path that were never opened: generations that came and went
        between two looks (a logger that rotates every few milliseconds). The rename events can
        arrive after the look that found a newer file at the path, so they are taken in here."""
        known = {g.id for g in self._gens}
        newcomers = []
        for name, file_id in moves:
            found = (
                locate.stat_regular(name)
                if file_id is None
                else next(iter(locate.by_identity(self.path, [name], file_id)), None)
            )
            if found is None or found.id in known:
                continue
            if (opened := await self._open(found.path)) is None:
                continue
            fd, st = opened
            if (
                FileId.of(st) != found.id
                or self._shared.registry.was_read(found.id, found.path)
                or (
                    file_id is not None
                    and not self._renames.is_former(
                        found.id, files.birth_ns(f"/proc/self/fd/{fd}", st.st_ino)
                    )
                )
            ):
                # Replaced since, read already, or another file born since with the renamed file's
                # inode number (gone in between: gzipped, deleted), found by a listing by inode.
                os.close(fd)
                continue
            known.add(found.id)
            newcomers.append(self._generation(fd, found.id, 0))
            self._log.info("reading a rotated file that was missed", path=self.path, file=found.path)
        self._place(newcomers)

    def _place(self, newcomers: list[Generation]) -> None:
        """Queue generations that came and went between two looks, each in its place: the order of
        the renames that took them away (files found by --rotated names go after those)."""
        try:
            at_path: FileId | None = FileId.of(os.stat(self.path))
        except OSError:
            at_path = None

        def place(gen: Generation) -> tuple[float | None, int]:
            if gen.id == at_path:
                return renames.AT_PATH, 0
            if gen.rank is None:
                gen.rank = self._renames.rank(gen.id, gen.name())  # kept: it may be forgotten later
            try:
                return gen.rank, os.fstat(gen.fd).st_mtime_ns
            except OSError:
                return gen.rank, 0

        for gen in newcomers:
            started = bool(self._gens) and self._gens[0].started
            at = renames.insertion_point([place(g) for g in self._gens], started, place(gen))
            self._queue(gen, at)
            self.stats.rotations += 1

    async def _newer_generations(self, since_ns: int) -> list[Generation]:
        """Open the rotated generations written since ``since_ns`` that are not open yet, oldest first."""
        # A file this drain read to its end and closed (kept in the checkpoint, not retired: its
        # writer may not have moved on) is one of ours, never a newer file or a copy of one.
        known = {g.id for g in self._gens} | {at.id for at in self._lingering}
        opened: list[Generation] = []
        patterns = self._config.rotated_patterns
        for found in locate.newer_generations(self.path, patterns, since_ns, known, self._renames.names):
            if (result := await self._open(found.path)) is None:
                continue
            fd, st = result
            if FileId.of(st) != found.id or self._shared.registry.was_read(found.id, found.path):
                os.close(fd)  # replaced since it was listed, or one of ours already read to its end
                continue
            opened.append(self._generation(fd, found.id, 0))
            self._log.info("reading a rotated file that was missed", path=self.path, file=found.path)
        return opened

    async def _open_resume_steps(self, resume: Resume) -> None:
        self._start = None
        self.via_symlink = os.path.islink(self.path)  # polled: inotify sees the target's writes elsewhere
        for step in resume.steps:
            opened = await self._open(step.path)
            if opened is None:
                continue
            fd, st = opened
            if FileId.of(st) != step.id or any(g.id == step.id for g in self._gens):
                os.close(fd)
                continue
            if step.done:
                # Read to its end before the restart: known again, never read again.
                with contextlib.suppress(OSError):
                    self._shared.registry.retired(step.id, *locate.first_content(fd))
                    self._remember_done(
                        Snapshot(
                            step.id,
                            step.offset,
                            locate.window_before(fd, step.offset),
                            st.st_mtime_ns,
                            step.path,
                            done=True,
                        )
                    )
                os.close(fd)
                continue
            gen = self._generation(fd, step.id, step.offset)
            gen.from_path = step.path == self.path
            self._queue(gen)
            if step.path != self.path:
                self._log.info("resuming in rotated file", path=self.path, file=step.path)

    async def _open(self, path: str) -> tuple[int, os.stat_result] | None:
        try:
            root = None if self._config.symlinks_anywhere else self.root
            if root is not None and not files.inside(root, os.path.abspath(path)):
                root = os.path.dirname(os.path.abspath(path))  # a --rotated place the user named
            return files.open_regular(path, root)
        except FileNotFoundError:
            return None
        except files.Refused as refused:
            self.refused = self.refused or path == self.path
            self._warn("not following file", path, reason=str(refused))
            return None
        except OSError as exc:  # out of descriptors, I/O error: try again at the next change
            self._warn("cannot open file", path, reason=exc.strerror or str(exc))
            return None

    def _generation(self, fd: int, file_id: FileId, offset: int) -> Generation:
        gen = Generation.open_at(fd, file_id, offset, self._config.max_line_bytes)
        gen.grouper = self._grouper()
        return gen

    def _grouper(self) -> Grouper | None:
        if self._records is None:
            return None
        return Grouper(self._records, self._config.multiline_max_lines, self._config.multiline_max_bytes)

    async def _check_queued(self, gen: Generation) -> bool:
        """A queued file comes up: was it copytruncated while it waited? True if its copy was queued.

        Its first bytes as they were when queued identify it; a file queued while empty has
        none, so a copy made since then that does not start like the file now stands for
        what it lost.
        """
        if gen.head:
            if gen.intact():
                return False
            await self._truncated(gen)
            return True
        try:
            mtime = os.fstat(gen.fd).st_mtime_ns
            # What identifies it from here on is taken now, before the directory is listed: taken
            # after, it could be content written after a copytruncate whose copy the listing missed,
            # and that copy would never be looked for (model seed 135: held up by SIGSTOP in between,
            # the copy was then taken for a later generation and read after the lines written since).
            head_now = gen.first_content()
        except OSError:
            return False
        if mtime == gen.queued_ns:
            return False  # not even written since it was queued
        # Copies queued already as missed generations, behind this file only because their mtime
        # ties with its last write (one clock tick): what they hold was written here first, before
        # the truncation that emptied it, so they move ahead of it (registered already).
        moved = self._queued_copies(gen, mtime)
        if moved:
            # Only the rename's inotify event tells such a copy from a generation renamed away after
            # this one (created at the path once this one left it, last written in the same tick):
            # an event still in flight (in the kernel's queue, or in a batch) is taken in first.
            await asyncio.sleep(2 * self._config.batch_interval)
            moved = self._queued_copies(gen, mtime)
        found = await self._copies_since(gen, gen.queued_ns)  # the queued ones are not found again
        if found:
            # Likewise a file found under a rotated name: renamed away from the path after this one,
            # with its rename's event still in flight, it is a later generation, not a copy (model
            # seed 6: its lines were read before this file's late ones). It is placed by that rename.
            await asyncio.sleep(2 * self._config.batch_interval)
            former = [copy for copy in found if self._renames.is_former(copy.id, copy.birth_ns())]
            for copy in former:
                found.remove(copy)
                copy.is_copy = False
            self._place(former)
        gen.queued_ns = mtime  # what is found from here on was copied later
        # What it holds now identifies it from here on, as a file queued with lines is
        # identified: emptied again before it is read (copytruncated again while the copies
        # found now are read first), it is noticed, and a copy of that is looked for.
        gen.head_at, gen.head = head_now
        for copy in moved:
            self._gens.remove(copy)
        # Oldest first; the sort is stable: within one tick, the order they were found in stands.
        copies = sorted([*moved, *found], key=lambda copy: os.fstat(copy.fd).st_mtime_ns)
        for at, copy in enumerate(copies, start=self._gens.index(gen)):
            if copy in moved:
                self._gens.insert(at, copy)
            else:
                self._queue(copy, at)
        if copies:
            self.stats.truncations += 1
            self._log.info("file truncated; reading what it held from its copy", path=self.path)
        return bool(copies)

    async def _copies_since(self, gen: Generation, since_ns: int) -> list[Generation]:
        """Copies of ``gen`` made since ``since_ns`` that hold bytes it no longer has, oldest first.

        A copy that starts like the file does now is a copy of what is still there (a
        copytruncate caught between its copy and its truncate, or logrotate's ``copy``):
        reading it as well would print those lines twice.
        """
        copies = []
        for copy in await self._newer_generations(since_ns):
            if not self._holds_lost(gen, copy):
                copy.close()
                continue
            copy.is_copy = True
            copies.append(copy)
        return copies

    def _queued_copies(self, gen: Generation, mtime_ns: int) -> list[Generation]:
        """Files queued behind ``gen`` (queued while empty, written since) that are copies of what
        it held before it was truncated, oldest first; marked as copies.

        Queued as missed generations, they went behind ``gen`` by modification time, and a copy
        made within the clock tick of ``gen``'s last write ties with it. A copy cannot be newer
        than the write that followed the truncation after it, so only those modified between
        ``gen`` being queued and its last write qualify; the rest is what ``_copies_since`` asks.
        """
        try:
            at_path: FileId | None = FileId.of(os.stat(self.path))
        except OSError:
            at_path = None
        found = []
        for other in list(self._gens)[self._gens.index(gen) + 1 :]:
            if other.started or other.rank is not None or other.id == at_path:
                continue
            try:
                copied_ns = os.fstat(other.fd).st_mtime_ns
            except OSError:
                continue
            if gen.queued_ns <= copied_ns <= mtime_ns and self._holds_lost(gen, other):
                other.is_copy = True
                found.append(other)
        return found

    def _copy_of_queued(self, copy: Generation) -> bool:
        """Whether ``copy``, taken for a copy of what a file lost while it was still being written
        (empty when found: the copy's first bytes said nothing yet), turns out to start like another
        queued file did when it was queued, or like one does now and no longer than it is: a copy
        of that file's content, which that file reads itself, or finds from its first bytes or the
        bytes before its offset once they are gone (model seed 104: a copytruncate caught between
        cp's create and its write, read as the content in between, then again from the file)."""
        if not copy.is_copy or copy.head:
            return False
        try:
            at, head = copy.first_content()
            size = copy.size()
            if not head:
                return False  # still nothing in it (but NULs): see _being_written
            for g in self._gens:
                if g is copy:
                    continue
                if g.head and g.head_at == at and agrees(head, g.head):
                    return True
                at_now, head_now = g.first_content()
                if at_now == at and head_now.startswith(head) and size <= g.size():
                    return True
        except OSError:
            return False
        return False

    def _being_written(self, copy: Generation) -> float | None:
        """Seconds to wait before reading ``copy``, a copy found while it was empty, if it is still
        empty (or NULs only) and was created or written within ``rotate_wait``: cp may be writing it
        now. Read then, it would be read in part (retired as soon as read to its end), and whose
        content it is could not be told (``_copy_of_queued``); an empty copy older than that holds
        nothing (model seed 104: a copytruncate's copy read while cp wrote it, its lines printed twice).
        """
        if not copy.is_copy or copy.head:
            return None
        try:
            if copy.first_content()[1]:
                return None
            idle = _idle_for(copy)
        except OSError:
            return None
        wait = self._config.rotate_wait - idle
        return max(wait, 0.01) if wait > 0 else None

    def _holds_lost(self, gen: Generation, copy: Generation) -> bool:
        """Whether ``copy``, made since ``gen`` was queued, can hold bytes ``gen`` no longer has.

        A file renamed away from the path is a former generation, not a copy; a copy that starts
        like the file does now is a copy of what is still there (a copytruncate caught between
        its copy and its truncate, or logrotate's ``copy``): reading it as well would print those
        lines twice. Another queued file's first bytes, as they were when it was queued, say
        which copies are its own: that file finds them when its turn comes.
        """
        try:
            # Where and how the content starts, past a leading hole of NULs: a writer without O_APPEND
            # leaves one after each truncation, so every content of the file and every copy of one
            # starts with NULs, and only the bytes past them tell which content a copy holds.
            at_now, head_now = gen.first_content()
            size_now = gen.size()
            starts_so = (at_now, head_now[: len(copy.head)]) == (copy.head_at, copy.head)
            if copy.head and starts_so and copy.size() <= size_now:
                return False
        except OSError:
            return False
        others = [g for g in self._gens if g is not gen and g is not copy and g.head]
        theirs = bool(copy.head) and any(
            g.head_at == copy.head_at and agrees(copy.head, g.head) for g in others
        )
        born = copy.birth_ns()
        return not (self._renames.is_former(copy.id, born) or theirs or self._made_later(gen, copy, born))

    def _made_later(self, gen: Generation, copy: Generation, born: int | None) -> bool:
        """Whether ``copy`` was created after a file that came to the path once ``gen`` had left it.

        A copytruncate copies the file at the path: a copy of ``gen`` is made while ``gen`` is
        there, so one born after a later generation was (opened at the path, or renamed away from
        it) is a copy of that generation or a newer one (model seed 146: a deleted file's late
        line, read after the next file's copy, which had been taken for its own). Strictly after:
        within one clock tick the order cannot be told.
        """
        if born is None:
            return False
        with contextlib.suppress(OSError):
            # The file at the path now, if another: it came there once ``gen`` had left, whether it
            # was looked at yet or not (model seed 84: copies of the file that followed a deleted one).
            now = FileId.of(os.stat(self.path))
            now_born = files.birth_ns(self.path, now.ino) if now not in (gen.id, copy.id) else None
            if now_born is not None and born > now_born:
                return True
        for later in list(self._gens)[self._gens.index(gen) + 1 :] if gen in self._gens else []:
            if later is copy or later.is_copy:
                continue
            later_born = later.birth_ns()
            at_path = later.from_path or self._renames.is_former(later.id, later_born)
            if at_path and later_born is not None and born > later_born:
                return True
        return False

    async def _truncated(self, gen: Generation) -> None:
        """The file was cut short: finish what it held from its copy, if there is one."""
        self.stats.truncations += 1
        try:
            seen_ns: int | None = os.fstat(gen.fd).st_mtime_ns  # as it was when the truncation was seen
        except OSError:
            seen_ns = None
        # What identifies our content: the bytes before the read offset, or, if nothing was read
        # yet past a leading hole of NULs (all any content of the file may start with), the first
        # bytes past it as they were when this file was queued, where they were.
        if gen.offset > gen.head_at or not gen.head:
            mark, known = gen.offset, gen.window
        else:
            mark, known = gen.head_at + len(gen.head), gen.head
        copy = locate.find_copy(self.path, self._config.rotated_patterns, mark, known, gen.id)
        opened = await self._open(copy) if copy else None
        if opened is None and (held := self._queued_holding(gen, mark, known)) is not None:
            # Queued already (found as a missed generation) and gone from its name since (gzipped,
            # deleted): the copy is still read through the descriptor we hold.
            with contextlib.suppress(OSError):
                opened = os.dup(held.fd), os.fstat(held.fd)
        queued = self._queued_as(FileId.of(opened[1])) if opened is not None else None
        registry = self._shared.registry
        if opened is not None and queued is None and copy and registry.was_read(FileId.of(opened[1]), copy):
            # Read to its end and closed already: queued as the content this file held between two
            # truncations (found as a missed generation while this one still held it, or as the
            # rest of an earlier one), it holds nothing more; from this offset it would repeat lines.
            os.close(opened[0])
            gen.rewind(self._config.max_line_bytes)
            gen.grouper = self._grouper()
            gen.started = True
            return
        if opened is not None and queued is not None:
            # The copy is queued already, taken for a generation missed between two looks (it
            # appeared next to the file before the truncation was seen). Read from where this
            # file stopped, it is that rest: the copy from its first byte would repeat lines.
            if queued.started:
                os.close(opened[0])  # being read already, as the rest: nothing more to queue
                opened = None
                gen.rewind(self._config.max_line_bytes)
                gen.grouper = self._grouper()
                gen.started = True
                return
            self._drop(queued)
        if opened is not None:
            fd, st = opened
            rest = self._generation(fd, FileId.of(st), gen.offset)
            rest.framer, rest.grouper, rest.printed = gen.framer, gen.grouper, gen.printed
            rest.is_copy = rest.started = True
            at = self._gens.index(gen)
            self._queue(rest, at)
            self._log.info("file truncated; reading the rest from its copy", path=self.path, copy=copy)
            # Several copytruncates since we last looked: the copies made after this one
            # hold the generations in between, oldest first.
            for later, between in enumerate(await self._copies_since(gen, st.st_mtime_ns), start=at + 1):
                self._queue(between, later)
        else:
            # What was read of an unterminated line and everything not read yet is gone: the
            # part read is not a line and is not printed as one.
            lost = gen.framer.pending + max(0, gen.seen_size - gen.offset)
            if lost:
                self.stats.lost_bytes += lost
                self._log.warning(
                    "file truncated before all of it was printed; bytes lost", path=self.path, lost_bytes=lost
                )
            else:
                self._log.info("file truncated; reading it from the start", path=self.path)
            await self._end_records(gen, partial_line=False)  # its whole lines are still records
        gen.rewind(self._config.max_line_bytes)
        gen.grouper = self._grouper()
        gen.started = True
        if opened is None and seen_ns is not None:
            await self._copied_meanwhile(gen, seen_ns)

    async def _copied_meanwhile(self, gen: Generation, seen_ns: int) -> None:
        """Copies of what ``gen`` held after the truncation just seen, made before it started again
        (rewind takes its first bytes as they are then): read first, or their lines are lost.

        Between the look that saw the truncation and the rewind, logtail can be held up (SIGSTOP,
        a loaded machine) while the writer writes on and the file is copytruncated again (model
        seed 104: a copy of lines written while logtail was stopped). Only copies modified after
        ``seen_ns`` (strictly: one tied with it may be the copy the truncation itself made, of
        what was printed) that do not start like the file does now qualify, nor like it did at
        the rewind: that content is its own, read from it or, once gone, found from its head.
        """
        found = []
        for copy in await self._copies_since(gen, seen_ns):
            try:
                newer = os.fstat(copy.fd).st_mtime_ns > seen_ns
            except OSError:
                newer = False
            own = bool(gen.head) and copy.head_at == gen.head_at and agrees(copy.head, gen.head)
            if newer and not own:
                found.append(copy)
            else:
                copy.close()
        for at, copy in enumerate(found, start=self._gens.index(gen)):
            self._queue(copy, at)
        if found:
            self.stats.truncations += 1
            self._log.info("file truncated; reading what it held from its copy", path=self.path)

    def _wake_in(self, delay: float) -> None:
        if self._timer:
            self._timer.cancel()
        self._timer = asyncio.get_running_loop().call_later(delay, self._wake.set)

    def _warn(self, event: str, path: str, **kw: Any) -> None:
        self._shared.warnings.once(event, path, **kw)


# What a look at the path finds once the file being read was renamed away from it.
_LEFT_THE_PATH = (Change.REPLACED, Change.MISSING)


def _idle_for(gen: Generation) -> float:
    return time.time() - os.fstat(gen.fd).st_mtime
