"""Why a run ends: each end condition is a coroutine that returns a ``Stop``, and exit statuses.

Signals, ``--timeout``, ``--idle-exit``, ``--pid``, ``--exec``, ``--no-follow``, ``--until``
and a closed stdout only say *that* the run should end and with which status; the app
takes the first of them and drains.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import stat
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from enum import IntEnum

from logtail import logs
from logtail.transfer import Printer


class Exit(IntEnum):
    """logtail's exit statuses (with --exec, the command's own status instead)."""

    OK = 0
    FAILURE = 1  # a fatal runtime error, a closed stdout, a missing file with --no-follow
    USAGE = 2  # bad options or paths: one line on stderr names the culprit
    DRAIN_TIMEOUT = 3  # --drain-timeout ran out before every file was printed
    TIMEOUT = 124  # --timeout ran out, as timeout(1) reports it
    COMMAND_NOT_RUN = 127  # as a shell reports a command it could not run
    INTERRUPTED = 130  # Ctrl-C before the run started


@dataclass(frozen=True)
class Stop:
    """A request to end the run with ``status``; ``drain``: print every file to its end first."""

    status: int
    drain: bool = True


async def after(seconds: float) -> Stop:
    """--timeout: the run has lasted ``seconds``."""
    await asyncio.sleep(seconds)
    logs.get().info("stopping: --timeout reached", timeout=seconds)
    return Stop(Exit.TIMEOUT)


async def when_idle(seconds: float, printer: Printer) -> Stop:
    """--idle-exit: nothing was printed for ``seconds``."""
    while (left := seconds - (time.monotonic() - printer.last_output)) > 0:
        await asyncio.sleep(left)
    logs.get().info("stopping: no new data", idle_exit=seconds)
    return Stop(Exit.OK)


async def when_matched(printer: Printer) -> Stop:
    """--until: the first line that matches has been printed; nothing after it is."""
    await printer.matched.wait()
    return Stop(Exit.OK, drain=False)


async def when_read(
    followers: Iterable[Awaitable[None]], missing: list[str], refused: Callable[[], list[str]]
) -> Stop:
    """--no-follow: every file has been printed to its end.

    A named file that is missing, or that is there but refused (a symlink out of its directory, a
    FIFO), fails the run: a CI job that printed nothing of it must not pass. Glob matches do not.
    """
    for path in missing:
        logs.get().error("no such file", path=path)
    await asyncio.gather(*followers, return_exceptions=True)
    return Stop(Exit.FAILURE if missing or refused() else Exit.OK, drain=False)


async def when_gone(pids: tuple[int, ...], poll_interval: float) -> Stop:
    """--pid: every watched process has exited."""
    waits = [asyncio.create_task(_wait_for_exit(pid, poll_interval)) for pid in pids]
    try:
        await asyncio.gather(*waits)
    finally:
        for wait in waits:
            wait.cancel()
    logs.get().info("stopping: watched processes have exited", pids=list(pids))
    return Stop(Exit.OK)


async def when_stdout_closed(fd: int = 1) -> Stop:
    """Whoever reads our stdout pipe went away, even while no line is written.

    A pipe's write end reports an error (EPOLLERR) once the read end is closed; only pipes
    are watched, since a terminal's descriptor would report its keyboard input.
    """
    loop = asyncio.get_running_loop()
    closed: asyncio.Future[None] = loop.create_future()
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            await asyncio.Future()  # never: nothing to notice
        loop.add_reader(fd, _settle, closed)
    except (OSError, ValueError):
        await asyncio.Future()
    try:
        await closed
    finally:
        loop.remove_reader(fd)
    logs.get().warning("stopping: stdout was closed")
    return Stop(Exit.FAILURE, drain=False)


class Command:
    """--exec: the command logtail runs and follows the files of."""

    def __init__(self, argv: tuple[str, ...]) -> None:
        self.argv = argv
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> bool:
        """Start the command; False (logged) when it cannot be run."""
        log = logs.get()
        try:
            self._process = await asyncio.create_subprocess_exec(*self.argv)
        except OSError as exc:
            log.error("cannot run command", command=list(self.argv), reason=exc.strerror)
            return False
        log.info("started command", command=list(self.argv), pid=self._process.pid)
        return True

    @property
    def started(self) -> bool:
        return self._process is not None

    def forward(self, signum: int) -> bool:
        """Pass a signal on to the command while it runs; False when there is none to pass it to."""
        if self._process is None or self._process.returncode is not None:
            return False
        logs.get().info("passing signal to command", signal=signal.Signals(signum).name)
        with contextlib.suppress(ProcessLookupError):
            self._process.send_signal(signum)
        return True

    async def exited(self) -> Stop:
        """The command has exited: stop with its status (128+N for a signal N, as a shell says)."""
        assert self._process is not None
        code = await self._process.wait()
        status = 128 - code if code < 0 else code
        logs.get().info("command exited", status=status)
        return Stop(status)


class Signals:
    """SIGTERM and SIGINT: the first asks for a drain, a second cuts it short; with --exec both go
    to the command instead, whose exit then ends the run."""

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self, command: Command | None = None) -> None:
        self._command = command
        self._received = 0
        self._first: asyncio.Future[Stop] | None = None
        self.abort = asyncio.Event()  # set by a second signal: stop draining

    def install(self) -> None:
        loop = asyncio.get_running_loop()
        self._first = loop.create_future()
        for signum in self.SIGNALS:
            loop.add_signal_handler(signum, self._on_signal, signum)

    def remove(self) -> None:
        loop = asyncio.get_running_loop()
        for signum in self.SIGNALS:
            loop.remove_signal_handler(signum)

    async def first(self) -> Stop:
        assert self._first is not None, "install() first"
        return await self._first

    def _on_signal(self, signum: int) -> None:
        self._received += 1  # a signal passed on to the command counts: the next one cuts a drain short
        if self._command is not None and self._command.forward(signum):
            return
        log = logs.get()
        if self._received == 1 and self._first is not None and not self._first.done():
            log.info("stopping: reading every file to its end", signal=signal.Signals(signum).name)
            self._first.set_result(Stop(Exit.OK))
        else:
            log.warning("second signal: stopping without finishing the drain")
            self.abort.set()


async def _wait_for_exit(pid: int, poll_interval: float) -> None:
    """Wait until process ``pid`` is gone: a pidfd where the kernel has them, polling otherwise."""
    loop = asyncio.get_running_loop()
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return
    except (OSError, AttributeError):
        while _alive(pid):
            await asyncio.sleep(poll_interval)
        return
    exited: asyncio.Future[None] = loop.create_future()
    loop.add_reader(fd, _settle, exited)
    try:
        await exited
    finally:
        loop.remove_reader(fd)
        os.close(fd)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _settle(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
