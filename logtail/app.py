"""The run's lifecycle: start the followers and the tasks around them, wait for the first stop, drain,
save the checkpoint a last time, and report what was done.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import dataclasses
import functools
import os
import re
import resource
from collections.abc import Coroutine
from typing import Any

from logtail import checkpoint, discovery, locate, logs, stops
from logtail.changes import Changes
from logtail.config import Config
from logtail.discovery import Candidate, Discovery
from logtail.errors import StdoutClosed
from logtail.follower import Follower, Shared
from logtail.generation import Snapshot
from logtail.identity import Registry
from logtail.output import Stdout
from logtail.stops import Exit, Stop
from logtail.transfer import Printer


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
        self._ended_at: dict[str, tuple[Snapshot, ...]] = {}
        self._saved: dict[str, checkpoint.Entry] | None = None
        self._status: int = Exit.OK
        until = re.compile(config.until.encode(), re.MULTILINE) if config.until else None
        self._printer = Printer(self.stdout, until)
        registry = Registry()
        warnings = logs.Warnings()
        self._shared = Shared(
            config=config,
            printer=self._printer,
            registry=registry,
            warnings=warnings,
            flush_partial_at_end=config.checkpoint is None or bool(config.pids or config.command),
        )
        self._discovery = Discovery(config, registry, warnings)
        self._changes = Changes(
            self.followers,
            self._discover,
            lambda: discovery.directories(config.streams, {f.directory for f in self.followers.values()}),
            discovery.glob_bases(config.streams),
            config.poll_interval,
            config.batch_interval,
        )
        self._command = stops.Command(config.command) if config.command else None
        self._signals = stops.Signals(self._command)
        self._schedule = (
            checkpoint.Schedule(
                config.checkpoint, config.checkpoint_interval, self._positions, registry.grown
            )
            if config.checkpoint
            else None
        )
        if self._schedule is not None:
            self._shared = dataclasses.replace(self._shared, known=self._schedule.known)
        self._stop: asyncio.Future[Stop] | None = None

    def request_stop(self, stop: Stop) -> None:
        """Ask the run to end; the first request wins."""
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(stop)

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        # Large reads and the occasional slow stat are all the workers do: two are plenty,
        # and every extra thread costs a stack and a malloc arena in every sidecar.
        loop.set_default_executor(concurrent.futures.ThreadPoolExecutor(2, "logtail-io"))
        _raise_open_files_limit()
        self._stop = loop.create_future()
        self._signals.install()
        background: list[asyncio.Task[Any]] = []
        try:
            if self.config.checkpoint:
                self._saved = checkpoint.load_or_warn(self.config.checkpoint)
                if self._schedule is not None:
                    self._schedule.loaded(self._saved)
            background.append(self._start(stops.when_stdout_closed(), "stdout"))
            background.append(self._start(self._signals.first(), "signals"))
            background.append(self._start(stops.when_matched(self._printer), "until"))
            # Watches first: a change between a follower's first read and its watch would
            # otherwise go unnoticed until the next full sweep.
            if self.config.follow and not self.config.poll_only and self._changes.start_inotify():
                background.append(self._start(self._changes.inotify_forever(), "inotify"))
            self._discover(at_start=True)
            if self._command is not None and not await self._command.start():
                self.request_stop(Stop(Exit.COMMAND_NOT_RUN))  # still print what the files hold
            background.extend(self._start(c, n) for c, n in self._stop_conditions())
            stop = await self._stop
            self._status = stop.status
            await self._finish(stop.drain)
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            self._changes.close()
            self._signals.remove()
        return self._status

    def _stop_conditions(self) -> list[tuple[Coroutine[Any, Any, Any], str]]:
        """The tasks that end the run (besides signals and --until), and the background work of following."""
        config = self.config
        if not config.follow:
            missing = [s.pattern for s in config.streams if not s.is_glob and not os.path.exists(s.pattern)]
            named = [f for f in self._tasks if not f.glob_member]

            def refused() -> list[str]:  # known once every file has been read
                return [f.path for f in named if f.refused]

            return [(stops.when_read(list(self._tasks.values()), missing, refused), "no-follow")]
        tasks: list[tuple[Coroutine[Any, Any, Any], str]] = [(self._changes.sweep_forever(), "sweep")]
        if self._schedule is not None:
            tasks.append((self._schedule.run_forever(), "checkpoint"))
        if config.pids:
            tasks.append((stops.when_gone(config.pids, config.poll_interval), "pids"))
        if self._command is not None and self._command.started:
            tasks.append((self._command.exited(), "command"))
        if config.timeout is not None:
            tasks.append((stops.after(config.timeout), "timeout"))
        if config.idle_exit is not None:
            tasks.append((stops.when_idle(config.idle_exit, self._printer), "idle-exit"))
        return tasks

    def _start(self, work: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(work, name=name)
        task.add_done_callback(self._background_ended)
        return task

    def _background_ended(self, task: asyncio.Task[Any]) -> None:
        """A stop condition returns its Stop; background work (inotify, sweep, ...) must not die unnoticed."""
        if task.cancelled():
            return
        if (error := task.exception()) is not None:
            self.log.error("internal task failed", task=task.get_name(), exc_info=error)
            self.request_stop(Stop(Exit.FAILURE))
        elif isinstance(stop := task.result(), Stop):
            self.request_stop(stop)

    async def _finish(self, drain: bool) -> None:
        if drain:
            await self._drain()
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        if self._status != Exit.DRAIN_TIMEOUT:
            # Bounded even when no drain ran (--until, a closed stdout): a stalled reader must
            # not keep logtail from exiting.
            with contextlib.suppress(StdoutClosed, TimeoutError):
                await asyncio.wait_for(self.stdout.flush(), self.config.drain_timeout)
        if self._schedule is not None:
            await self._schedule.final()  # after the followers stopped: their snapshots are final
        self._summary()

    async def _drain(self) -> None:
        """Let every follower read its files to their current end, within --drain-timeout."""
        for follower in list(self.followers.values()):
            follower.drain()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.drain_timeout
        aborted = asyncio.create_task(self._signals.abort.wait())
        pending = {t for t in self._tasks.values() if not t.done()}
        while pending and not aborted.done() and (left := deadline - loop.time()) > 0:
            done, _ = await asyncio.wait(
                pending | {aborted}, timeout=left, return_when=asyncio.FIRST_COMPLETED
            )
            pending -= done
        aborted.cancel()
        unfinished = [f for f, t in self._tasks.items() if not t.done()]
        if unfinished:
            self._status = Exit.DRAIN_TIMEOUT
            self.log.error(
                "drain did not finish in time",
                drain_timeout=self.config.drain_timeout,
                unread_bytes={f.path: f.unread() for f in unfinished},
            )

    def _summary(self) -> None:
        files = {path: dict(record) for path, record in self._ended.items()}
        for follower in self.followers.values():
            _add_counts(files, follower)
        self.log.info("summary", exit_status=int(self._status), files=list(files.values()))

    # -- followers --------------------------------------------------------------------

    def _discover(self, at_start: bool = False) -> None:
        """Start following every path the arguments name now."""
        for candidate in self._discovery.new(self.followers, at_start):
            self._add(candidate, at_start)

    def _add(self, candidate: Candidate, at_start: bool) -> None:
        path = candidate.path
        start: locate.Start
        # Each saved position is used once: a file that goes away and comes back later in
        # this run is new, not the one the checkpoint described.
        saved = self._saved.pop(path, None) if self._saved is not None else None
        if saved is not None:
            steps, found = locate.resume(path, self.config.rotated_patterns, saved)
            if not found:
                self.log.warning(
                    "file in the checkpoint is gone; reading newer files from their start", path=path
                )
            start = locate.Resume(tuple(steps))
        else:
            start = locate.first_start(
                at_start=at_start,
                resuming=self._saved is not None,
                exists=os.path.exists(path),
                start_at=self.config.start_at,
            )
        follower = Follower(
            path, candidate.name, self._shared, start, glob_member=candidate.glob_member, root=candidate.root
        )
        self.followers[path] = follower
        task = asyncio.create_task(follower.run(), name=f"follow {path}")
        self._tasks[follower] = task
        task.add_done_callback(functools.partial(self._follower_ended, follower))
        self._changes.watch(os.path.dirname(path))  # before the follower's first read

    def _follower_ended(self, follower: Follower, task: asyncio.Task[None]) -> None:
        if self.followers.get(follower.path) is follower:
            del self.followers[follower.path]
        self._tasks.pop(follower, None)
        _add_counts(self._ended, follower)
        if at := follower.snapshot():
            self._ended_at[follower.path] = at
        else:
            self._ended_at.pop(follower.path, None)
        if task.cancelled():
            return
        error = task.exception()
        if isinstance(error, StdoutClosed):
            self.log.warning("stopping: " + str(error))
            self.request_stop(Stop(Exit.FAILURE, drain=False))
        elif error is not None:
            self.log.error("follower failed", path=follower.path, exc_info=error)
            self.request_stop(Stop(Exit.FAILURE))

    def _positions(self) -> dict[str, checkpoint.Entry]:
        snapshots = dict(self._ended_at)
        for follower in self.followers.values():
            if at := follower.snapshot():
                snapshots[follower.path] = at
        positions = {path: tuple(map(checkpoint.Position.of, at)) for path, at in snapshots.items()}
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
            "lost_bytes": 0,
        },
    )
    record["lines"] += follower.printed.lines
    record["bytes"] += follower.printed.bytes
    record["rotations"] += follower.stats.rotations
    record["truncations"] += follower.stats.truncations
    record["lost_bytes"] += follower.stats.lost_bytes
