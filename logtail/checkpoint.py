"""The checkpoint: per followed path, where the next unprinted byte is and in which file; when it is saved.

Written atomically (exclusive temporary file, fsync, rename, fsync of the directory) so a
crash leaves either the old or the new checkpoint, never a torn one. It lives in a volume
the application can write to, so it is opened without following symlinks and created
with mode 0600, and anything read from it is validated before use.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import os
import stat
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import TYPE_CHECKING, Any

from logtail import logs
from logtail.errors import ConfigError
from logtail.identity import FileId

if TYPE_CHECKING:
    from logtail.generation import Snapshot

VERSION = 2  # 2 added ``name``, ``later`` and ``done``; a version 1 checkpoint is read as well
READABLE = (1, 2)
# Generations of one path open at once: a handful in practice (rename rotations faster than the
# writer reopens); anything far larger is not ours.
MAX_GENERATIONS = 256
# A checkpoint for 1,024 files is about 300 KiB; anything far larger is not ours.
MAX_SIZE = 16 * 1024 * 1024


class Unusable(Exception):
    """Raised when a checkpoint exists but cannot be used; the message says why."""


@dataclass(frozen=True)
class Position:
    """Where to resume one followed path."""

    dev: int
    ino: int
    offset: int
    window_sha: str  # sha256 of the bytes just before ``offset``
    window_len: int
    mtime_ns: int  # of that file when saved: rotated files newer than this were written after it
    name: str = ""  # where the file was when saved (a hint: it is found by identity wherever it is now)
    # A file of this path that was read to its end and closed (a rotated generation, a copy):
    # after a restart it is known by identity and never read again as a "newer" file.
    done: bool = False
    # At offset 0 no bytes before the offset say which content it was: its first bytes then
    # (sha256 and length), so a file truncated since is told from itself and its copy is found.
    head_sha: str = ""
    head_len: int = 0
    # Where those first bytes are: past a leading hole of NUL bytes (a writer without O_APPEND
    # after a truncation), which every later content of the file and its copies start with too.
    head_at: int = 0

    @property
    def id(self) -> FileId:
        return FileId(self.dev, self.ino)

    @classmethod
    def of(cls, at: Snapshot) -> Position:
        return cls(
            dev=at.id.dev,
            ino=at.id.ino,
            offset=at.offset,
            window_sha=hashlib.sha256(at.window).hexdigest(),
            window_len=len(at.window),
            mtime_ns=at.mtime_ns,
            name=at.name,
            done=at.done,
            head_sha=hashlib.sha256(at.head).hexdigest() if at.head else "",
            head_len=len(at.head),
            head_at=at.head_at if at.head else 0,
        )


# Per followed path: the generations still to be read, oldest first. The first is where printing
# stopped; the later ones are files that came to the path since and are known by identity. Files
# read to their end (``done``) come first; they are saved in a list of their own.
Entry = tuple[Position, ...]


def parse(data: bytes) -> dict[str, Entry]:
    """Parse a checkpoint's bytes; raise Unusable with a one-line reason for anything else."""
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise Unusable(f"not valid JSON ({exc.__class__.__name__})") from None
    if not isinstance(doc, dict):
        raise Unusable("not a JSON object")
    if doc.get("version") not in READABLE:
        raise Unusable(f"unknown version {doc.get('version')!r} (this logtail writes {VERSION})")
    entries = doc.get("files")
    if not isinstance(entries, dict):
        raise Unusable("no 'files' object")
    return {path: _entry(path, entry) for path, entry in entries.items()}


def _entry(path: str, entry: Any) -> Entry:
    if not isinstance(entry, dict):
        raise Unusable(f"entry for {path!r} is not an object")
    later = entry.get("later", [])
    if not isinstance(later, list) or len(later) > MAX_GENERATIONS:
        raise Unusable(f"entry for {path!r} has no valid 'later' list")
    done = entry.get("done", [])
    if not isinstance(done, list) or len(done) > MAX_GENERATIONS:
        raise Unusable(f"entry for {path!r} has no valid 'done' list")
    return (
        *(replace(_position(path, item), done=True) for item in done),
        _position(path, entry),
        *(_position(path, item) for item in later),
    )


def _position(path: str, entry: Any) -> Position:
    if not isinstance(entry, dict):
        raise Unusable(f"entry for {path!r} is not an object")
    values: dict[str, Any] = {}
    for key, kind in (
        ("dev", int),
        ("ino", int),
        ("offset", int),
        ("window_sha", str),
        ("window_len", int),
        ("mtime_ns", int),
    ):
        value = entry.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise Unusable(f"entry for {path!r} has no valid {key!r}")
        if isinstance(value, int) and not 0 <= value < 2**64:
            raise Unusable(f"entry for {path!r} has {key!r} out of range")
        values[key] = value
    if values["window_len"] > values["offset"]:
        raise Unusable(f"entry for {path!r} has a window longer than its offset")
    name = entry.get("name", "")
    if not isinstance(name, str):
        raise Unusable(f"entry for {path!r} has no valid 'name'")
    head_sha, head_len = entry.get("head_sha", ""), entry.get("head_len", 0)
    if not isinstance(head_sha, str) or not isinstance(head_len, int) or isinstance(head_len, bool):
        raise Unusable(f"entry for {path!r} has no valid 'head_sha' or 'head_len'")
    if not 0 <= head_len <= 1 << 20:
        raise Unusable(f"entry for {path!r} has 'head_len' out of range")
    head_at = entry.get("head_at", 0)  # not in checkpoints written before it was
    if not isinstance(head_at, int) or isinstance(head_at, bool) or not 0 <= head_at < 2**64:
        raise Unusable(f"entry for {path!r} has no valid 'head_at'")
    return Position(**values, name=name, head_sha=head_sha, head_len=head_len, head_at=head_at)


def render(positions: dict[str, Entry]) -> bytes:
    files = {}
    for path, entry in sorted(positions.items()):
        live = [_fields(position) for position in entry if not position.done]
        if live:
            done = [_fields(position) for position in entry if position.done]
            files[path] = {**live[0], "later": live[1:], **({"done": done} if done else {})}
    return json.dumps({"version": VERSION, "files": files}, separators=(",", ":")).encode()


def _fields(position: Position) -> dict[str, Any]:
    fields = asdict(position)
    del fields["done"]  # said by the list it is in
    return fields


def load(path: str) -> dict[str, Entry] | None:
    """The saved positions, or None when there is no checkpoint yet. Raise Unusable otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unusable(exc.strerror or str(exc)) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise Unusable("not a regular file")
        data = os.read(fd, MAX_SIZE + 1)
    except OSError as exc:
        raise Unusable(exc.strerror or str(exc)) from None
    finally:
        os.close(fd)
    if len(data) > MAX_SIZE:
        raise Unusable(f"larger than {MAX_SIZE} bytes")
    return parse(data)


def save(path: str, positions: dict[str, Entry]) -> None:
    """Replace the checkpoint at ``path`` atomically with ``positions``."""
    directory = os.path.dirname(os.path.abspath(path))
    data = render(positions)
    tmp, fd = _create_temporary(path)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    os.close(fd)
    try:
        # rename() replaces a symlink planted at the final name; it never writes through it.
        os.rename(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def temporary_suffix() -> str:
    """An unpredictable part of a temporary name (os.urandom: ``secrets`` would import hmac and OpenSSL)."""
    return os.urandom(6).hex()


def _create_temporary(path: str) -> tuple[str, int]:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    for _ in range(100):
        tmp = f"{path}.{temporary_suffix()}.tmp"
        try:
            return tmp, os.open(tmp, flags, 0o600)
        except FileExistsError:
            continue  # something is at that name already, perhaps planted: never reuse it
    raise OSError(f"could not create a temporary file next to {path}")


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def check_writable(path: str) -> None:
    """Fail at start, not at the first save, when the checkpoint cannot be written where asked."""
    directory = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(directory):
        raise ConfigError(f"--checkpoint {path}: directory {directory} does not exist")
    try:
        tmp, fd = _create_temporary(path)
    except OSError as exc:
        raise ConfigError(
            f"--checkpoint {path}: cannot write in {directory}: {exc.strerror or exc}"
        ) from None
    os.close(fd)
    os.unlink(tmp)
    if os.path.isdir(path):
        raise ConfigError(f"--checkpoint {path}: is a directory")


def load_or_warn(path: str) -> dict[str, Entry] | None:
    """The saved positions; None (with one warning) when there are none or they cannot be used."""
    log = logs.get()
    try:
        saved = load(path)
    except Unusable as exc:
        log.warning("ignoring unusable checkpoint", path=path, reason=str(exc))
        return None
    if saved is None:
        log.warning("no checkpoint yet; starting as without one", path=path)
    return saved


# After a new file came to a path, the checkpoint is saved within this long (at most this often):
# a run killed before its first periodic save must not leave a checkpoint that knows nothing of
# the files it opened since (a symlink's target it followed, a renamed generation), whose late
# lines would then be found by nobody after the restart.
NEW_FILE_SAVE = 0.05


class Schedule:
    """When the checkpoint is saved: at most every ``interval`` while positions change, soon after a
    new file came to a path (``new_file``), and at exit."""

    def __init__(
        self,
        path: str,
        interval: float,
        positions: Callable[[], dict[str, Entry]],
        new_file: asyncio.Event | None = None,
    ) -> None:
        self._path = path
        self._interval = interval
        self._positions = positions
        self._lock = threading.Lock()
        self._numbers = itertools.count()
        self._saved_number = -1
        self.new_file = new_file or asyncio.Event()  # set whenever a new file is opened for a path
        self._durable: set[FileId] = set()  # the files the checkpoint on disk names
        self._saving: asyncio.Task[None] | None = None

    def loaded(self, saved: dict[str, Entry] | None) -> None:
        """The checkpoint found at start is on disk: the files it names need no save before a read."""
        self._durable = _ids(saved or {})

    async def known(self, file_id: FileId) -> None:
        """Return once the checkpoint on disk names ``file_id``.

        A follower awaits this before its first read of a file: what it prints from there would
        otherwise be the only trace of that file, and a SIGKILL before the next periodic save
        would lose the file's later lines (a symlink's next target, a renamed generation) to a
        restart that never heard of it. Callers at the same moment share one save.
        """
        while file_id not in self._durable:
            if self._saving is None or self._saving.done():
                self._saving = asyncio.create_task(self._save_now())
            await asyncio.shield(self._saving)

    async def _save_now(self) -> None:
        await asyncio.sleep(0)  # followers woken together (at start, one batch of events) join in
        positions = self._positions()
        if not await asyncio.to_thread(self._save, next(self._numbers), positions):
            # Not saved (a full disk, say): reading on beats stalling every stream on it.
            self._durable |= _ids(positions)

    async def run_forever(self) -> None:
        last: dict[str, Entry] = {}
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.new_file.wait(), self._interval)
                await asyncio.sleep(min(NEW_FILE_SAVE, self._interval))  # several files at once: one save
            self.new_file.clear()
            positions = self._positions()
            if positions != last and await asyncio.to_thread(self._save, next(self._numbers), positions):
                last = positions

    async def final(self) -> None:
        """The save at exit; taken after every follower has stopped, so it holds their last positions."""
        await asyncio.to_thread(self._save, next(self._numbers), self._positions())

    def _save(self, number: int, positions: dict[str, Entry]) -> bool:
        """Save in a worker thread; a save taken earlier never lands after one taken later.

        The periodic save can still be writing when the final one starts (cancelling its
        task does not stop its thread), so saves are serialised and numbered.
        """
        with self._lock:
            if number < self._saved_number:
                return True  # a later position is on disk already
            self._saved_number = number
            try:
                save(self._path, positions)
            except OSError as exc:
                logs.get().warning("could not save checkpoint", path=self._path, reason=str(exc))
                return False
            self._durable = _ids(positions)
            return True


def _ids(entries: dict[str, Entry]) -> set[FileId]:
    return {p.id for entry in entries.values() for p in entry if not p.done}
