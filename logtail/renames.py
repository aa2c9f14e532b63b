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

from logtail.identity import FileId

# How many rename targets of a path to remember (a logger rotating every few milliseconds
# can rename many files between two looks).
MEMORY = 4096
# The rank of a file whose rename away from the path has not been reported (yet): it was
# renamed after every one that was. The file still at the path ranks after all of them.
UNREPORTED = 1e18
AT_PATH = float("inf")


class Renames:
    """The names files at one path were renamed to, each with its place in the order of renames."""

    def __init__(self) -> None:
        self._order: OrderedDict[str, int] = OrderedDict()
        self._counter = itertools.count()
        self._unseen: list[str] = []
        self._former: OrderedDict[FileId, None] = OrderedDict()

    def moved(self, to: str) -> None:
        """The file at the path was renamed to ``to``."""
        if to not in self._order:
            self._unseen.append(to)
        self._order[to] = next(self._counter)
        self._order.move_to_end(to)
        with contextlib.suppress(OSError):
            self._former[FileId.of(os.stat(to))] = None
        for memory in (self._order, self._former):
            while len(memory) > MEMORY:
                memory.popitem(last=False)

    @property
    def names(self) -> list[str]:
        """Every remembered target, oldest rename first."""
        return list(self._order)

    def take_unseen(self) -> list[str]:
        """Targets reported since the last call."""
        unseen, self._unseen = self._unseen, []
        return unseen

    def rank(self, name: str) -> int | None:
        """The place of the rename to ``name`` in the order of renames, if it was reported."""
        return self._order.get(name)

    def is_former(self, file_id: FileId) -> bool:
        """Whether ``file_id`` was renamed away from the path (a former generation, not a copy)."""
        return file_id in self._former


def insertion_point(ranks: Sequence[float], first_started: bool, mine: float) -> int:
    """Where a generation of rank ``mine`` goes in a queue whose generations have ``ranks``.

    Before the first queued one that ranks after it; never before the first one once its
    printing has started.
    """
    for k, theirs in enumerate(ranks):
        if k == 0 and first_started:
            continue
        if theirs > mine:
            return k
    return len(ranks)
