"""Everything that reaches stdout: formatting of line blocks and the one writer of fd 1."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import json
import os
import queue
import select
import stat
import threading
from collections.abc import Callable, Iterable

from logtail.config import Format
from logtail.errors import StdoutClosed
from logtail.multiline import Records, messages

Render = Callable[[bytes], bytes]


def renderer(fmt: Format, prefix: str | None, name: str, path: str) -> Render:
    """How a block of complete lines from one stream is turned into output bytes.

    Raw output without a prefix is the file's bytes, untouched. The prefix is applied to a
    whole block with one ``bytes.replace``; JSON needs a decode per line and is slower.
    """
    if fmt is Format.JSON:
        return lambda block: _to_json(block, name, path)
    if not prefix:
        return _identity
    head = prefix.replace("{name}", name).replace("{path}", path).encode("utf-8", "surrogateescape")
    sep = b"\n" + head
    cut = len(head)
    # One pass to insert the prefixes, one copy to put it together: no per-line Python.
    return lambda block: b"".join((head, memoryview(block.replace(b"\n", sep))[:-cut]))


def record_renderer(fmt: Format, name: str, path: str) -> Callable[[Records], Render] | None:
    """How records of several lines are rendered where that differs from line by line (JSON: one
    object per record, its lines joined by newlines in ``message``); None where it does not."""
    if fmt is not Format.JSON:
        return None  # raw: a record's lines, each with its prefix, in one block
    return lambda records: lambda _block: _messages_to_json(messages(records), name, path)


def _identity(block: bytes) -> bytes:
    return block


_dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def _to_json(block: bytes, name: str, path: str) -> bytes:
    lines = block.split(b"\n")
    lines.pop()  # the block ends with a newline
    return _messages_to_json(lines, name, path)


def _messages_to_json(messages: Iterable[bytes], name: str, path: str) -> bytes:
    dumps = _dumps
    out = [dumps({"message": m.decode("utf-8", "replace"), "name": name, "file": path}) for m in messages]
    out.append("")
    return "\n".join(out).encode("utf-8", "surrogateescape")


class Tally:
    """Lines and bytes that reached stdout, for the summary."""

    __slots__ = ("bytes", "lines")

    def __init__(self) -> None:
        self.lines = 0
        self.bytes = 0


# (block, how to render it, tally, file bytes it stands for, future, loop)
_Job = tuple[bytes, Render, Tally | None, int, asyncio.Future[None], asyncio.AbstractEventLoop]


class Stdout:
    """Renders and writes blocks to a file descriptor, in submission order.

    Blocks go to one daemon thread: a reader that stops reading (a stalled container
    runtime) blocks that thread, never the event loop, so signals and the drain deadline
    keep working, and an exit past the deadline does not wait for it. Rendering (prefix,
    JSON) and counting happen there too, so the event loop can read the next chunk
    meanwhile. Only a small block with nothing queued before it and room in the pipe is
    written at once from the event loop: a followed line then costs no thread hop. Each
    block goes out with as few ``write`` calls as the kernel allows and nothing else writes
    to the descriptor, so lines of different files never interleave.
    """

    def __init__(self, fd: int = 1) -> None:
        self._fd = fd
        _widen_pipe(fd)
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._closed: StdoutClosed | None = None
        self._queued = 0  # jobs handed to the thread and not finished; only the event loop counts
        self._poll = select.poll()
        self._poll.register(fd, select.POLLOUT)
        self._thread = threading.Thread(target=self._run, name="logtail-stdout", daemon=True)
        self._thread.start()

    def submit(
        self, block: bytes, render: Render = _identity, tally: Tally | None = None
    ) -> asyncio.Future[None]:
        """Queue ``block`` (whole lines) for writing; the future is done once it is in the kernel's hands."""
        loop = asyncio.get_running_loop()
        done: asyncio.Future[None] = loop.create_future()
        size = len(block)
        if self._closed is not None:
            done.set_exception(self._closed)
            return done
        if block and not self._queued and size <= select.PIPE_BUF and self._writable():
            # A write of at most PIPE_BUF bytes to a pipe with room never blocks and is never
            # split; what counts is the rendered size (a prefix or JSON makes it larger).
            block, render = render(block), _identity
            if len(block) <= select.PIPE_BUF:
                _settle(done, self._write(block, render, tally, size))
                return done
        self._queued += 1
        self._jobs.put((block, render, tally, size, done, loop))
        return done

    def _writable(self) -> bool:
        try:
            return bool(self._poll.poll(0))
        except OSError:
            return False

    async def flush(self) -> None:
        """Wait until everything submitted before is written."""
        await self.submit(b"")

    def close(self) -> None:
        self._jobs.put(None)

    def _run(self) -> None:
        while (job := self._jobs.get()) is not None:
            block, render, tally, size, done, loop = job
            error = self._write(block, render, tally, size)
            loop.call_soon_threadsafe(self._finished, done, error)

    def _finished(self, done: asyncio.Future[None], error: BaseException | None) -> None:
        self._queued -= 1
        _settle(done, error)

    def _write(self, block: bytes, render: Render, tally: Tally | None, size: int) -> BaseException | None:
        """Render and write one block that stands for ``size`` file bytes; return the error, not raise it."""
        if self._closed is not None:
            return self._closed
        if not block:
            return None
        data = render(block)
        try:
            _write_all(self._fd, data)
        except OSError as exc:
            # Any write error ends the run: a block that cannot be written cannot be retried
            # without repeating or losing lines, and a read error would be the wrong report.
            reason = os.strerror(exc.errno) if exc.errno else str(exc)
            if exc.errno in (errno.EPIPE, errno.EBADF, errno.ECONNRESET):
                self._closed = StdoutClosed(f"stdout was closed ({reason})")
            else:
                self._closed = StdoutClosed(f"cannot write to stdout ({reason})")
            return self._closed
        if tally is not None:
            tally.lines += data.count(b"\n")
            tally.bytes += size
        return None


# How much a pipe on stdout is asked to hold (Linux's default is 64 KiB, and 1 MiB is what an
# unprivileged process may ask for by default, /proc/sys/fs/pipe-max-size). Catching up through a
# 64 KiB pipe, every 256 KiB block waits for the reader four times; 2,000,000 lines of 100 bytes
# into `cat` took 2.35 s at 64 KiB, 1.62 s at 256 KiB and 1.23 s at 1 MiB here (to /dev/null:
# 1.2 s). The kernel keeps what is in the pipe either way; steady lines never fill it.
PIPE_SIZE = 1024 * 1024


def _widen_pipe(fd: int) -> None:
    """Ask for a larger pipe buffer if ``fd`` is a pipe; where that is refused, keep what there is."""
    try:
        if stat.S_ISFIFO(os.fstat(fd).st_mode) and fcntl.fcntl(fd, fcntl.F_GETPIPE_SZ) < PIPE_SIZE:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    except OSError:
        pass  # EPERM: over the user's pipe pages (pipe-user-pages-soft); EBADF: no stdout


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        try:
            written = os.write(fd, view)
        except BlockingIOError:
            # Someone else made the shared pipe non-blocking; wait for room instead of failing.
            select.select([], [fd], [])
            continue
        view = view[written:]


def _settle(done: asyncio.Future[None], error: BaseException | None) -> None:
    if done.done():
        return
    if error is None:
        done.set_result(None)
    else:
        done.set_exception(error)
