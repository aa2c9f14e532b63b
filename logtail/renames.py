"""Where the files that were at one path went: the rename events that took them away, in order.

A logger can rename its file every few milliseconds; the directory's inotify rename events
say, in the order they happened, which name each file that was at the path now has. That
order is the order of the generations, whatever the names look like (``app.log.1``,
``@400000005f….s``), and a file renamed away from the path is a former generation, never a
copy of one.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections import OrderedDict
from collections.abc import Sequence

from logtail import files
from logtail.identity import FileId

# How many rename targets of a path to remember (a logger rotating every few milliseconds
# can rename many files between two looks).
MEMORY = 4096
# The rank of the file still at the path: after every file renamed away from it.
AT_PATH = float("inf")


class Renames:
    """The files renamed away from one path, each with its place in the order of renames.

    A target name can be used again and again (s6-log renames ``current`` to ``previous``
    at every rotation, then links it to ``@….s`` and unlinks ``previous``), so each rename
    is recorded with the identity of the file it moved, taken when the event arrives: the
    file is then found by identity wherever it went, even once that name is gone.
    """

    def __init__(self) -> None:
        self._names: OrderedDict[str, int] = OrderedDict()
        self._ids: OrderedDict[FileId, int] = OrderedDict()
        # When each renamed file was created (where the file system says): its inode number can be
        # given to another file once it is gone (gzipped, deleted), and that one is no former generation.
        self._born: dict[FileId, int | None] = {}
        self._counter = itertools.count()
        self._unseen: list[tuple[str, FileId | None]] = []

    def moved(self, to: str) -> None:
        """The file at the path was renamed to ``to``."""
        order = next(self._counter)
        self._names[to] = order
        self._names.move_to_end(to)
        file_id = None
        with contextlib.suppress(OSError):
            file_id = FileId.of(os.stat(to))
            self._ids[file_id] = order
            self._ids.move_to_end(file_id)
            self._born[file_id] = files.birth_ns(to, file_id.ino)
        self._unseen.append((to, file_id))
        while len(self._names) > MEMORY:
            self._names.popitem(last=False)
        while len(self._ids) > MEMORY:
            self._born.pop(self._ids.popitem(last=False)[0], None)
        del self._unseen[:-MEMORY]

    def linked(self, target: str, links: list[str]) -> None:
        """``target`` was unlinked after ``links`` were created: the file moved there is at one of them."""
        order = self._names.get(target)
        for at, (name, file_id) in enumerate(self._unseen):
            if name != target or file_id is not None or order is None:
                continue
            for link in links:
                try:
                    linked_id = FileId.of(os.stat(link))
                except OSError:
                    continue
                if linked_id not in self._ids:
                    self._ids[linked_id] = order
                    self._unseen[at] = (link, linked_id)
                    return
            return  # this rename's links are all gone or known: the next call is for the next rename

    @property
    def names(self) -> list[str]:
        """Every remembered target, oldest rename first."""
        return list(self._names)

    def take_unseen(self) -> list[tuple[str, FileId | None]]:
        """Renames reported since the last call: the target, and the file moved if it was still there."""
        unseen, self._unseen = self._unseen, []
        return unseen

    def rank(self, file_id: FileId, name: str) -> int | None:
        """The place of the file's rename in the order of renames, if it was reported."""
        if (order := self._ids.get(file_id)) is not None:
            return order
        return self._names.get(name)

    def is_former(self, file_id: FileId, born_ns: int | None = None) -> bool:
        """Whether ``file_id``, created at ``born_ns`` (if known), was renamed away from the path (a
        former generation, not a copy). A file born at another time than the one renamed is another
        file with its inode number (model seed 104: a copy taken for a generation gzipped before)."""
        if file_id not in self._ids:
            return False
        born = self._born.get(file_id)
        return born is None or born_ns is None or born == born_ns


def insertion_point(
    queued: Sequence[tuple[float | None, int]], first_started: bool, mine: tuple[float | None, int]
) -> int:
    """Where a generation goes in a queue of generations, each given as (rank, mtime_ns).

    The rank is the place of the file's rename away from the path (``AT_PATH`` for the file
    still there, None when no rename of it was reported: deleted, or not reported yet). It
    goes before the first queued one that came after it: by rank where both have one, by
    modification time otherwise (a single writer writes a file before the next one); never
    before the first one once its printing has started.
    """
    my_rank, my_mtime = mine
    for k, (rank, mtime) in enumerate(queued):
        if k == 0 and first_started:
            continue
        if rank is not None and my_rank is not None:
            after = rank > my_rank
        else:
            after = rank == AT_PATH or mtime > my_mtime
        if after:
            return k
    return len(queued)
