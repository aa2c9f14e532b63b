"""The run's lifecycle: start followers, wake them on changes, stop on a signal or condition, drain.

Signals, the end of watched processes, ``--until``, ``--timeout`` and ``--idle-exit`` only
request a stop with an exit status; one place then drains every follower under the
drain deadline, saves the checkpoint and reports what was done.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import functools
import glob
import itertools
import os
import re
import resource
import signal
import stat
import threading
import time
from collections import OrderedDict
from collections.abc import Coroutine
from typing import TYPE_CHECKING, Any

from logtail import checkpoint, files, locate, logs, rotation
from logtail.config import Config
from logtail.errors import StdoutClosed
from logtail.follower import Follower, Resume, Shared, Snapshot, Start
from logtail.output import Stdout
from logtail.rotation import FileId

if TYPE_CHECKING:
    from logtail.watch import DirectoryWatcher

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_DRAIN_TIMEOUT = 3
EXIT_TIMEOUT = 124
EXIT_COMMAND_NOT_RUN = 127  # as a shell reports a command it could not run
# How many closed files to remember, so a glob that also matches rotated names does not
# print a rotated generation a second time.
_RETIRED_MEMORY = 4096
# With inotify, how often every file is also looked at with stat, in case events were lost.
_FULL_SWEEP = 30.0


class App:
    """One run of logtail over a configuration."""

    def __init__(self, config: Config, stdout: Stdout | None = None) -> None:
        self.config = config
        self.log = logs.get()
        self.stdout = stdout or Stdout()
        self.followers: dict[str, Follower] = {}
        self._tasks: dict[Follower, asyncio.Task[None]] = {}
        # Followers that ended (a glob match that went away, a drained file): their counts
        # for the summary and their last position for the checkpoint, one entry per path.
        self._ended: dict[str, dict[str, Any]] = {}
        self._ended_at: dict[str, Snapshot] = {}
        self._stop: asyncio.Future[tuple[int, bool]] | None = None
        self._saved: dict[str, checkpoint.Position] | None = None
        self._last_data = time.monotonic()
        self._watcher: DirectoryWatcher | None = None
        self._retired: OrderedDict[FileId, bytes] = OrderedDict()
        self._skipped_for_limit: set[str] = set()
        self._child: asyncio.subprocess.Process | None = None
        self._signals = 0
        self._checkpointing: asyncio.Task[None] | None = None
        self._save_lock = threading.Lock()
        self._save_numbers = itertools.count()
        self._saved_number = -1
        self._status = EXIT_OK
        self.shared = Shared(
            config=config,
            stdout=self.stdout,
            log=self.log,
            until=re.compile(config.until.encode(), re.MULTILINE) if config.until else None,
            on_match=lambda: self.request_stop(EXIT_OK, drain=False),
            on_data=self._saw_data,
            on_retire=self.remember_retired,
            followed_elsewhere=self._followed_elsewhere,
            flush_partial_at_end=config.checkpoint is None or bool(config.pids or config.command),
        )

    # -- stopping ---------------------------------------------------------------------

    def request_stop(self, status: int, drain: bool = True) -> None:
        """Ask the run to end with ``status``; the first request wins."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result((status, drain))

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._child is not None and self._child.returncode is None:
            self.log.info("passing signal to command", signal=signal.Signals(signum).name)
            with contextlib.suppress(ProcessLookupError):
                self._child.send_signal(signum)
            return
        if self._signals == 1:
            self.log.info("stopping: reading every file to its end", signal=signal.Signals(signum).name)
            self.request_stop(EXIT_OK)
        else:
            self.log.warning("second signal: stopping without finishing the drain")
            self._abort_drain.set()

    def _notice_closed_stdout(self, loop: asyncio.AbstractEventLoop) -> None:
        """Stop when whoever reads our stdout pipe goes away, even while no line is written.

        A pipe's write end reports an error (EPOLLERR) once the read end is closed; only
        pipes are watched, since a terminal's descriptor would report its keyboard input.
        """
        try:
            if not stat.S_ISFIFO(os.fstat(1).st_mode):
                return
            loop.add_reader(1, self._stdout_error)
        except (OSError, ValueError):
            return

    def _stdout_error(self) -> None:
        asyncio.get_running_loop().remove_reader(1)
        self.log.warning("stopping: stdout was closed")
        self.request_stop(EXIT_FAILURE, drain=False)

    def _background_ended(self, task: asyncio.Task[Any]) -> None:
        """A background task (inotify, sweep, checkpoint, ...) must not die unnoticed."""
        if task.cancelled() or task.exception() is None:
            return
        self.log.error("internal task failed", task=task.get_name(), exc_info=task.exception())
        self.request_stop(EXIT_FAILURE)

    def _saw_data(self) -> None:
        self._last_data = time.monotonic()

    # -- the run ----------------------------------------------------------------------

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # Large reads and the occasional slow stat are all the workers do: two are plenty,
        # and every extra thread costs a stack and a malloc arena in every sidecar.
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(2, "logtail-io"))
        _raise_open_files_limit()
        self._stop = loop.create_future()
        self._abort_drain = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self._on_signal, signum)
        background: list[asyncio.Task[Any]] = []
        try:
            self._load_checkpoint()
            self._notice_closed_stdout(loop)
            # Watches first: a change between a follower's first read and its watch would
            # otherwise go unnoticed until the next full sweep.
            watching = self._start_watcher() if self.config.follow else None
            if watching is not None:
                background.append(asyncio.create_task(watching, name="inotify"))
            self._discover(at_start=True)
            if self.config.command and not await self._start_command():
                self.request_stop(EXIT_COMMAND_NOT_RUN)  # still print what the files hold
            if not self.config.follow:
                background.append(asyncio.create_task(self._no_follow()))
            else:
                background.append(asyncio.create_task(self._sweep_forever()))
                if self.config.checkpoint:
                    self._checkpointing = asyncio.create_task(self._checkpoint_forever())
                    background.append(self._checkpointing)
                if self.config.pids:
                    background.append(asyncio.create_task(self._watch_pids()))
                if self._child is not None:
                    background.append(asyncio.create_task(self._wait_command()))
                if self.config.timeout is not None:
                    loop.call_later(self.config.timeout, self._timed_out)
                if self.config.idle_exit is not None:
                    background.append(asyncio.create_task(self._idle_exit(self.config.idle_exit)))
            for task in background:
                task.add_done_callback(self._background_ended)
            status, drain = await self._stop
            self._status = status
            await self._finish(drain)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            if self._watcher is not None:
                self._watcher.close()
            for signum in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(signum)
        return self._status

    async def _finish(self, drain: bool) -> None:
        if drain:
            await self._drain()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self._status != EXIT_DRAIN_TIMEOUT:
            # Bounded even when no drain ran (--until, a closed stdout): a stalled reader must
            # not keep logtail from exiting.
            with contextlib.suppress(StdoutClosed, TimeoutError):
                await asyncio.wait_for(self.stdout.flush(), self.config.drain_timeout)
        if self.config.checkpoint:
            if self._checkpointing is not None:
                self._checkpointing.cancel()
            await asyncio.to_thread(self._save, next(self._save_numbers), self._positions())
        self._summary()

    async def _drain(self) -> None:
        """Let every follower read its files to their current end, within --drain-timeout."""
        for follower in list(self.followers.values()):
            follower.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_timeout
        aborted = asyncio.create_task(self._abort_drain.wait())
        pending = {t for t in self._tasks.values() if not t.done()}
        while pending and not aborted.done() and (left := deadline - loop.time()) > 0:
            done, _ = await asyncio.wait(
                pending | {aborted}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            pending -= done
        aborted.cancel()
        unfinished = [f for f, t in self._tasks.items() if not t.done()]
        if unfinished:
            self._status = EXIT_DRAIN_TIMEOUT
            self.log.error(
                "drain did not finish in time",
                drain_timeout=self.config.drain_timeout,
                unread_bytes={f.path: f.unread() for f in unfinished},
            )

    def _summary(self) -> None:
        files = {path: dict(record) for path, record in self._ended.items()}
        for follower in self.followers.values():
            _add_counts(files, follower)
        self.log.info("summary", exit_status=self._status, files=list(files.values()))

    # -- followers --------------------------------------------------------------------

    def _discover(self, at_start: bool = False) -> None:
        """Start following every path the arguments name now."""
        for spec in self.config.streams:
            if spec.is_glob:
                paths = sorted(glob.glob(spec.pattern))
                if at_start and not paths:
                    self.log.warning("no file matches yet; watching for them", pattern=spec.pattern)
                root = _glob_base(spec.pattern)
                for path in paths:
                    if path not in self.followers and not self._ignored_match(path):
                        self._add(path, spec.name_for(path), at_start, glob_member=True, root=root)
            elif (
                at_start
                and spec.pattern not in self.followers
                and (self.config.follow or os.path.exists(spec.pattern))
            ):
                root = os.path.dirname(spec.pattern)
                self._add(spec.pattern, spec.name_for(spec.pattern), at_start, glob_member=False, root=root)

    def _ignored_match(self, path: str) -> bool:
        """Glob matches never followed: directories, compressed rotations, logtail's own checkpoint."""
        own = self.config.checkpoint
        if own and (path == own or (path.startswith(own + ".") and path.endswith(".tmp"))):
            return True
        return path.lower().endswith(locate.COMPRESSED) or os.path.isdir(path)

    def _add(self, path: str, name: str, at_start: bool, glob_member: bool, root: str) -> None:
        if glob_member:
            if not self._followable(path):
                return
            if len(self.followers) >= self.config.max_files:
                if path not in self._skipped_for_limit:
                    self._skipped_for_limit.add(path)
                    self.log.warning(
                        "not following file: --max-files reached", path=path, max_files=self.config.max_files
                    )
                return
            if self._is_known_generation(path):
                return
        start: Start = None
        # Each saved position is used once: a file that goes away and comes back later in
        # this run is new, not the one the checkpoint described.
        saved = self._saved.pop(path, None) if self._saved is not None else None
        if saved is not None:
            steps, found = locate.plan_resume(
                path,
                self.config.rotated_patterns,
                saved.id,
                saved.offset,
                saved.window_sha,
                saved.window_len,
                saved.mtime_ns,
            )
            if not found:
                self.log.warning(
                    "file in the checkpoint is gone; reading newer files from their start", path=path
                )
            start = Resume(tuple(steps))
        elif at_start and self._saved is None and os.path.exists(path):
            start = self.config.start_at  # -n is for files present at start only
        # else: read from the first byte, as every file that appears later is (and, when
        # resuming, one missing from the checkpoint appeared while logtail was down)
        follower = Follower(path, name, self.shared, start, glob_member=glob_member, root=root)
        self.followers[path] = follower
        task = asyncio.create_task(follower.run(), name=f"follow {path}")
        self._tasks[follower] = task
        task.add_done_callback(functools.partial(self._follower_ended, follower))
        if self._watcher is not None:
            self._watcher.watch(os.path.dirname(path))  # before the follower's first read

    def _followable(self, path: str) -> bool:
        """Whether a glob match is a regular file; anything else is reported once and passed over."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        reason = rotation.refusal(st)
        if reason:
            self.shared.warn_once("not following file", path, reason=reason)
            return False
        return True

    def _is_known_generation(self, path: str) -> bool:
        """Whether a glob match is a file already followed under another name (a rotated generation)."""
        try:
            return self._followed_elsewhere(path, FileId.of(os.stat(path)))
        except OSError:
            return False

    def _followed_elsewhere(self, path: str, file_id: FileId) -> bool:
        """Whether the file ``file_id`` now at ``path`` is, or was, read by a follower of another path."""
        if any(g.id == file_id for f in self.followers.values() if f.path != path for g in f.gens):
            return True
        head = self._retired.get(file_id)
        if head is None:
            return False
        try:
            fd, _ = files.open_regular(path, None)  # never a blocking open: it may be a FIFO by now
        except (OSError, files.Refused):
            return False
        try:
            return os.pread(fd, len(head), 0) == head  # the same inode number, reused, has other bytes
        finally:
            os.close(fd)

    def _follower_ended(self, follower: Follower, task: asyncio.Task[None]) -> None:
        if self.followers.get(follower.path) is follower:
            del self.followers[follower.path]
        self._tasks.pop(follower, None)
        _add_counts(self._ended, follower)
        if (at := follower.snapshot()) is not None:
            self._ended_at[follower.path] = at
        else:
            self._ended_at.pop(follower.path, None)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, StdoutClosed):
            self.log.warning("stopping: " + str(error))
            self.request_stop(EXIT_FAILURE, drain=False)
        elif error is not None:
            self.log.error("follower failed", path=follower.path, exc_info=error)
            self.request_stop(EXIT_FAILURE)

    def remember_retired(self, file_id: FileId, head: bytes) -> None:
        if not head:
            return
        self._retired[file_id] = head
        self._retired.move_to_end(file_id)
        while len(self._retired) > _RETIRED_MEMORY:
            self._retired.popitem(last=False)

    # -- noticing changes -------------------------------------------------------------

    def _start_watcher(self) -> Coroutine[Any, Any, None] | None:
        if self.config.poll_only:
            return None
        try:
            from logtail.watch import DirectoryWatcher

            self._watcher = DirectoryWatcher(self._on_change)
        except OSError as exc:
            self.log.warning("inotify unavailable; polling instead", reason=str(exc))
            return None
        for directory in self._directories():
            self._watcher.watch(directory)
        return self._watcher.run()

    def _glob_bases(self) -> set[str]:
        return {_glob_base(spec.pattern) for spec in self.config.streams if spec.is_glob}

    def _directories(self) -> set[str]:
        dirs = {os.path.dirname(spec.pattern) for spec in self.config.streams if not spec.is_glob}
        dirs |= self._glob_bases()
        dirs |= {os.path.dirname(path) for path in self.followers}
        return dirs

    def _on_change(self, directory: str | None, name: str | None, appeared: bool) -> None:
        if directory is None:
            for follower in self.followers.values():
                follower.wake()
            self._discover()
            return
        if name is not None and (named := self.followers.get(os.path.join(directory, name))) is not None:
            named.wake()
            return
        # Not a followed name: a rotated generation was written, or a new file appeared.
        for follower in self.followers.values():
            if follower.has_rotated and os.path.dirname(follower.path) == directory:
                follower.wake()
        if appeared:
            self._discover()

    def _wake_directory(self, directory: str) -> None:
        for follower in self.followers.values():
            if os.path.dirname(follower.path) == directory:
                follower.wake()

    async def _sweep_forever(self) -> None:
        """The safety net (and, with --poll, the only mechanism): look at files now and then.

        Where inotify watches a follower's directory, its events already cover the file;
        those followers are looked at only every ``_FULL_SWEEP`` seconds (for lost events),
        so a thousand idle files cost next to nothing. Rotated-away generations, which may
        have moved to another directory, are looked at every time.
        """
        signatures: dict[str, tuple[Any, ...]] = {}
        last_full = time.monotonic()
        while True:
            await asyncio.sleep(self.config.poll_interval)
            watcher = self._watcher
            if watcher is not None:
                for directory in self._directories():
                    if watcher.watch(directory):
                        self._wake_directory(directory)  # it may have changed before it was watched
            full = watcher is None or time.monotonic() - last_full >= _FULL_SWEEP
            if full:
                last_full = time.monotonic()
            if full or (watcher is not None and not all(map(watcher.watching, self._glob_bases()))):
                self._discover()  # with inotify, new matches in watched directories arrive as events
            for path, follower in list(self.followers.items()):
                # Events come from the directory the file really is in: a symlinked path's own
                # directory does not see writes to its target.
                covered = watcher is not None and watcher.watching(os.path.dirname(path))
                if covered and not full and not follower.has_rotated and not follower.via_symlink:
                    continue
                signature = _signature(follower)
                if signatures.get(path) != signature:
                    signatures[path] = signature
                    follower.wake()
            if full:
                for path in [p for p in signatures if p not in self.followers]:
                    del signatures[path]

    async def _no_follow(self) -> None:
        missing = [
            spec.pattern
            for spec in self.config.streams
            if not spec.is_glob and not os.path.exists(spec.pattern)
        ]
        for path in missing:
            self.log.error("no such file", path=path)
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        self.request_stop(EXIT_FAILURE if missing else EXIT_OK, drain=False)

    # -- when to stop -----------------------------------------------------------------

    def _timed_out(self) -> None:
        self.log.info("stopping: --timeout reached", timeout=self.config.timeout)
        self.request_stop(EXIT_TIMEOUT)

    async def _idle_exit(self, seconds: float) -> None:
        while True:
            left = seconds - (time.monotonic() - self._last_data)
            if left <= 0:
                self.log.info("stopping: no new data", idle_exit=seconds)
                self.request_stop(EXIT_OK)
                return
            await asyncio.sleep(left)

    async def _watch_pids(self) -> None:
        waits = [
            asyncio.create_task(_wait_for_exit(pid, self.config.poll_interval)) for pid in self.config.pids
        ]
        try:
            await asyncio.gather(*waits)
        finally:
            for wait in waits:
                wait.cancel()
        self.log.info("stopping: watched processes have exited", pids=list(self.config.pids))
        self.request_stop(EXIT_OK)

    async def _start_command(self) -> bool:
        try:
            self._child = await asyncio.create_subprocess_exec(*self.config.command)
        except OSError as exc:
            self.log.error("cannot run command", command=list(self.config.command), reason=exc.strerror)
            return False
        self.log.info("started command", command=list(self.config.command), pid=self._child.pid)
        return True

    async def _wait_command(self) -> None:
        assert self._child is not None
        code = await self._child.wait()
        status = 128 - code if code < 0 else code
        self.log.info("command exited", status=status)
        self.request_stop(status)

    # -- checkpoint -------------------------------------------------------------------

    def _load_checkpoint(self) -> None:
        path = self.config.checkpoint
        if not path:
            return
        try:
            self._saved = checkpoint.load(path)
        except checkpoint.Unusable as exc:
            self.log.warning("ignoring unusable checkpoint", path=path, reason=str(exc))
            self._saved = None
        else:
            if self._saved is None:
                self.log.warning("no checkpoint yet; starting as without one", path=path)

    async def _checkpoint_forever(self) -> None:
        last: dict[str, checkpoint.Position] = {}
        while True:
            await asyncio.sleep(self.config.checkpoint_interval)
            positions = self._positions()
            if positions != last and await asyncio.to_thread(self._save, next(self._save_numbers), positions):
                last = positions

    def _save(self, number: int, positions: dict[str, checkpoint.Position]) -> bool:
        """Save in a worker thread; a save taken earlier never lands after one taken later.

        The periodic save can still be writing when the final one starts (cancelling its
        task does not stop its thread), so saves are serialised and numbered.
        """
        with self._save_lock:
            if number < self._saved_number:
                return True  # a later position is on disk already
            self._saved_number = number
            try:
                checkpoint.save(self.config.checkpoint or "", positions)
            except OSError as exc:
                self.log.warning("could not save checkpoint", path=self.config.checkpoint, reason=str(exc))
                return False
            return True

    def _positions(self) -> dict[str, checkpoint.Position]:
        positions: dict[str, checkpoint.Position] = {}
        snapshots = dict(self._ended_at)
        for follower in self.followers.values():
            if (at := follower.snapshot()) is not None:
                snapshots[follower.path] = at
        for path, at in snapshots.items():
            positions[path] = checkpoint.Position(
                dev=at.id.dev,
                ino=at.id.ino,
                offset=at.offset,
                window_sha=locate.digest(at.window),
                window_len=len(at.window),
                mtime_ns=at.mtime_ns,
            )
        if self._saved:
            # Paths not seen this run keep their place, for when they come back.
            for path, position in self._saved.items():
                positions.setdefault(path, position)
        return positions


def _raise_open_files_limit() -> None:
    """Use the hard limit on open files: rotation briefly needs two descriptors per file."""
    with contextlib.suppress(ValueError, OSError):
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft != resource.RLIM_INFINITY and (hard == resource.RLIM_INFINITY or soft < hard):
            resource.setrlimit(
                resource.RLIMIT_NOFILE, (hard if hard != resource.RLIM_INFINITY else 65536, hard)
            )


def _add_counts(files: dict[str, dict[str, Any]], follower: Follower) -> None:
    record = files.setdefault(
        follower.path,
        {
            "path": follower.path,
            "name": follower.name,
            "lines": 0,
            "bytes": 0,
            "rotations": 0,
            "truncations": 0,
        },
    )
    record["lines"] += follower.printed.lines
    record["bytes"] += follower.printed.bytes
    record["rotations"] += follower.stats.rotations
    record["truncations"] += follower.stats.truncations


def _signature(follower: Follower) -> tuple[Any, ...]:
    try:
        st = os.stat(follower.path)
        at_path: tuple[int, ...] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
    except OSError:
        at_path = None
    sizes = []
    for gen in list(follower.gens):
        try:
            sizes.append(os.fstat(gen.fd).st_size)
        except OSError:
            sizes.append(-1)
    return (at_path, *sizes)


def _glob_base(pattern: str) -> str:
    """The deepest directory of a glob without wildcards: the one to watch for new matches."""
    parts = pattern.split(os.sep)
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.sep.join(fixed) or os.sep


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

    def on_exit() -> None:
        if not exited.done():
            exited.set_result(None)

    loop.add_reader(fd, on_exit)
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
