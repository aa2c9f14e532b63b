"""Which paths to follow now: the named paths and the glob matches, under which root, within --max-files."""

from __future__ import annotations

import glob
import os
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from logtail import files, locate, logs
from logtail.config import Config, StreamSpec
from logtail.identity import FileId, Registry


@dataclass(frozen=True)
class Candidate:
    """A path to start following: its stream name, the directory symlinks must stay in, how it was named."""

    path: str
    name: str
    root: str  # what the user named: a PATH's directory, or the fixed part of a glob
    glob_member: bool


def glob_base(pattern: str) -> str:
    """The deepest directory of a glob without wildcards: the one to watch for new matches."""
    parts = pattern.split(os.sep)
    fixed = []
    for part in parts[:-1]:
        if glob.has_magic(part):
            break
        fixed.append(part)
    return os.sep.join(fixed) or os.sep


def directories(streams: Collection[StreamSpec], followed: Iterable[str]) -> set[str]:
    """The directories whose changes matter: those of named paths, glob bases, and ``followed``
    (the directories of the files followed now)."""
    dirs = {os.path.dirname(spec.pattern) for spec in streams if not spec.is_glob}
    dirs |= glob_bases(streams)
    dirs.update(followed)
    return dirs


def glob_bases(streams: Collection[StreamSpec]) -> set[str]:
    return {glob_base(spec.pattern) for spec in streams if spec.is_glob}


def ignored(path: str, checkpoint: str | None, is_dir: bool) -> bool:
    """Glob matches never followed: directories, compressed rotations, logtail's own checkpoint."""
    if checkpoint and (path == checkpoint or (path.startswith(checkpoint + ".") and path.endswith(".tmp"))):
        return True
    return is_dir or path.lower().endswith(locate.COMPRESSED)


class Discovery:
    """Finds the paths to follow; reports refused matches and matches past --max-files once each."""

    def __init__(self, config: Config, registry: Registry, warnings: logs.Warnings) -> None:
        self._config = config
        self._registry = registry
        self._warnings = warnings
        self._skipped_for_limit: set[str] = set()

    def new(self, followed: Collection[str], at_start: bool = False) -> list[Candidate]:
        """Paths that the arguments name now and that are not ``followed`` yet."""
        found: list[Candidate] = []
        for spec in self._config.streams:
            if spec.is_glob:
                paths = sorted(glob.glob(spec.pattern))
                if at_start and not paths:
                    logs.get().warning("no file matches yet; watching for them", pattern=spec.pattern)
                root = glob_base(spec.pattern)
                for path in paths:
                    if path in followed or ignored(path, self._config.checkpoint, os.path.isdir(path)):
                        continue
                    if self._admit(path, len(followed) + len(found)):
                        found.append(Candidate(path, spec.name_for(path), root, glob_member=True))
            elif (
                at_start
                and spec.pattern not in followed
                and (self._config.follow or os.path.exists(spec.pattern))
            ):
                root = os.path.dirname(spec.pattern)
                found.append(Candidate(spec.pattern, spec.name_for(spec.pattern), root, glob_member=False))
        return found

    def _admit(self, path: str, following: int) -> bool:
        """Whether a glob match may be followed: a regular file, within the cap, not read elsewhere."""
        try:
            st = os.stat(path)
        except OSError:
            return False
        reason = files.refusal(st)
        if reason:
            self._warnings.once("not following file", path, reason=reason)
            return False
        if following >= self._config.max_files:
            if path not in self._skipped_for_limit:
                self._skipped_for_limit.add(path)
                logs.get().warning(
                    "not following file: --max-files reached", path=path, max_files=self._config.max_files
                )
            return False
        # A glob that also matches rotated names: a generation read by another path's follower.
        return not self._registry.read_elsewhere(path, FileId.of(st))
