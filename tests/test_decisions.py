"""Table tests of the pure decisions: where to resume, where to start, what a look at the path means,
when a glob member is finished, what a sweep looks at and which followers an inotify batch wakes."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import pytest

from logtail import discovery, locate
from logtail.changes import to_look, wakes_for
from logtail.checkpoint import Position
from logtail.config import FIRST_LINE, StartAt, StreamSpec
from logtail.identity import FileId
from logtail.locate import Found, Step
from logtail.renames import AT_PATH, insertion_point
from logtail.rotation import Change, glob_member_ending, interpret
from logtail.watch import (
    IN_ATTRIB,
    IN_CREATE,
    IN_DELETE,
    IN_MODIFY,
    IN_MOVED_FROM,
    IN_MOVED_TO,
    IN_Q_OVERFLOW,
    Event,
)

# -- where to resume ------------------------------------------------------------------------------

A, B, C, D = (FileId(1, n) for n in (10, 11, 12, 13))


def found(name: str, file_id: FileId, mtime: int) -> Found:
    return Found(f"/logs/{name}", file_id, mtime, 1000)


def saved_at(file_id: FileId, offset: int, mtime: int) -> Position:
    return Position(file_id.dev, file_id.ino, offset, "", 0, mtime)


@pytest.mark.parametrize(
    ("current", "siblings", "saved", "located", "steps", "all_found"),
    [
        pytest.param(
            found("app.log", A, 5),
            [],
            [saved_at(A, 300, 5)],
            ["app.log"],
            [("app.log", 300)],
            True,
            id="not rotated",
        ),
        pytest.param(
            found("app.log", C, 9),
            [found("app.log.1", B, 7), found("app.log.2", A, 5)],
            [saved_at(A, 300, 5)],
            ["app.log.2"],
            [("app.log.2", 300), ("app.log.1", 0), ("app.log", 0)],
            True,
            id="renamed twice while down: the rest, the one between, the new file",
        ),
        pytest.param(
            found("app.log", A, 9),
            [found("app.log.1", B, 7)],
            [saved_at(A, 300, 5)],
            ["app.log.1"],
            [("app.log.1", 300), ("app.log", 0)],
            True,
            id="copytruncate while down: the rest from the copy, then the file from its start",
        ),
        pytest.param(
            found("app.log", C, 9),
            [found("app.log.1", B, 1)],
            [saved_at(A, 300, 5)],
            [None],
            [("app.log", 0)],
            False,
            id="checkpointed file gone: only generations newer than the checkpoint",
        ),
        pytest.param(
            found("app.log", B, 9),
            [],
            [saved_at(A, 300, 5), saved_at(B, 0, 6)],
            ["app-3.log", "app.log"],
            [("app-3.log", 300), ("app.log", 0)],
            True,
            id="a rotated-away generation still being read when saved, found under any name",
        ),
        pytest.param(
            found("app.log", D, 9),
            [found("app.log.1", C, 8)],
            [saved_at(A, 300, 5), saved_at(B, 0, 6)],
            [None, "app.log.2"],
            [("app.log.2", 0), ("app.log.1", 0), ("app.log", 0)],
            False,
            id="first gone, second found: then everything written since the newest saved one",
        ),
        pytest.param(
            None,
            [found("app.log.1", A, 5)],
            [saved_at(A, 300, 5)],
            ["app.log.1"],
            [("app.log.1", 300)],
            True,
            id="renamed and not re-created yet",
        ),
    ],
)
def test_plan_resume(
    current: Found | None,
    siblings: list[Found],
    saved: list[Position],
    located: list[str | None],
    steps: list[tuple[str, int]],
    all_found: bool,
) -> None:
    """Resume every saved generation where it is now, then every generation written since, then the
    file at the path."""
    ids = {f.path.rsplit("/", 1)[1]: f.id for f in ([current] if current else []) + siblings}
    where = [
        None if name is None else Found(f"/logs/{name}", ids.get(name, pos.id), pos.mtime_ns, 1000)
        for name, pos in zip(located, saved, strict=True)
    ]
    planned, found_all = locate.plan_resume(current, siblings, saved, where)
    assert [(step.path.rsplit("/", 1)[1], step.offset) for step in planned] == steps
    assert found_all is all_found
    assert all(isinstance(step, Step) for step in planned)


def test_plan_resume_never_reads_a_file_read_to_its_end_again() -> None:
    """A file the checkpoint says was read to its end (a copytruncate's copy whose mtime ties with the
    truncation) is known again as done, not taken for a generation written since."""
    current = found("app.log", B, 9)
    copy = found("app.log.6", C, 7)  # as new as the saved position: the copy and the truncate, one tick
    saved = [saved_at(A, 0, 7)]
    planned, found_all = locate.plan_resume(current, [copy], saved, [None], done=[copy])
    assert [(step.path.rsplit("/", 1)[1], step.offset, step.done) for step in planned] == [
        ("app.log.6", copy.size, True),
        ("app.log", 0, False),
    ]
    assert not found_all
    # Without the file known as done, the same listing reads it again from its first byte:
    again, _ = locate.plan_resume(current, [copy], saved, [None])
    assert ("app.log.6", 0) in [(step.path.rsplit("/", 1)[1], step.offset) for step in again]


# -- where a file without a saved position starts -------------------------------------------------

LAST_5 = StartAt(5, from_start=False)


@pytest.mark.parametrize(
    ("at_start", "resuming", "exists", "start"),
    [
        (True, False, True, LAST_5),  # -n applies to files present at start
        (False, False, True, None),  # a file that appears later: from its first byte
        (True, True, True, None),  # missing from a checkpoint in use: it appeared while logtail was down
        (True, False, False, None),  # named but not there yet
    ],
)
def test_first_start(at_start: bool, resuming: bool, exists: bool, start: StartAt | None) -> None:
    assert locate.first_start(at_start=at_start, resuming=resuming, exists=exists, start_at=LAST_5) == start
    assert locate.first_start(at_start=True, resuming=False, exists=True, start_at=FIRST_LINE) == FIRST_LINE


# -- what a look at the path means ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "glob_member", "elsewhere", "meaning"),
    [
        (Change.APPEARED, True, True, Change.MISSING),  # app.log.1 matched by *.log*, read as app.log's past
        (Change.REPLACED, True, True, Change.MISSING),
        (Change.APPEARED, True, False, Change.APPEARED),
        (Change.APPEARED, False, True, Change.APPEARED),  # a named path is always ours
        (Change.TRUNCATED, True, True, Change.TRUNCATED),
        (Change.UNCHANGED, True, True, Change.UNCHANGED),
    ],
)
def test_interpret(change: Change, glob_member: bool, elsewhere: bool, meaning: Change) -> None:
    assert interpret(change, glob_member, elsewhere) is meaning


# -- when a glob member is finished ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("missing", "open_files", "idle_for", "ending"),
    [
        (False, 1, 100.0, None),  # still at its path
        (True, 2, 100.0, None),  # older generations still open
        (True, 0, 0.0, 0.0),  # gone before it could be opened
        (True, 1, 5.0, 0.0),  # gone, and quiet for longer than rotate-wait
        (True, 1, 0.25, 0.75),  # gone, written 0.25 s ago: look again when rotate-wait has passed
    ],
)
def test_glob_member_ending(missing: bool, open_files: int, idle_for: float, ending: float | None) -> None:
    assert glob_member_ending(missing, open_files, idle_for, rotate_wait=1.0) == ending


# -- what a sweep looks at ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("covered", "full", "has_rotated", "via_symlink", "look"),
    [
        (True, False, False, False, False),  # inotify covers it: only in a full sweep
        (True, True, False, False, True),
        (False, False, False, False, True),  # inotify unavailable for its directory
        (None, False, False, False, True),  # --poll
        (True, False, True, False, True),  # an old generation may have left the directory
        (True, False, False, True, True),  # writes to a symlink's target are seen elsewhere
    ],
)
def test_to_look(covered: bool | None, full: bool, has_rotated: bool, via_symlink: bool, look: bool) -> None:
    follower = FakeFollower("/logs/app.log", "/logs", has_rotated=has_rotated, via_symlink=via_symlink)
    idle = FakeFollower("/logs/idle.log", "/logs")
    watching = None if covered is None else {"/logs": covered}.__getitem__
    looked = to_look([follower, idle], full=full, watching=watching)
    assert (follower in looked) is look
    assert (idle in looked) is (full or not covered)


# -- which followers an inotify batch wakes -------------------------------------------------------


@dataclass
class FakeFollower:
    path: str
    directory: str = ""
    has_rotated: bool = False
    via_symlink: bool = False
    woken: list[int] = field(default_factory=list)

    def wake(self) -> None:
        self.woken.append(1)

    def signature(self) -> tuple[Any, ...]:
        return ()


def test_wakes_for() -> None:
    """A batch of nothing but writes to a followed name asks its follower to read on; anything else
    about the name (a rename, a delete, a new file) wakes it to look; a write to another name wakes
    the followers of that directory that still read a rotated-away file; a new name means discovery;
    an overflow wakes everyone."""
    app = FakeFollower("/logs/app.log", "/logs")
    rotated = FakeFollower("/logs/web.log", "/logs", has_rotated=True)
    other = FakeFollower("/other/app.log", "/other", has_rotated=True)
    followers = {f.path: f for f in (app, rotated, other)}

    written, woken, discover = wakes_for([Event("/logs", "app.log", IN_MODIFY, 0)] * 50, followers)
    assert (written, woken, discover) == ([app], [], False)
    written, woken, discover = wakes_for([Event("/logs", "web.log.1", IN_MODIFY, 0)], followers)
    assert (written, woken, discover) == ([], [rotated], False)
    # A write to the renamed file and a new file at the name, in either order with the writes: look.
    for events in (
        [Event("/logs", "app.log", IN_MODIFY, 0), Event("/logs", "app.log", IN_CREATE, 0)],
        [Event("/logs", "app.log", IN_CREATE, 0), Event("/logs", "app.log", IN_MODIFY, 0)],
        [Event("/logs", "app.log", IN_DELETE, 0), Event("/logs", "app.log", IN_MODIFY, 0)],
        [Event("/logs", "app.log", IN_ATTRIB, 0)],
    ):
        written, woken, discover = wakes_for(events, followers)
        assert written == [], events
        assert app in woken, events
    written, woken, discover = wakes_for(
        [Event("/logs", "app.log", IN_MOVED_FROM, 7), Event("/logs", "app.log.1", IN_MOVED_TO, 7)], followers
    )
    assert written == []
    assert set(map(id, woken)) == {id(app), id(rotated)}
    assert discover
    # A follower that reads a rotated-away file looks at every event of its directory.
    written, woken, discover = wakes_for([Event("/logs", "web.log", IN_MODIFY, 0)], followers)
    assert (written, woken) == ([rotated], [])
    written, woken, discover = wakes_for(
        [Event("/logs", "web.log", IN_MODIFY, 0), Event("/logs", "web.log.1", IN_MODIFY, 0)], followers
    )
    assert (written, woken) == ([], [rotated])
    written, woken, discover = wakes_for([Event("/logs", "new.log", IN_CREATE, 0)], followers)
    assert discover
    written, woken, discover = wakes_for([Event(None, None, IN_Q_OVERFLOW, 0)], followers)
    assert written == []
    assert len(woken) == 3
    assert discover


# -- discovery ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "base"),
    [
        ("/logs/*.log", "/logs"),
        ("/logs/*/app.log", "/logs"),
        ("/logs/a/b[0-9]/*.log", "/logs/a"),
        ("/*.log", "/"),
    ],
)
def test_glob_base(pattern: str, base: str) -> None:
    assert discovery.glob_base(pattern) == base


@pytest.mark.parametrize(
    ("path", "is_dir", "skip"),
    [
        ("/logs/app.log", False, False),
        ("/logs/app.log.2.gz", False, True),  # compressed rotations are never read as text
        ("/logs/APP.LOG.XZ", False, True),
        ("/logs/sub", True, True),
        ("/state/ck.json", False, True),  # logtail's own checkpoint
        ("/state/ck.json.1a2b.tmp", False, True),  # ... and its temporary files
    ],
)
def test_ignored(path: str, is_dir: bool, skip: bool) -> None:
    assert discovery.ignored(path, "/state/ck.json", is_dir) is skip


def test_directories_to_watch() -> None:
    streams = [StreamSpec("/logs/app.log", None), StreamSpec("/var/*/x.log", None)]
    assert discovery.directories(streams, ["/data"]) == {"/logs", "/var", "/data"}


# -- where a generation found between two looks goes ----------------------------------------------


@pytest.mark.parametrize(
    ("queued", "first_started", "mine", "at"),
    [
        ([], False, (5, 50), 0),
        ([(1, 10), (2, 20), (9, 90)], True, (5, 50), 2),  # between the renames reported before and after
        ([(7, 70), (9, 90)], True, (5, 50), 1),  # never before the generation being printed
        ([(7, 70), (9, 90)], False, (5, 50), 0),  # ... but before one not started yet
        ([(1, 10), (None, 40)], True, (5, 50), 2),  # a deleted file written before it stays before it
        ([(1, 10), (None, 60)], True, (5, 50), 1),  # ... one written after it goes after
        ([(1, 10), (AT_PATH, 0)], True, (None, 99), 1),  # everything goes before the file at the path
    ],
)
def test_insertion_point(
    queued: list[tuple[float | None, int]], first_started: bool, mine: tuple[float | None, int], at: int
) -> None:
    assert insertion_point(queued, first_started, mine) == at


def test_plan_resume_places_a_file_saved_while_empty_by_its_modification_time() -> None:
    """A generation saved at offset 0 while still empty says nothing of its content: when a copy of it
    was made and it was truncated and written again while logtail was down (SIGKILL before the next
    save), the copy, written first, is read first (model seed 13: the copy was read after it)."""
    current = found("app.log", C, 9)
    renamed = found("app.log.5", A, 8)  # the saved file, renamed and written again since
    copy = found("app.log.3", B, 6)  # its copy, made before that
    saved = [saved_at(A, 0, 5)]
    planned, found_all = locate.plan_resume(current, [copy, renamed], saved, [renamed])
    assert [(step.path.rsplit("/", 1)[1], step.offset) for step in planned] == [
        ("app.log.3", 0),
        ("app.log.5", 0),
        ("app.log", 0),
    ]
    assert found_all


@pytest.mark.parametrize(
    ("born", "order"),
    [
        (7, ["app.log.3", "app.log.5", "app.log"]),  # a copy, made before the saved file's truncation
        (8, ["app.log.5", "app.log.3", "app.log"]),  # a generation created once it was renamed away
        (None, ["app.log.5", "app.log.3", "app.log"]),  # birth time unknown: as before
    ],
)
def test_plan_resume_orders_a_sibling_tied_with_a_file_saved_while_empty_by_its_birth(
    born: int | None, order: list[str]
) -> None:
    """The saved-while-empty file was copytruncated, written and renamed away while logtail was down,
    all in one clock tick: its copy has its mtime. Born before the file last changed (the truncation
    after the copy), the copy holds what the file had first (model seeds 360, 374, 399); born after it
    (created at the path once the file was renamed away), it is a later generation."""
    current = found("app.log", C, 9)
    renamed = replace(found("app.log.5", A, 6), ctime_ns=8)  # renamed away at 8
    sibling = replace(found("app.log.3", B, 6), birth_ns=born)
    planned, _ = locate.plan_resume(current, [sibling, renamed], [saved_at(A, 0, 5)], [renamed])
    assert [step.path.rsplit("/", 1)[1] for step in planned] == order


def test_plan_resume_keeps_the_file_at_the_path_last_when_both_were_saved_empty() -> None:
    """SIGTERM between a rename and the writer's reopen, both files empty when saved: the renamed one,
    written while logtail was down, is read before the file at the path, which stays last (model
    seed 93: the file at the path was left out of the plan)."""
    current = found("app.log", B, 5)
    renamed = found("app.log.2", A, 8)
    planned, _ = locate.plan_resume(
        current, [renamed], [saved_at(A, 0, 4), saved_at(B, 0, 4)], [renamed, current]
    )
    assert [(step.path.rsplit("/", 1)[1], step.offset) for step in planned] == [
        ("app.log.2", 0),
        ("app.log", 0),
    ]


def test_plan_resume_reads_the_copy_of_the_file_at_the_path_saved_while_empty() -> None:
    """The file at the path was saved while empty, then written and copytruncated while logtail was
    down: the copy, made since, holds what it had and is read before it (model seed 161: the copy was
    left out, its lines lost); a sibling older than the save is not."""
    current = found("app.log", A, 9)
    copy = found("app.log.7", B, 8)
    older = found("app.log.5", C, 3)
    planned, found_all = locate.plan_resume(current, [older, copy], [saved_at(A, 0, 5)], [current])
    assert [(step.path.rsplit("/", 1)[1], step.offset) for step in planned] == [
        ("app.log.7", 0),
        ("app.log", 0),
    ]
    assert found_all
