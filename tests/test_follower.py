"""A follower driven in-process against scripted file changes in a temporary directory.

No subprocess and no change detection: each step changes real files, wakes the follower
the way an inotify event or a sweep would, and waits (with a deadline) for what must be
printed. The end-to-end tier covers the same behaviours through a real process.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from logtail import files, locate, logs
from logtail.config import Config, StreamSpec
from logtail.follower import Follower, Shared
from logtail.generation import Generation
from logtail.identity import FileId, Registry
from logtail.output import Stdout
from logtail.renames import Renames
from logtail.transfer import Printer

# Blocking file calls in these coroutines are the scripted changes themselves (local files, microseconds).
# ruff: noqa: ASYNC230, SIM115

pytestmark = pytest.mark.timeout(20)


@dataclass
class Run:
    follower: Follower
    log: Path
    out: Path

    def printed(self) -> list[str]:
        return self.out.read_text().splitlines()

    async def until(self, condition: Callable[[], bool], within: float = 5.0) -> None:
        """Wake the follower until ``condition()`` holds; fail at the deadline."""
        deadline = asyncio.get_running_loop().time() + within
        while not condition():
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError("the follower never got there")
            self.follower.wake()
            await asyncio.sleep(0.01)

    async def expect(self, lines: list[str], within: float = 5.0) -> None:
        """Wake the follower until exactly ``lines`` are printed; fail at the deadline."""
        deadline = asyncio.get_running_loop().time() + within
        while self.printed() != lines:
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"printed {self.printed()!r}, expected {lines!r}")
            self.follower.wake()
            await asyncio.sleep(0.01)


@asynccontextmanager
async def following(
    tmp_path: Path, known: Callable[[FileId], Awaitable[None]] | None = None, **options: object
) -> AsyncIterator[Run]:
    log = tmp_path / "app.log"
    out = tmp_path / "stdout"
    options = {"rotate_wait": 0.1, **options}
    config = Config(streams=(StreamSpec(str(log), None),), **options)  # type: ignore[arg-type]
    with open(out, "wb") as sink:
        shared = Shared(
            config, Printer(Stdout(sink.fileno()), None), Registry(), logs.Warnings(), known=known
        )
        follower = Follower(str(log), "app", shared, None, glob_member=False, root=str(tmp_path))
        task = asyncio.create_task(follower.run())
        try:
            yield Run(follower, log, out)
        finally:
            follower.drain()
            await asyncio.wait_for(task, 5)


async def holding(file_id: FileId, within: float = 5.0) -> None:
    """Wait until this process (the follower) has the file ``file_id`` open; fail at the deadline."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        for fd in os.listdir("/proc/self/fd"):
            try:
                if FileId.of(os.stat(f"/proc/self/fd/{fd}")) == file_id:
                    return
            except OSError:
                continue
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"the follower never opened {file_id}")
        await asyncio.sleep(0.01)


def write(path: Path, text: str, mode: str = "a") -> None:
    with open(path, mode) as handle:
        handle.write(text)


def lines(first: int, last: int) -> list[str]:
    return [f"line {n}" for n in range(first, last + 1)]


def text(first: int, last: int) -> str:
    return "".join(f"{line}\n" for line in lines(first, last))


def run_async(scenario: Callable[[Path], object]) -> Callable[[Path], None]:
    def test(tmp_path: Path) -> None:
        asyncio.run(scenario(tmp_path))  # type: ignore[arg-type]

    test.__doc__ = scenario.__doc__
    return test


@run_async
async def test_appends_are_printed_and_a_partial_line_waits_for_its_newline(tmp_path: Path) -> None:
    """Whole lines go out; an unterminated rest waits for its newline and then goes out whole."""
    write(tmp_path / "app.log", text(1, 3))
    async with following(tmp_path) as run:
        await run.expect(lines(1, 3))
        write(run.log, "line 4")
        run.follower.wake()
        await asyncio.sleep(0.1)
        assert run.printed() == lines(1, 3)
        write(run.log, "\n")
        await run.expect(lines(1, 4))


@run_async
async def test_rename_rotation_reads_late_writes_to_the_old_file_first(tmp_path: Path) -> None:
    """After a rename, lines still written to the old file come before the new file's lines."""
    log = tmp_path / "app.log"
    write(log, text(1, 2))
    async with following(tmp_path) as run:
        await run.expect(lines(1, 2))
        old = open(log, "a")  # the application's descriptor survives the rename
        os.rename(log, tmp_path / "app.log.1")
        write(log, "", "w")
        run.follower.wake()
        await asyncio.sleep(0.05)
        old.write(text(3, 4))
        old.close()
        write(log, text(5, 6))
        await run.expect(lines(1, 6))
        assert run.follower.stats.rotations == 1


@run_async
async def test_delete_and_recreate(tmp_path: Path) -> None:
    """A deleted file is read to its end before the new file at the path."""
    log = tmp_path / "app.log"
    write(log, text(1, 2))
    async with following(tmp_path) as run:
        await run.expect(lines(1, 2))
        old = open(log, "a")
        os.unlink(log)
        old.write(text(3, 3))
        old.close()
        write(log, text(4, 5))
        await run.expect(lines(1, 5))


@run_async
async def test_truncation_in_place_starts_again_from_the_first_byte(tmp_path: Path) -> None:
    """A file cut to zero and written again is read from its first byte."""
    log = tmp_path / "app.log"
    write(log, text(1, 3))
    async with following(tmp_path) as run:
        await run.expect(lines(1, 3))
        os.truncate(log, 0)
        run.follower.wake()
        await asyncio.sleep(0.05)
        write(log, text(4, 5))
        await run.expect(lines(1, 5))
        assert run.follower.stats.truncations == 1


@run_async
async def test_copytruncate_reads_the_unread_rest_from_the_copy(tmp_path: Path) -> None:
    """Lines written after the last read and before copytruncate are read from the copy."""
    log = tmp_path / "app.log"
    write(log, text(1, 2))
    async with following(tmp_path) as run:
        await run.expect(lines(1, 2))
        write(log, text(3, 4))  # not read yet: the follower is not woken
        shutil.copyfile(log, tmp_path / "app.log.1")
        os.truncate(log, 0)
        write(log, text(5, 5))
        await run.expect(lines(1, 5))


@run_async
async def test_drain_prints_everything_and_the_snapshot_is_the_end(tmp_path: Path) -> None:
    """A drain reads to the current end; the position a checkpoint would record is the file's size."""
    log = tmp_path / "app.log"
    write(log, text(1, 1000))
    async with following(tmp_path) as run:
        run.follower.drain()
        await run.expect(lines(1, 1000))
        (snapshot,) = run.follower.snapshot()
        assert snapshot.offset == log.stat().st_size


@run_async
async def test_a_copy_of_another_queued_file_is_not_taken_for_an_empty_ones_copy(tmp_path: Path) -> None:
    """Files queued while an old one is still read: one empty (written to since, so it looks for a
    copy of what it may have lost) and one with lines, copytruncated and renamed away. The copy
    starts like the second one did when queued: it is that file's copy, printed once, in its place
    (model seed 121: taken for the empty file's copy, then read again as the other's)."""
    log = tmp_path / "app.log"
    write(log, text(1, 2))
    async with following(tmp_path, rotate_wait=1.0) as run:
        await run.expect(lines(1, 2))
        os.rename(log, tmp_path / "app.log.1")
        write(log, "", "w")  # B: queued empty
        run.follower.wake()
        await asyncio.sleep(0.05)
        queued_b = os.stat(log).st_mtime_ns
        os.rename(log, tmp_path / "app.log.2")
        write(log, text(10, 11), "w")  # C: queued with its first lines
        run.follower.wake()
        await asyncio.sleep(0.05)
        second = 1_000_000_000
        os.utime(tmp_path / "app.log.2", ns=(queued_b, queued_b + second // 2))  # B written since
        shutil.copyfile(log, tmp_path / "app.log.3")  # C copytruncated...
        os.utime(tmp_path / "app.log.3", ns=(queued_b, queued_b + second))
        os.truncate(log, 0)
        write(log, text(12, 12))
        os.utime(log, ns=(queued_b, queued_b + 2 * second))
        os.rename(log, tmp_path / "app.log.4")  # ... and renamed away before the next look
        write(log, "", "w")
        await run.expect([*lines(1, 2), *lines(10, 12)])


@run_async
async def test_a_queued_copy_whose_mtime_ties_is_read_before_the_file_it_was_copied_from(
    tmp_path: Path,
) -> None:
    """A file queued while empty (an older one still read) is written, copytruncated, renamed away
    with a late line and replaced before the next look. The copy, found as a missed generation, ties
    in mtime with the renamed file's last write (one clock tick) and was queued behind it; what it
    holds was written there before the truncation, so it is read first (model seed 57: the late
    line printed before the copy's lines)."""
    log = tmp_path / "app.log"
    write(log, text(1, 2))
    async with following(tmp_path, rotate_wait=1.0) as run:
        await run.expect(lines(1, 2))
        os.rename(log, tmp_path / "app.log.1")
        run.follower.moved(str(tmp_path / "app.log.1"))
        write(log, "", "w")  # queued empty, behind app.log.1 until that one has been quiet a while
        run.follower.wake()
        await asyncio.sleep(0.05)
        write(log, text(3, 5))  # not read: app.log.1 is still read first
        shutil.copyfile(log, tmp_path / "app.log.2")  # copytruncate...
        os.truncate(log, 0)
        os.rename(log, tmp_path / "app.log.3")  # ... then a rename, as logrotate with two rules would
        run.follower.moved(str(tmp_path / "app.log.3"))
        write(tmp_path / "app.log.3", text(6, 6))  # the writer's late line, before it reopens
        write(log, "", "w")
        last = os.stat(tmp_path / "app.log.3").st_mtime_ns
        os.utime(tmp_path / "app.log.2", ns=(last, last))  # the copy made within the same tick
        await run.expect(lines(1, 6))


@run_async
async def test_a_generation_renamed_away_after_a_file_queued_empty_is_not_taken_for_its_copy(
    tmp_path: Path,
) -> None:
    """A file queued while empty is written and renamed away, and so is the next one, within one
    clock tick and before the next look; the second rename's event arrives only as the first file
    comes up. The second file, found as a missed generation, ties in mtime with the first: it is a
    generation of its own, read after it, not a copy of what the first one lost (model seed 47,
    with the tie taken for a copy: the second file's lines printed first)."""
    log = tmp_path / "app.log"
    write(log, text(1, 2))
    async with following(tmp_path, rotate_wait=0.1) as run:
        await run.expect(lines(1, 2))
        os.rename(log, tmp_path / "app.log.1")
        run.follower.moved(str(tmp_path / "app.log.1"))
        write(log, "", "w")  # queued empty, behind app.log.1 while nothing is written to it
        run.follower.wake()
        await asyncio.sleep(0.05)
        os.rename(log, tmp_path / "app.log.2")
        run.follower.moved(str(tmp_path / "app.log.2"))
        write(tmp_path / "app.log.2", text(3, 3))  # the writer's late line, before it reopens
        write(log, text(4, 4), "w")
        os.rename(log, tmp_path / "app.log.3")  # its event is late: reported only below
        write(tmp_path / "app.log.3", text(5, 5))
        write(log, "", "w")
        last = os.stat(tmp_path / "app.log.2").st_mtime_ns
        os.utime(tmp_path / "app.log.3", ns=(last, last))  # last written in the same tick
        os.utime(tmp_path / "app.log.1", ns=(last - 10**9, last - 10**9))  # quiet long enough: retired
        # The next look queues app.log.3 as a missed generation (its rename not reported yet), retires
        # app.log.1 and brings app.log.2 up, all in one turn; the event arrives just after.
        asyncio.get_running_loop().call_later(0.01, run.follower.moved, str(tmp_path / "app.log.3"))
        await run.expect(lines(1, 5))


@run_async
async def test_a_file_emptied_between_its_first_look_and_its_first_read_is_read_from_its_copy(
    tmp_path: Path,
) -> None:
    """A file queued while empty is written; when it comes up, the look finds its lines, and before
    the read (the checkpoint save that comes first, a throttled sidecar) it is copytruncated and
    then deleted and re-created. Its first bytes, as the look found them, show it was emptied: its
    lines are read from the copy (model seed 187: its lines were never printed, and the file sat
    unread while the next one stayed empty)."""
    log = tmp_path / "app.log"
    write(log, text(1, 2))
    second: dict[str, FileId] = {}

    async def rotate_before_the_read(file_id: FileId) -> None:
        if file_id == second.get("id"):
            second.clear()
            written = os.stat(log).st_mtime_ns
            shutil.copyfile(log, tmp_path / "app.log.1")  # copytruncate...
            os.utime(tmp_path / "app.log.1", ns=(written, written))
            os.truncate(log, 0)
            tick = 4_000_000  # the truncation a clock tick after the copy's last write
            os.utime(log, ns=(written + tick, written + tick))
            os.unlink(log)  # ... then delete and re-create
            write(log, "", "w")

    async with following(tmp_path, known=rotate_before_the_read, rotate_wait=0.1) as run:
        await run.expect(lines(1, 2))
        os.unlink(log)
        write(log, "", "w")  # queued empty behind the deleted file, until it is written
        second["id"] = FileId.of(os.stat(log))
        run.follower.wake()
        await holding(second["id"])
        write(log, text(3, 5))
        await run.expect(lines(1, 5))


@run_async
async def test_a_file_truncated_and_refilled_with_lines_that_end_alike_is_read_from_its_first_byte(
    tmp_path: Path,
) -> None:
    """Lines of one length that differ only in their first bytes (a sequence number, then padding):
    the file is truncated and refilled past the read offset, then deleted and re-created before
    the next look. The bytes before the offset end as they did; only the whole window shows the
    new content, which is read from its first byte (model seed 163: the new lines before the old
    offset were skipped)."""
    log = tmp_path / "app.log"

    def padded(first: int, last: int) -> str:
        return "".join(f"{n:04d} {'x' * 40}\n" for n in range(first, last + 1))

    write(log, padded(1, 5))
    async with following(tmp_path) as run:
        await run.expect(padded(1, 5).splitlines())
        with open(log, "r+") as handle:
            handle.truncate(0)
            handle.write(padded(6, 20))  # refilled past the offset before logtail reads again
        os.unlink(log)
        write(log, "", "w")
        await run.expect(padded(1, 20).splitlines())


@run_async
async def test_a_file_emptied_again_while_the_copy_found_for_it_is_read_is_read_from_its_next_copy(
    tmp_path: Path,
) -> None:
    """A file read to its end and truncated is written, copytruncated and written again before the
    next look, which finds the copy and reads it first. While that copy is read, the file is
    copytruncated again and the first half of a line written: what it held at the look is in the
    second copy, and is read from there (model seed 113: the file, with no first bytes kept, was
    taken for merely empty, its lines lost)."""
    log = tmp_path / "app.log"
    write(log, text(1, 2))
    first_copy: dict[str, FileId] = {}

    async def copytruncate_while_the_copy_is_read(file_id: FileId) -> None:
        if file_id == first_copy.get("id"):
            first_copy.clear()
            shutil.copyfile(log, tmp_path / "app.log.3")
            os.truncate(log, 0)
            write(log, "line ")  # the first half of the next line, read with the file's next read

    async with following(tmp_path, known=copytruncate_while_the_copy_is_read) as run:
        await run.expect(lines(1, 2))
        os.truncate(log, 0)
        await run.until(lambda: run.follower.stats.truncations == 1)  # read again from its first byte
        emptied = os.stat(log).st_mtime_ns
        write(log, text(3, 4))
        shutil.copyfile(log, tmp_path / "app.log.2")
        os.truncate(log, 0)
        write(log, text(5, 6))
        tick = 4_000_000  # one clock tick between each step and the next
        os.utime(tmp_path / "app.log.2", ns=(emptied + tick, emptied + tick))
        os.utime(log, ns=(emptied + 2 * tick, emptied + 2 * tick))
        first_copy["id"] = FileId.of(os.stat(tmp_path / "app.log.2"))
        await run.expect(lines(1, 6))
        write(log, "7\n")
        await run.expect(lines(1, 7))


def padded(n: int) -> bytes:
    """A line long enough that a few of them fill more than the bytes kept to recognise a file."""
    return f"line {n} {'x' * 40}\n".encode()


def padded_lines(first: int, last: int) -> list[str]:
    return [padded(n).decode().rstrip("\n") for n in range(first, last + 1)]


@run_async
async def test_a_queued_file_starting_with_a_nul_hole_is_told_from_its_next_truncation(
    tmp_path: Path,
) -> None:
    """A writer without O_APPEND writes on at its old offset after a truncation: the file starts
    with a hole of NUL bytes, and so does every later content after the next truncation. Queued
    behind an older generation, such a file is copytruncated before its turn: its first bytes past
    the hole tell the new content from the old, so the copy is read (model seed 104: the NULs alone
    were taken as the file's first bytes, the truncation went unnoticed and the copy's lines were lost)."""
    log = tmp_path / "app.log"
    write(log, text(1, 2))
    async with following(tmp_path, rotate_wait=1.0) as run:
        await run.expect(lines(1, 2))
        os.rename(log, tmp_path / "app.log.1")
        write(tmp_path / "app.log.1", text(3, 3))  # a late line: app.log.1 is read a while yet
        writer = os.open(log, os.O_WRONLY | os.O_CREAT, 0o644)  # no O_APPEND
        try:
            os.write(writer, b"".join(padded(n) for n in range(10, 20)))
            os.truncate(log, 0)
            os.write(writer, padded(20))  # after a hole of 500 NUL bytes
            await run.expect([*lines(1, 3)])  # app.log queued behind app.log.1, not read yet
            shutil.copyfile(log, tmp_path / "app.log.2")  # copytruncate while it waits
            os.truncate(log, 0)
            os.write(writer, padded(21))  # after a hole of 550 NUL bytes
        finally:
            os.close(writer)
        await run.expect([*lines(1, 3), *padded_lines(20, 21)])


@run_async
async def test_a_copy_of_a_file_starting_with_a_nul_hole_is_told_from_what_it_holds_now(
    tmp_path: Path,
) -> None:
    """Copytruncated twice before the next look, by a writer without O_APPEND: the first copy is
    the rest of what was read, the second holds the content in between. The file now starts with
    a longer hole than that copy: they both start with NULs, but not with the same bytes past them,
    so the second copy is read too (with the NULs taken as first bytes: its line was lost)."""
    log = tmp_path / "app.log"
    writer = os.open(log, os.O_WRONLY | os.O_CREAT, 0o644)  # no O_APPEND
    try:
        os.write(writer, b"".join(padded(n) for n in range(1, 11)))
        async with following(tmp_path) as run:
            await run.expect(padded_lines(1, 10))
            os.truncate(log, 0)
            os.write(writer, padded(11))  # after a hole of 500 NUL bytes
            await run.expect(padded_lines(1, 11))
            shutil.copyfile(log, tmp_path / "app.log.1")  # the rest of what was read: nothing
            os.truncate(log, 0)
            os.write(writer, padded(12))  # after a hole of 550 NUL bytes
            shutil.copyfile(log, tmp_path / "app.log.2")  # line 12, not read yet
            os.truncate(log, 0)
            os.write(writer, padded(13))  # after a hole of 600 NUL bytes
            await run.expect(padded_lines(1, 13))
    finally:
        os.close(writer)


def test_a_file_with_the_inode_number_of_a_renamed_one_but_born_later_is_no_former_generation(
    tmp_path: Path,
) -> None:
    """A file renamed away from the path and then gzipped frees its inode number, which a copy made
    later can get: born later, that copy is another file, not the former generation (model seed 104:
    a copytruncate's copy taken for one and its lines lost)."""
    renamed = tmp_path / "app.log.1"
    write(renamed, text(1, 1))
    file_id = FileId.of(os.stat(renamed))
    born = files.birth_ns(str(renamed), file_id.ino)
    if born is None:
        pytest.skip("no birth times here")
    moves = Renames()
    moves.moved(str(renamed))
    assert moves.is_former(file_id, born)
    assert moves.is_former(file_id, None)  # nothing to tell them apart by: as before
    assert not moves.is_former(file_id, born + 1)


@run_async
async def test_a_copy_found_before_cp_wrote_it_is_not_read_as_well_as_the_file_it_copies(
    tmp_path: Path,
) -> None:
    """A truncation is seen while the next copytruncate is under way: its copy (app.log.2) exists
    but cp has not written it yet, so its first bytes say nothing when it is found and it is queued
    as the content in between. When its turn comes it starts like the file did when it started
    again: it is a copy of what that file still reads itself, not read twice (model seed 104)."""
    log = tmp_path / "app.log"
    caught = tmp_path / "app.log.2"
    writer = os.open(log, os.O_WRONLY | os.O_CREAT, 0o644)  # no O_APPEND
    open_at = Generation.open_at.__func__  # type: ignore[attr-defined]

    def open_then_cp_writes(cls: type[Generation], fd: int, *args: object) -> Generation:
        gen = open_at(cls, fd, *args)
        if caught.exists() and os.fstat(fd).st_ino == os.stat(caught).st_ino and not os.fstat(fd).st_size:
            shutil.copyfile(log, caught)  # cp writes the copy only now, after it was looked at
        return gen

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Generation, "open_at", classmethod(open_then_cp_writes))
        await _copytruncates_with_a_copy_caught_empty(log, caught, writer)


async def _copytruncates_with_a_copy_caught_empty(log: Path, caught: Path, writer: int) -> None:
    tmp_path = log.parent
    try:
        os.write(writer, b"".join(padded(n) for n in range(1, 11)))
        async with following(tmp_path) as run:
            await run.expect(padded_lines(1, 10))
            os.truncate(log, 0)
            os.write(writer, padded(11))
            await run.expect(padded_lines(1, 11))
            shutil.copyfile(log, tmp_path / "app.log.1")  # copytruncate: the rest, nothing unread
            os.truncate(log, 0)
            os.write(writer, padded(12))
            write(caught, "", "w")  # the next copytruncate's cp has created its copy
            await run.expect(padded_lines(1, 12))
            os.truncate(log, 0)  # ... and truncates
            os.write(writer, padded(13))
            await run.expect(padded_lines(1, 13))
    finally:
        os.close(writer)


@run_async
async def test_copytruncated_again_while_the_follower_is_held_up_in_a_truncation(tmp_path: Path) -> None:
    """The follower sees a truncation and is held up (SIGSTOP, a loaded machine) before it starts
    the file again: meanwhile the writer writes on and the file is copytruncated once more. The copy
    holds what the file had after the truncation seen, and it is read before the file (model seed
    104: the file's first bytes taken only after that, the copy was not looked for, its line lost)."""
    log = tmp_path / "app.log"
    writer = os.open(log, os.O_WRONLY | os.O_CREAT, 0o644)  # no O_APPEND
    find_copy = locate.find_copy
    held_up = []

    def held_up_in_the_truncation(*args: object, **kwargs: object) -> str | None:
        if not held_up:
            held_up.append(True)
            time.sleep(0.02)  # the follower stopped: time goes by for the others
            os.write(writer, padded(11))
            shutil.copyfile(log, tmp_path / "app.log.1")
            os.truncate(log, 0)
            os.write(writer, padded(12))
        return find_copy(*args, **kwargs)  # type: ignore[arg-type]

    try:
        os.write(writer, b"".join(padded(n) for n in range(1, 11)))
        async with following(tmp_path) as run:
            await run.expect(padded_lines(1, 10))
            with pytest.MonkeyPatch.context() as patch:
                patch.setattr(locate, "find_copy", held_up_in_the_truncation)
                os.truncate(log, 0)
                await run.expect(padded_lines(1, 12))
    finally:
        os.close(writer)


@run_async
async def test_a_file_born_with_a_renamed_files_inode_number_is_not_taken_for_it(tmp_path: Path) -> None:
    """A file renamed away before logtail looked is gzipped (gone), and another file is created with
    its inode number (ext4 gives a freed number to the next file) before the rename's event is taken
    in. Found by that number, it is born later than the renamed file: another file, not read as a
    generation (model seed 130: another followed path's symlink target printed in this stream)."""
    log = tmp_path / "app.log"
    write(log, text(1, 2))
    async with following(tmp_path, rotate_wait=0.1) as run:
        await run.expect(lines(1, 2))
        os.rename(log, tmp_path / "app.log.4")
        run.follower.moved(str(tmp_path / "app.log.4"))
        write(log, text(3, 3), "w")
        os.rename(log, tmp_path / "app.log.5")
        run.follower.moved(str(tmp_path / "app.log.5"))  # reported, not taken in yet
        write(log, "", "w")
        renamed = os.stat(tmp_path / "app.log.5").st_ino
        if files.birth_ns(str(tmp_path / "app.log.5"), renamed) is None:
            pytest.skip("no birth time on this file system")
        os.unlink(tmp_path / "app.log.5")  # gzipped: line 3 is gone
        # A clock tick later, so the next file is born at another time; not awaited: the follower
        # must not take the rename in before the number is reused.
        time.sleep(0.01)  # noqa: ASYNC251
        other = tmp_path / "app-7.log"
        write(other, "not app.log's\n", "w")
        if os.stat(other).st_ino != renamed:
            pytest.skip("the file system did not reuse the inode number")
        write(log, text(4, 4))
        await run.expect([*lines(1, 2), *lines(4, 4)])


@run_async
async def test_an_empty_file_filled_copytruncated_and_renamed_unseen_reads_its_copy_first(
    tmp_path: Path,
) -> None:
    """The file at the path is empty and nothing of it was read when logtail is held up (SIGSTOP, a
    CPU limit). Meanwhile lines 1-20 are written, copytruncated into app.log.1, the file is renamed
    to app.log.2 and the writer writes lines 21-22 there before it reopens the path. The copy holds
    what the renamed file had before its new lines: read first, or 21-22 go out ahead of 1-20
    (model seed 135)."""
    log = tmp_path / "app.log"
    write(log, "", "w")
    writer = os.open(log, os.O_WRONLY | os.O_APPEND)
    try:
        async with following(tmp_path) as run:
            await holding(FileId.of(os.stat(log)))
            await run.until(lambda: bool(run.follower.snapshot()))
            os.write(writer, text(1, 20).encode())
            shutil.copyfile(log, tmp_path / "app.log.1")
            os.truncate(log, 0)
            os.rename(log, tmp_path / "app.log.2")
            run.follower.moved(str(tmp_path / "app.log.2"))
            os.write(writer, text(21, 22).encode())
            write(log, "", "w")  # the writer reopens the path
            await run.expect(lines(1, 22))
    finally:
        os.close(writer)


@run_async
async def test_a_generation_renamed_away_after_an_empty_file_being_read_is_not_taken_for_its_copy(
    tmp_path: Path,
) -> None:
    """As above, with the empty file the one being read: it is renamed away with a late line, the
    next file is written and renamed away too, and that rename's event arrives only just after the
    look that finds it. It is a generation of its own, read after the first, not a copy of what the
    first lost (the check for a copytruncate of an empty file made for model seed 135)."""
    log = tmp_path / "app.log"
    write(log, "", "w")
    async with following(tmp_path, rotate_wait=0.1) as run:
        await holding(FileId.of(os.stat(log)))
        await run.until(lambda: bool(run.follower.snapshot()))
        os.rename(log, tmp_path / "app.log.1")
        run.follower.moved(str(tmp_path / "app.log.1"))
        write(tmp_path / "app.log.1", text(1, 1))  # the writer's late line, before it reopens
        write(log, text(2, 2), "w")
        os.rename(log, tmp_path / "app.log.2")  # its event is late: reported only below
        write(tmp_path / "app.log.2", text(3, 3))
        write(log, "", "w")
        asyncio.get_running_loop().call_later(0.01, run.follower.moved, str(tmp_path / "app.log.2"))
        await run.expect(lines(1, 3))
