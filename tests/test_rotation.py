"""The pure rotation decisions, as tables of stat results."""

from __future__ import annotations

import os
import stat

import pytest

from logtail.files import inside, refusal
from logtail.identity import FileId
from logtail.rotation import Change, classify, retire_delay


def st(ino: int = 1, size: int = 100, dev: int = 7, mode: int = stat.S_IFREG | 0o644) -> os.stat_result:
    return os.stat_result((mode, ino, dev, 1, 0, 0, size, 0, 0, 0))


FOLLOWED = FileId(dev=7, ino=1)


@pytest.mark.parametrize(
    ("followed", "consumed", "at_path", "intact", "change"),
    [
        (FOLLOWED, 50, st(size=100), True, Change.UNCHANGED),  # grew: read on
        (FOLLOWED, 100, st(size=100), True, Change.UNCHANGED),  # idle
        (FOLLOWED, 100, None, True, Change.MISSING),  # renamed or deleted, not re-created yet
        (None, 0, None, True, Change.MISSING),  # never seen
        (None, 0, st(), True, Change.APPEARED),
        (FOLLOWED, 100, st(ino=2, size=0), True, Change.REPLACED),  # rename + create
        (FOLLOWED, 100, st(ino=1, dev=8), True, Change.REPLACED),  # same inode number, other device
        (FOLLOWED, 100, st(size=10), True, Change.TRUNCATED),  # truncate / copytruncate
        (FOLLOWED, 100, st(size=0), True, Change.TRUNCATED),
        (FOLLOWED, 100, st(size=500), False, Change.TRUNCATED),  # truncated and refilled past our offset
    ],
)
def test_classify(
    followed: FileId | None, consumed: int, at_path: os.stat_result | None, intact: bool, change: Change
) -> None:
    """Each combination of followed file, consumed bytes and what is at the path has one meaning."""
    assert classify(followed, consumed, at_path, intact) is change


@pytest.mark.parametrize(
    ("next_has_data", "idle", "wait", "draining", "delay", "is_copy"),
    [
        (False, 100.0, 1.0, False, None, False),  # the writer may not have reopened yet: keep the old file
        (
            True,
            0.2,
            1.0,
            False,
            pytest.approx(0.8),
            False,
        ),  # the old file was written just now: wait a little
        (True, 5.0, 1.0, False, 0.0, False),  # quiet long enough: close it
        (True, 0.0, 0.0, False, 0.0, False),
        (False, 0.0, 1.0, True, 0.0, False),  # shutting down: everything is read in order anyway
        (False, 0.0, 1.0, False, 0.0, True),  # a copytruncate copy is written by nobody: close once read
    ],
)
def test_retire_delay(
    next_has_data: bool, idle: float, wait: float, draining: bool, delay: object, is_copy: bool
) -> None:
    """A rotated-away file is closed only once its successor has data and it has been quiet."""
    assert retire_delay(next_has_data, idle, wait, draining, is_copy) == delay


@pytest.mark.parametrize(
    ("mode", "reason"),
    [
        (stat.S_IFREG, None),
        (stat.S_IFDIR, "is a directory"),
        (stat.S_IFIFO, "is a FIFO (reading it would block)"),
        (stat.S_IFSOCK, "is a socket"),
        (stat.S_IFCHR, "is a device file"),
        (stat.S_IFBLK, "is a device file"),
    ],
)
def test_refusal(mode: int, reason: str | None) -> None:
    """Only regular files are followed; every other type has a reason."""
    assert refusal(st(mode=mode | 0o644)) == reason


@pytest.mark.parametrize(
    ("directory", "target", "result"),
    [
        ("/var/log", "/var/log/app.log", True),
        ("/var/log", "/var/log/sub/app.log", True),
        ("/var/log", "/var/logs/app.log", False),  # a prefix of the name is not inside
        ("/var/log", "/etc/shadow", False),
        ("/var/log", "/var/run/secrets/kubernetes.io/serviceaccount/token", False),
    ],
)
def test_inside(directory: str, target: str, result: bool) -> None:
    """A symlink target is inside a directory only below it, not beside it with a longer name."""
    assert inside(directory, target) is result
