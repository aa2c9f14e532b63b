"""The inotify source: its parser on synthetic buffers, and the watcher against real directories."""

from __future__ import annotations

import asyncio
import ctypes
import errno
import os
import struct
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from logtail import watch
from logtail.watch import (
    IN_CREATE,
    IN_DELETE,
    IN_DELETE_SELF,
    IN_IGNORED,
    IN_ISDIR,
    IN_MODIFY,
    IN_MOVE_SELF,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    DirectoryWatcher,
    Event,
    parse,
)


def raw(wd: int, mask: int, cookie: int = 0, name: bytes = b"", terminated: bool = True) -> bytes:
    """One event as the kernel lays it out: header, then the name NUL-terminated and padded to 16 bytes."""
    padded = name + b"\0" if name and terminated else name
    padded += b"\0" * (-len(padded) % 16)
    return struct.pack("iIII", wd, mask, cookie, len(padded)) + padded


DIRS = {1: "/logs", 2: "/other"}


@pytest.mark.parametrize(
    ("buffer", "events"),
    [
        pytest.param(b"", [], id="empty"),
        pytest.param(
            raw(1, IN_MODIFY, name=b"app.log"), [Event("/logs", "app.log", IN_MODIFY, 0)], id="modify"
        ),
        pytest.param(
            raw(1, IN_CREATE, name=b"x" * 16, terminated=False),
            [Event("/logs", "x" * 16, IN_CREATE, 0)],
            id="no-terminator",
        ),
        pytest.param(
            raw(1, IN_MOVED_FROM, 7, b"app.log") + raw(2, IN_MOVED_TO, 7, b"app.log.1"),
            [Event("/logs", "app.log", IN_MOVED_FROM, 7), Event("/other", "app.log.1", IN_MOVED_TO, 7)],
            id="rename-pair-in-order",
        ),
        pytest.param(
            raw(1, IN_DELETE_SELF) + raw(1, IN_IGNORED),
            [Event("/logs", None, IN_DELETE_SELF, 0), Event("/logs", None, IN_IGNORED, 0)],
            id="directory-itself",
        ),
        pytest.param(raw(-1, IN_Q_OVERFLOW), [Event(None, None, IN_Q_OVERFLOW, 0)], id="overflow"),
        pytest.param(
            raw(9, IN_MODIFY, name=b"gone") + raw(2, IN_CREATE | IN_ISDIR, name=b"sub"),
            [Event("/other", "sub", IN_CREATE | IN_ISDIR, 0)],
            id="unknown-watch-left-out",
        ),
        pytest.param(
            raw(1, IN_CREATE, name=b"caf\xe9.log"),
            [Event("/logs", "caf\udce9.log", IN_CREATE, 0)],
            id="not-utf8",
        ),
        pytest.param(
            raw(1, IN_MODIFY, name=b"a") + b"\x01\x00", [Event("/logs", "a", IN_MODIFY, 0)], id="torn-tail"
        ),
    ],
)
def test_parse(buffer: bytes, events: list[Event]) -> None:
    """The parser turns a read's bytes into events in the kernel's order, names decoded like os.fsdecode."""
    assert parse(buffer, DIRS) == events


class Recorder:
    """A watcher running in the test's event loop, with every batch it delivered and when."""

    def __init__(self, coalesce: float = watch.COALESCE) -> None:
        self.batches: list[tuple[float, list[Event]]] = []
        self.watcher = DirectoryWatcher(
            lambda events: self.batches.append((time.monotonic(), events)), coalesce
        )
        self.task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.watcher.run())

    @property
    def events(self) -> list[Event]:
        return [event for _, batch in self.batches for event in batch]

    async def wait(self, predicate: Callable[[], object], what: str) -> None:
        deadline = time.monotonic() + 5.0
        while not predicate():
            if self.task is not None and self.task.done():
                self.task.result()
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after 5 s waiting for {what}; got {self.events}")
            await asyncio.sleep(0.001)

    async def wait_for_event(self, directory: str, name: str | None, mask: int) -> Event:
        def found() -> Event | None:
            return next(
                (e for e in self.events if (e.directory, e.name) == (directory, name) and e.mask & mask), None
            )

        await self.wait(found, f"{directory}/{name or ''} with mask {mask:#x}")
        event = found()
        assert event is not None
        return event

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await self.task
        self.watcher.close()


def run(body: Callable[[Recorder], Coroutine[Any, Any, None]], coalesce: float = watch.COALESCE) -> None:
    """Run a test body in a fresh event loop with a Recorder, stopping it afterwards."""

    async def main() -> None:
        recorder = Recorder(coalesce)
        try:
            await body(recorder)
        finally:
            await recorder.stop()

    asyncio.run(main())


@pytest.mark.timeout(10)
def test_create_write_delete(tmp_path: Path) -> None:
    """Creating, writing and deleting a file are reported with the watched path and the file's name."""
    directory = str(tmp_path)

    async def body(rec: Recorder) -> None:
        assert rec.watcher.watch(directory)
        assert not rec.watcher.watch(directory)  # already watched
        assert rec.watcher.watching(directory)
        rec.start()
        path = tmp_path / "app.log"
        with path.open("ab") as f:
            await rec.wait_for_event(directory, "app.log", IN_CREATE)
            f.write(b"line\n")
            f.flush()
            await rec.wait_for_event(directory, "app.log", IN_MODIFY)
        path.unlink()
        await rec.wait_for_event(directory, "app.log", IN_DELETE)

    run(body)


@pytest.mark.timeout(10)
def test_writes_into_a_deleted_file_are_reported(tmp_path: Path) -> None:
    """A file deleted while its writer keeps it open still reports writes (no IN_EXCL_UNLINK): its reader
    reads it to its end after a delete-and-recreate rotation."""
    directory = str(tmp_path)

    async def body(rec: Recorder) -> None:
        rec.watcher.watch(directory)
        rec.start()
        with (tmp_path / "app.log").open("ab", buffering=0) as f:
            (tmp_path / "app.log").unlink()
            await rec.wait_for_event(directory, "app.log", IN_DELETE)
            rec.batches.clear()
            f.write(b"after the delete\n")
            await rec.wait_for_event(directory, "app.log", IN_MODIFY)

    run(body)


@pytest.mark.timeout(10)
def test_missing_directory_is_not_watched(tmp_path: Path) -> None:
    """watch() of a directory that does not exist (or is a file) says False and does not raise."""

    async def body(rec: Recorder) -> None:
        assert not rec.watcher.watch(str(tmp_path / "missing"))
        (tmp_path / "file").write_bytes(b"")
        assert not rec.watcher.watch(str(tmp_path / "file"))
        assert not rec.watcher.watching(str(tmp_path / "missing"))

    run(body)


@pytest.mark.timeout(10)
def test_rename_pairs_share_a_cookie(tmp_path: Path) -> None:
    """A rename within and across watched directories gives MOVED_FROM then MOVED_TO with one cookie."""
    logs, old = tmp_path / "logs", tmp_path / "old"
    logs.mkdir()
    old.mkdir()
    (logs / "app.log").write_bytes(b"a\n")

    async def body(rec: Recorder) -> None:
        assert rec.watcher.watch(str(logs))
        assert rec.watcher.watch(str(old))
        rec.start()
        os.rename(logs / "app.log", logs / "app.log.1")
        os.rename(logs / "app.log.1", old / "app.log.1")
        second = await rec.wait_for_event(str(old), "app.log.1", IN_MOVED_TO)
        moves = [e for e in rec.events if e.mask & (IN_MOVED_FROM | IN_MOVED_TO)]
        assert [(e.directory, e.name, e.mask) for e in moves] == [
            (str(logs), "app.log", IN_MOVED_FROM),
            (str(logs), "app.log.1", IN_MOVED_TO),
            (str(logs), "app.log.1", IN_MOVED_FROM),
            (str(old), "app.log.1", IN_MOVED_TO),
        ]
        assert moves[0].cookie == moves[1].cookie != 0
        assert moves[2].cookie == second.cookie != 0
        assert moves[0].cookie != moves[2].cookie

    run(body)


@pytest.mark.timeout(10)
def test_removed_directory_can_be_watched_again(tmp_path: Path) -> None:
    """A deleted directory stops being watched (DELETE_SELF, IGNORED); watch() adds it again when back."""
    directory = tmp_path / "logs"
    directory.mkdir()
    path = str(directory)

    async def body(rec: Recorder) -> None:
        assert rec.watcher.watch(path)
        rec.start()
        directory.rmdir()
        await rec.wait_for_event(path, None, IN_DELETE_SELF)
        await rec.wait_for_event(path, None, IN_IGNORED)
        assert not rec.watcher.watching(path)
        directory.mkdir()
        assert rec.watcher.watch(path)
        rec.batches.clear()
        (directory / "new.log").write_bytes(b"x\n")
        await rec.wait_for_event(path, "new.log", IN_CREATE)

    run(body)


@pytest.mark.timeout(10)
def test_moved_directory_is_no_longer_watched(tmp_path: Path) -> None:
    """A directory moved away is dropped: its later events are not reported under its old path."""
    directory, elsewhere = tmp_path / "logs", tmp_path / "moved"
    directory.mkdir()
    path = str(directory)

    async def body(rec: Recorder) -> None:
        assert rec.watcher.watch(path)
        rec.start()
        directory.rename(elsewhere)
        await rec.wait_for_event(path, None, IN_MOVE_SELF)
        assert not rec.watcher.watching(path)
        (elsewhere / "late.log").write_bytes(b"x\n")
        directory.mkdir()
        assert rec.watcher.watch(path)
        (directory / "marker").write_bytes(b"")
        await rec.wait_for_event(path, "marker", IN_CREATE)
        assert not [e for e in rec.events if e.name == "late.log"]

    run(body)


@pytest.mark.timeout(10)
def test_same_directory_under_two_paths(tmp_path: Path) -> None:
    """A directory watched through a symlink too gets its events under both paths."""
    real, link = tmp_path / "real", tmp_path / "link"
    real.mkdir()
    link.symlink_to(real)

    async def body(rec: Recorder) -> None:
        assert rec.watcher.watch(str(real))
        assert rec.watcher.watch(str(link))
        rec.start()
        (real / "app.log").write_bytes(b"x\n")
        await rec.wait_for_event(str(real), "app.log", IN_CREATE)
        await rec.wait_for_event(str(link), "app.log", IN_CREATE)
        real.rename(tmp_path / "gone")
        await rec.wait(lambda: not rec.watcher.watching(str(link)), "both paths dropped")
        assert not rec.watcher.watching(str(real))

    run(body)


@pytest.mark.timeout(10)
def test_burst_is_coalesced(tmp_path: Path) -> None:
    """A writer appending as fast as it can costs at most about one batch per pause, not one per write."""
    directory = str(tmp_path)
    coalesce = 0.02

    async def body(rec: Recorder) -> None:
        rec.watcher.watch(directory)
        rec.start()
        writes = 0
        with (tmp_path / "app.log").open("ab", buffering=0) as f:
            await rec.wait_for_event(directory, "app.log", IN_CREATE)
            began = time.monotonic()
            while time.monotonic() - began < 0.3:
                f.write(b"a line\n")
                writes += 1
                if writes % 50 == 0:
                    await asyncio.sleep(0)  # let the loop deliver, as a busy loop would
        elapsed = time.monotonic() - began
        (tmp_path / "done").touch()  # a distinct event after the burst: everything before it is in
        await rec.wait_for_event(directory, "done", IN_CREATE)
        modifies = [e for e in rec.events if e.mask & IN_MODIFY]
        assert writes > 1000
        # identical consecutive events were merged by the kernel while the queue was not read
        assert len(modifies) < writes / 10
        assert len(rec.batches) <= elapsed / coalesce + 3

    run(body, coalesce=coalesce)


@pytest.mark.timeout(10)
def test_first_event_after_quiet_is_not_held_back(tmp_path: Path) -> None:
    """Writes after a quiet spell are delivered at once; once they come faster than the pause, they wait."""
    directory = str(tmp_path)
    coalesce = 0.5
    (tmp_path / "app.log").write_bytes(b"")

    async def body(rec: Recorder) -> None:
        rec.watcher.watch(directory)
        rec.start()

        async def write_and_wait(what: str) -> tuple[float, float]:
            count = len(rec.batches)
            written = time.monotonic()
            with (tmp_path / "app.log").open("ab") as f:
                f.write(what.encode() + b"\n")
            await rec.wait(lambda: len(rec.batches) > count, f"the batch with {what}")
            return written, rec.batches[count][0]

        written, delivered = await write_and_wait("first")
        assert delivered - written < coalesce / 3
        await asyncio.sleep(coalesce * 1.2)  # quiet: longer than the pause
        written, delivered = await write_and_wait("after-quiet")
        assert delivered - written < coalesce / 3
        # a second batch soon after: delivered at once too, and it starts a pause
        written, second = await write_and_wait("second")
        assert second - written < coalesce / 3
        _, third = await write_and_wait("during-pause")
        assert third - second >= coalesce * 0.9

    run(body, coalesce=coalesce)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("change", ["create", "rename", "delete"])
def test_anything_but_a_write_ends_a_pause_at_once(tmp_path: Path, change: str) -> None:
    """A file created, renamed or deleted during a pause is delivered at once, with the writes before it
    in order: a rotation is never left waiting for the pause's end."""
    directory = str(tmp_path)
    coalesce = 2.0
    log = tmp_path / "app.log"
    log.write_bytes(b"")

    async def body(rec: Recorder) -> None:
        rec.watcher.watch(directory)
        rec.start()
        for n in range(2):  # two batches close together: the second starts a pause
            count = len(rec.batches)
            with log.open("ab") as f:
                f.write(b"line\n")
            await rec.wait(lambda: len(rec.batches) > count, f"write {n}")  # noqa: B023
        count = len(rec.batches)
        with log.open("ab") as f:
            f.write(b"during the pause\n")
        changed = time.monotonic()
        if change == "create":
            (tmp_path / "new.log").write_bytes(b"")
        elif change == "rename":
            log.rename(tmp_path / "app.log.1")
        else:
            log.unlink()
        await rec.wait(lambda: len(rec.batches) > count, f"the batch with the {change}")
        delivered, events = rec.batches[count]
        assert delivered - changed < coalesce / 4
        masks = [e.mask for e in events if e.name in ("app.log", "new.log")]
        assert masks[0] & IN_MODIFY, events  # the write before it comes first
        assert any(m & (IN_CREATE | IN_MOVED_FROM | IN_DELETE) for m in masks[1:]), events

    run(body, coalesce=coalesce)


@pytest.mark.timeout(20)
def test_overflow_is_reported(tmp_path: Path) -> None:
    """When more events are queued than the kernel keeps, an overflow event (no directory) says so."""
    limit = int(Path("/proc/sys/fs/inotify/max_queued_events").read_text())
    if limit > 40_000:
        pytest.skip(f"max_queued_events is {limit}: too many files to create to overflow it")

    async def body(rec: Recorder) -> None:
        rec.watcher.watch(str(tmp_path))
        # Not read yet: every creation queues an IN_CREATE of its own name, never merged.
        for i in range(limit + 1):
            os.close(os.open(tmp_path / f"{i}", os.O_CREAT | os.O_WRONLY))
        rec.start()
        await rec.wait(lambda: any(e.directory is None for e in rec.events), "the overflow event")
        overflow = next(e for e in rec.events if e.directory is None)
        assert overflow == Event(None, None, IN_Q_OVERFLOW, 0)

    run(body)


@pytest.mark.timeout(10)
def test_callback_failure_ends_run(tmp_path: Path) -> None:
    """An exception in the callback ends run() with it, so the app can report it."""

    def fail(events: list[Event]) -> None:
        raise RuntimeError("consumer bug")

    async def main() -> None:
        watcher = DirectoryWatcher(fail)
        try:
            watcher.watch(str(tmp_path))
            task = asyncio.create_task(watcher.run())
            (tmp_path / "x").write_bytes(b"")
            with pytest.raises(RuntimeError, match="consumer bug"):
                await asyncio.wait_for(task, 5)
        finally:
            watcher.close()

    asyncio.run(main())


def test_unavailable_inotify_raises_oserror(monkeypatch: pytest.MonkeyPatch) -> None:
    """When the kernel refuses an inotify instance (EMFILE: the per-user limit), the constructor raises."""

    def refuse(flags: int) -> int:
        ctypes.set_errno(errno.EMFILE)
        return -1

    original = watch._Libc.__init__

    def refusing(self: watch._Libc) -> None:
        original(self)
        self.init1 = refuse  # type: ignore[assignment]

    monkeypatch.setattr(watch._Libc, "__init__", refusing)
    with pytest.raises(OSError, match="inotify_init1") as raised:
        DirectoryWatcher(lambda events: None)
    assert raised.value.errno == errno.EMFILE


def test_batch_interval_default_is_the_measured_pause() -> None:
    """--batch-interval's default is the pause whose measurements watch.py gives."""
    from logtail.config import Config

    assert Config.batch_interval == watch.COALESCE


@pytest.mark.timeout(10)
def test_without_a_second_instance_pauses_end_on_their_timer(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where the per-user limit of inotify instances leaves room for one, the watcher still works: every
    event arrives, a rename during a pause at the pause's end."""
    made: list[int] = []
    real = watch._Libc.__init__

    def limited(self: watch._Libc) -> None:
        real(self)
        init1 = self.init1

        def init1_once(flags: int) -> int:
            made.append(flags)
            return init1(flags) if len(made) == 1 else -1  # EMFILE for the second

        self.init1 = init1_once  # type: ignore[method-assign]

    monkeypatch.setattr(watch._Libc, "__init__", limited)
    directory = str(tmp_path)
    log = tmp_path / "app.log"
    log.write_bytes(b"")

    async def body(rec: Recorder) -> None:
        rec.watcher.watch(directory)
        rec.start()
        for n in range(2):
            count = len(rec.batches)
            with log.open("ab") as f:
                f.write(b"line\n")
            await rec.wait(lambda: len(rec.batches) > count, f"write {n}")  # noqa: B023
        count = len(rec.batches)
        log.rename(tmp_path / "app.log.1")
        await rec.wait(lambda: len(rec.batches) > count, "the batch with the rename")
        assert any(e.mask & IN_MOVED_FROM for e in rec.batches[count][1])
        assert len(made) == 2

    run(body, coalesce=0.3)
