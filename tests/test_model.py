"""Model-based randomized end-to-end test: seeded sequences of real file operations against a real
logtail subprocess, checked against a model of what a perfect tailer must print.

Two streams are followed by one logtail (``--checkpoint``):

- ``A`` (``app.log``): one in-process writer (``O_APPEND`` or not, chosen per seed) that is renamed
  away with late writes into the renamed file before it reopens (logrotate ``create`` with a late
  postrotate), copytruncated (``cp`` then truncate, optionally with lines written in between),
  truncated in place, deleted and re-created (with late writes into the deleted file), and whose
  old generations (``app.log.K``) are gzipped.
- ``B`` (``current.log -> app-N.log``): a writer of ``app-N.log`` whose symlink is retargeted to a
  new ``app-N+1.log`` (optionally with late writes into the old target); old targets are gzipped.

Lines are ``A0000012 xxx…`` (stream letter, 7-digit sequence number per stream, 40 ``x``), written
one ``write(2)`` per line, several lines in one ``write``, or each line split across two writes.
logtail itself is SIGSTOPped and SIGCONTed (a throttled sidecar), stopped with SIGTERM or
SIGKILL and restarted later from its checkpoint (so rotations happen while it is down).

The pure part (``generate``, ``Model``) is deterministic from the seed; the driver (``Driver``)
runs the operations on real files and a real subprocess. Timing between operations is not
reproducible, so a failure that depends on a race may need a few runs of its seed.

The model's rules
-----------------

A line belongs to one stream and is numbered in write order. Every file a line was written into
is tracked (a copy holds the same lines as its original); a file is *destroyed* by a truncation
(its current lines), by deletion or gzip (unless logtail holds it open, see below), and a line
with no file left is *destroyed*.

- **Settle** points: the driver waits (with a deadline) until logtail has printed every required
  line written so far; a line written before a settle is *settled*: logtail has printed it.
- **Start**: logtail counts as up once it has opened the files now at both paths and saved a
  checkpoint that names them (the driver waits for that; the previous run's checkpoint does not
  count): a reader killed before it ever looked, or before it saved what it found, cannot know more.
- **Seen** symlink targets: the first target, the target at each start, and the target at a
  settle when it holds a line. A target the link leaves before logtail was shown to open it (it
  pointed there only while logtail was stopped, down, or between two settles) is *unreachable*:
  nothing names it any more, so its lines are destroyed (for the reader) like a deleted file's.
  A seen target stays reachable: after a retarget while logtail is down its rest is required.
- **Held** files: at a settle, the file at each followed path that currently holds a line is
  open in logtail (it printed that line, and the newest generation of a path is never closed).
  A held file stays readable through logtail's descriptor after it is deleted or gzipped, also
  while logtail is SIGSTOPped; nothing is held after logtail exits (SIGTERM, SIGKILL), and a
  deleted held file is destroyed by a SIGKILL (a SIGTERM drains it first).

From these:

- **required**: every line that is not destroyed, and every destroyed line that was settled
  before its destruction. This includes lines written into a renamed file after the rename, into
  a deleted file logtail holds, into a file while logtail is stopped or down, as long as that file
  (or a copy holding the line) still exists or is held; and lines in a copytruncate's copy.
- **optional** (may be missing, at most once if printed): a line destroyed before it was settled:
  written between copytruncate's copy and its truncate; in a file truncated before a settle
  covered it; in a file deleted or gzipped (and a copy holding it too) while not held, e.g.
  written while logtail was stopped or down and then deleted before SIGCONT / restart.
- **abandoned** (must never appear, not even in part): a line whose first half was written and
  whose file was then truncated; the writer goes on with the next line. Printing the fragment
  as a line is a failure, and so is printing it whole (its first half glued to the tail of the
  next line after the truncation).
- **order and repeats**: per stream, the printed numbers are strictly increasing. The only
  allowed repeat: the first lines of a stream printed by a run that follows a SIGKILL may
  repeat, as one contiguous stretch, the lines of that stream printed last before the kill
  (the unsaved checkpoint interval), counting what the killed run printed as a replay itself
  when it was killed before its first save; lines no file holds any more at the restart are left
  out of that stretch (a restart cannot print them again). After SIGTERM nothing may repeat.

Running it
----------

CI runs the seeds in ``CI_SEEDS`` and ``REGRESSION_SEEDS``, never rerun (a loss seen once is a bug;
seeds that still fail are listed in ``KNOWN_FAILING``, with the reason). By hand, any number of
seeds, stopping at the first failure::

    LOGTAIL_MODEL_SEEDS=0-499 python -m pytest tests/test_model.py -k model_seed --runxfail -x

(``LOGTAIL_MODEL_SEEDS`` takes ranges and single seeds: ``0-99,250,300-310``; drop ``-x`` to count
failures; ``LOGTAIL_MODEL_DUMP=DIR`` writes each run's stdout and stderr of a failing seed under
``DIR/SEED/``.) A seed takes 1-2 s (30 operations); a settle that times out adds 10 s. A failure
prints the seed, the operations, and the missing, repeated and out-of-order line numbers with
the operation and file each was written by and into.

Options: ``--poll-interval 0.2`` (symlinked paths and rotated-away files are looked at with stat
every poll interval; inotify does the rest) and ``--rotate-wait 0.2`` (the writers are single
processes: they never write into an old generation once the new one has data, so the wait only
delays the switch, and 0.2 s keeps it well above scheduling jitter on a loaded machine while
keeping each sequence short); ``--checkpoint-interval 0.3`` keeps a SIGKILL's replay short.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import signal
import subprocess
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import pytest
from support import Logtail, observe
from writers import ranges

PAD = "x" * 40
LINE = re.compile(rb"^([AB])(\d{7}) (x{40})\n$")
STREAMS = ("A", "B")
ROTATE_WAIT = "0.2"
POLL_INTERVAL = "0.2"
CHECKPOINT_INTERVAL = "0.3"
SETTLE_TIMEOUT = 10.0
SPLIT_PAUSE = 0.003  # between the two halves of a split line: long enough to be read in between

CI_SEEDS = list(range(8))
# Seeds that failed against the code of 2026-12-02 (before issue 11's fix), one per failure class:
REGRESSION_SEEDS = [
    14,  # after a restart, writes into current.log's target go unnoticed for up to 30 s: the resumed
    #      follower is not marked via_symlink, so only the full sweep looks (B lines not printed)
    24,  # symlink retargeted while logtail is down: the rest of the old target (app-5.log) is lost
    57,  # a file queued while empty, filled, copytruncated and renamed before logtail read it: the
    #      lines that are only in the copy are lost, or read after newer ones (out of order)
    74,  # copytruncate then rename before logtail looks: the copy is read again as a missed
    #      generation (A lines printed twice)
    8,  # copytruncate, SIGTERM (the copy read to its end in the drain), rename while down: after the
    #     restart the copy, as new as the truncation within one mtime tick, was read again as a newer
    #     generation (A lines printed twice and out of order); the checkpoint now keeps it as done
    13,  # SIGKILL before the checkpoint after the first lines was saved (app.log saved at offset 0,
    #      empty), copytruncate, partial truncate and rename while down: the copy was read after the
    #      renamed file (out of order); a file saved while empty is now placed by its mtime
    12,  # a truncation of app.log not seen before it was renamed away: the renamed file is read from
    #      the old offset, so the line written into it after the truncation is lost
    169,  # copytruncate, then rename and SIGTERM before logtail looked: the drain's read stops at the
    #       end seen (below the read offset) without noticing the truncation, and the copy, queued as
    #       a missed generation (its mtime ties with the truncation), is read from its first byte
    #       (A lines printed twice)
    192,  # a deleted file and the new app.log saved, app.log copytruncated while down: only the first
    #       saved generation could be found in a copy, so the copy was read again from its first byte
    #       as a newer generation (A lines printed twice)
    96,  # a renamed file resumed after SIGKILL, read to its end by the SIGTERM drain (kept, not
    #      retired), then taken for a copy of the empty app.log queued before it was written and
    #      truncated: read again from its first byte (A lines printed twice)
    27,  # SIGKILL within milliseconds of a restart that had printed from a new symlink target: the
    #      checkpoint did not name it yet, so its later lines were lost; a file is now in the
    #      checkpoint before anything is printed from it (and the driver waits for this run's save)
    161,  # an empty app.log saved, gzipped while down, its inode number reused by a later generation:
    #       that one was taken for the saved file and read before an older one whose mtime it ties
    47,  # the next generation renamed away within the tick of a file queued empty, its rename event
    #      still in flight: taken (by the mtime tie) for that file's copy and read first
    151,  # a SIGKILL's replay of a copy, followed by lines printed from a file deleted (and so destroyed
    #       by the kill) or truncated since: the replay is the tail of what is still on disk
    199,  # copytruncate, delete and gzip of the copy before logtail looked: the copy, queued as a
    #       missed generation, was no longer found by name when the truncation was seen, and was
    #       read from its first byte (A lines printed twice)
    135,  # an empty file being read, then while logtail is stopped: written, copytruncated, renamed
    #       and written again: the copy, found only after the renamed file was taken in, was read
    #       after the renamed file's new lines (A lines out of order, one run in six)
    104,  # a writer without O_APPEND after a truncation: app.log and every copy of it start with a
    #       hole of NULs, taken as the first bytes that tell contents apart (copytruncates unnoticed
    #       or an older copy read again); also a copy caught before cp wrote it, a copy with a gzipped
    #       generation's inode number, and a copytruncate while held up in a truncation (A lines lost
    #       or printed twice)
    374,  # app.log saved while empty, then while logtail is down: written, copytruncated, written and
    #       renamed within one clock tick: the copy ties with it by mtime and was read after its new
    #       lines (A lines out of order, every run); 360 and 399 failed the same way
    146,  # a deleted file's late line, then while logtail is stopped: the next file written,
    #       copytruncated and renamed: its copy was taken for the deleted file's and read before
    #       that line (A lines out of order, 5 of 6 runs on 2026-12-04)
]


def line_text(stream: str, seq: int) -> bytes:
    return f"{stream}{seq:07d} {PAD}\n".encode()


# -- operations ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """One step of a sequence; ``str(op)`` is how it appears in a failure report."""

    def __str__(self) -> str:
        fields = ", ".join(f"{k}={_short(v)}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _short(value: object) -> str:
    if isinstance(value, tuple) and value and all(isinstance(v, int) for v in value):
        return f"[{ranges(value)}]"
    return repr(value)


@dataclass(frozen=True, repr=False)
class Write(Op):
    stream: str
    seqs: tuple[int, ...]
    style: str  # block: one write for all | each: one write per line | split: two writes per line


@dataclass(frozen=True, repr=False)
class Rename(Op):
    """mv app.log DST; the writer writes ``late`` into the renamed file, then reopens app.log."""

    dst: str
    late: tuple[int, ...]


@dataclass(frozen=True, repr=False)
class RenameAcrossRestart(Op):
    """logrotate ``create`` while the application reopens only after logtail restarted: mv app.log
    DST and create a new empty app.log; the writer writes ``late`` into the renamed file; logtail
    gets ``signal`` (term or kill) and exits; the writer writes ``down`` into the renamed file;
    logtail is started again (and waited for); only then the writer reopens app.log."""

    dst: str
    late: tuple[int, ...]
    signal: str
    down: tuple[int, ...]


@dataclass(frozen=True, repr=False)
class Delete(Op):
    """rm app.log; the writer writes ``late`` into the deleted file, then reopens app.log."""

    late: tuple[int, ...]


@dataclass(frozen=True, repr=False)
class CopyTruncate(Op):
    """cp app.log DST; the writer writes ``window`` (lost to everyone); truncate app.log."""

    dst: str
    window: tuple[int, ...]


@dataclass(frozen=True, repr=False)
class Truncate(Op):
    """truncate -s 0 app.log; the writer keeps its descriptor."""


@dataclass(frozen=True, repr=False)
class PartialTruncate(Op):
    """The writer writes the first half of line ``seq``; the file is truncated; the line is abandoned."""

    seq: int


@dataclass(frozen=True, repr=False)
class Retarget(Op):
    """current.log -> NEW (a new, empty file); the writer writes ``late`` into the old target, then
    switches to NEW."""

    new: str
    late: tuple[int, ...]


@dataclass(frozen=True, repr=False)
class Compress(Op):
    """gzip NAME: an old generation no writer writes into any more disappears."""

    name: str


@dataclass(frozen=True, repr=False)
class Settle(Op):
    """Wait until logtail has printed every required line written so far."""


@dataclass(frozen=True, repr=False)
class Idle(Op):
    seconds: float


@dataclass(frozen=True, repr=False)
class Stop(Op):
    """SIGSTOP logtail."""


@dataclass(frozen=True, repr=False)
class Cont(Op):
    """SIGCONT logtail."""


@dataclass(frozen=True, repr=False)
class Term(Op):
    """SIGTERM logtail and wait for it to exit (it drains)."""


@dataclass(frozen=True, repr=False)
class Kill(Op):
    """SIGKILL logtail (running or stopped)."""


@dataclass(frozen=True, repr=False)
class Start(Op):
    """Start logtail again, from its checkpoint."""


# -- the model -----------------------------------------------------------------------------------


@dataclass
class FileState:
    fid: int
    names: list[str]  # every name it had, oldest first
    lines: list[tuple[str, int]] = field(default_factory=list)  # the lines in it now
    linked: bool = True  # still has a name (not deleted, not gzipped)
    reachable: bool = True  # False: a symlink target the link left before logtail ever saw it
    fate: str = ""  # how it ended: "deleted", "gzipped"

    def describe(self) -> str:
        text = " -> ".join(self.names)
        return f"{text} ({self.fate})" if self.fate else text


@dataclass
class LineState:
    op: int  # index of the operation that wrote it
    origin: int  # the file it was written into
    homes: set[int]  # the files that hold it now
    settled: bool = False
    optional: bool = False
    abandoned: bool = False


class Model:
    """What a perfect tailer must print, updated operation by operation (no I/O)."""

    def __init__(self, append: bool) -> None:
        self.append = append
        self.files: dict[int, FileState] = {}
        self.lines: dict[tuple[str, int], LineState] = {}
        self.next_seq = {"A": 0, "B": 0}
        self.reader = "running"  # running | stopped | down
        self.held: set[int] = set()
        self.op_index = -1
        self.rotations = 0  # app.log.K and app-N.log numbering
        self.live_a = self._new_file("app.log")  # the file at app.log, which writer A writes
        self.live_b = self._new_file("app-0.log")  # the symlink's target, which writer B writes
        self.old: list[int] = []  # old generations that can be gzipped, in creation order
        self.seen = {self.live_b}  # symlink targets logtail has been shown to open
        # At each Start: the lines no file holds any more. A restart can only replay what is
        # still on disk, so a SIGKILL's replay is the tail of what was printed without them.
        self.gone_at_start: list[dict[str, set[int]]] = []

    def _new_file(self, name: str) -> int:
        fid = len(self.files)
        self.files[fid] = FileState(fid, [name])
        return fid

    # -- what the generator needs to number lines

    def take(self, stream: str, count: int) -> tuple[int, ...]:
        start = self.next_seq[stream]
        self.next_seq[stream] += count
        return tuple(range(start, start + count))

    def new_generation_name(self, stream: str) -> str:
        self.rotations += 1
        return f"app.log.{self.rotations}" if stream == "A" else f"app-{self.rotations}.log"

    # -- applying operations

    def apply(self, op: Op) -> None:
        self.op_index += 1
        handler = getattr(self, f"_{type(op).__name__.lower()}")
        handler(op)

    def _write_into(self, fid: int, stream: str, seqs: tuple[int, ...]) -> None:
        target = self.files[fid]
        for seq in seqs:
            readable = (target.linked or fid in self.held) and target.reachable
            homes = {fid} if readable else set()
            self.lines[(stream, seq)] = LineState(self.op_index, fid, homes, optional=not readable)
            if readable:
                target.lines.append((stream, seq))

    def _destroy(self, fid: int) -> None:
        """The current content of file ``fid`` is gone for every reader."""
        state = self.files[fid]
        for key in state.lines:
            line = self.lines[key]
            line.homes.discard(fid)
            if not line.homes and not line.settled:
                line.optional = True
        state.lines = []

    def _unlink(self, fid: int, fate: str) -> None:
        state = self.files[fid]
        state.linked = False
        state.fate = fate
        if fid in self.old:
            self.old.remove(fid)
        if fid not in self.held:
            self._destroy(fid)

    def _write(self, op: Write) -> None:
        self._write_into(self.live_a if op.stream == "A" else self.live_b, op.stream, op.seqs)

    def _rename(self, op: Rename) -> None:
        old = self.live_a
        self.files[old].names.append(op.dst)
        self.old.append(old)
        self._write_into(old, "A", op.late)
        self.live_a = self._new_file("app.log")

    def _renameacrossrestart(self, op: RenameAcrossRestart) -> None:
        old = self.live_a
        self.files[old].names.append(op.dst)
        self.old.append(old)
        self.live_a = self._new_file("app.log")  # created empty now; the writer reopens it later
        self._write_into(old, "A", op.late)
        (self._term if op.signal == "term" else self._kill)(Term())
        self._write_into(old, "A", op.down)
        self._start(Start())

    def _delete(self, op: Delete) -> None:
        old = self.live_a
        self._unlink(old, "deleted")
        self._write_into(old, "A", op.late)
        self.live_a = self._new_file("app.log")

    def _copytruncate(self, op: CopyTruncate) -> None:
        live = self.files[self.live_a]
        copy = self._new_file(op.dst)
        self.files[copy].lines = list(live.lines)
        for key in live.lines:
            self.lines[key].homes.add(copy)
        self.old.append(copy)
        self._write_into(self.live_a, "A", op.window)
        self._destroy(self.live_a)

    def _truncate(self, op: Truncate) -> None:
        self._destroy(self.live_a)

    def _partialtruncate(self, op: PartialTruncate) -> None:
        self.lines[("A", op.seq)] = LineState(self.op_index, self.live_a, set(), abandoned=True)
        self._destroy(self.live_a)

    def _retarget(self, op: Retarget) -> None:
        old = self.live_b
        new = self._new_file(op.new)
        if old not in self.seen:
            # The link pointed there only while logtail was stopped, down or between two proven
            # looks: nothing names that file any more, so no reader can be required to find it.
            self.files[old].reachable = False
            self.files[old].fate = "never seen at the link"
            self._destroy(old)
        self._write_into(old, "B", op.late)
        self.old.append(old)
        self.live_b = new

    def _compress(self, op: Compress) -> None:
        fid = next(f for f in self.old if self.files[f].names[-1] == op.name)
        self.files[fid].names.append(op.name + ".gz")
        self._unlink(fid, "gzipped")

    def _settle(self, op: Settle) -> None:
        assert self.reader == "running"
        for line in self.lines.values():
            if not line.optional and not line.abandoned:
                line.settled = True
        self.held |= {fid for fid in (self.live_a, self.live_b) if self.files[fid].lines}
        self.seen |= {self.live_b} & self.held

    def _idle(self, op: Idle) -> None:
        pass

    def _stop(self, op: Stop) -> None:
        self.reader = "stopped"

    def _cont(self, op: Cont) -> None:
        self.reader = "running"

    def _term(self, op: Term) -> None:
        self.reader = "down"
        self.held = set()  # a SIGTERM drains what it holds: those lines stay required

    def _kill(self, op: Kill) -> None:
        self.reader = "down"
        held, self.held = self.held, set()
        for fid in held:
            if not self.files[fid].linked:
                self._destroy(fid)

    def _start(self, op: Start) -> None:
        self.reader = "running"
        gone: dict[str, set[int]] = {s: set() for s in STREAMS}
        for (stream, seq), line in self.lines.items():
            origin = self.files[line.origin]
            # A symlink target the link left unseen is not required, but it is still on disk: a
            # restart may replay what an earlier run found of it.
            if not line.homes and not (origin.linked and not origin.reachable):
                gone[stream].add(seq)
        self.gone_at_start.append(gone)
        self.seen.add(self.live_b)  # the driver waits until logtail has opened it

    # -- the verdict's inputs

    def required(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {s: set() for s in STREAMS}
        for (stream, seq), line in self.lines.items():
            if not line.optional and not line.abandoned:
                out[stream].add(seq)
        return out

    def kind_of(self, stream: str, seq: int) -> str:
        line = self.lines.get((stream, seq))
        if line is None:
            return "never written"
        return "abandoned" if line.abandoned else "optional" if line.optional else "required"

    def where(self, stream: str, seqs: set[int]) -> str:
        """``seqs`` grouped by the operation and file that wrote them."""
        groups: dict[tuple[int, int], list[int]] = defaultdict(list)
        for seq in seqs:
            line = self.lines.get((stream, seq))
            groups[(line.op, line.origin) if line else (-1, -1)].append(seq)
        parts = []
        for (op, origin), members in sorted(groups.items(), key=lambda g: min(g[1])):
            place = self.files[origin].describe() if origin >= 0 else "?"
            parts.append(f"{stream} {ranges(members)} (op #{op}, written into {place})")
        return "; ".join(parts)


# -- the generator -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Plan:
    seed: int
    append: bool
    ops: tuple[Op, ...]

    def describe(self) -> str:
        head = f"seed {self.seed}: writer A {'with' if self.append else 'without'} O_APPEND"
        return head + "\n" + "\n".join(f"  #{i}: {op}" for i, op in enumerate(self.ops))


def generate(seed: int, length: int = 30) -> tuple[Plan, Model]:
    """A valid sequence of ``length`` operations (plus the final ones that bring logtail back up),
    deterministic from ``seed``, and the model after all of them."""
    rng = random.Random(seed)  # noqa: S311 - reproducible test sequences, not secrets
    # A second stream for the restart-between-rename-and-reopen variant: it was added later, and
    # drawing it from ``rng`` would have changed every earlier seed's sequence.
    variant = random.Random(seed + 1_000_003)  # noqa: S311
    append = rng.random() < 0.7
    model = Model(append)
    ops: list[Op] = []
    signals = 0
    restarts = 0  # RenameAcrossRestart ops: logtail is running before and after them

    def add(op: Op) -> None:
        model.apply(op)
        ops.append(op)

    def lines(stream: str, low: int, high: int) -> tuple[int, ...]:
        return model.take(stream, rng.randint(low, high))

    while len(ops) < length:
        state = model.reader
        if state == "stopped" and rng.random() < 0.35:
            add(Cont())
            continue
        if state == "down" and rng.random() < 0.35:
            add(Start())
            continue
        choices: list[tuple[str, int]] = [
            ("write", 30),
            ("rename", 7),
            ("delete", 4),
            ("copytruncate", 7),
            ("truncate", 4),
            ("partial", 3),
            ("retarget", 7),
            ("compress", 5 if model.old else 0),
            ("idle", 4),
        ]
        if state == "running":
            choices += [("settle", 10)]
            if signals < 3:
                choices += [("stop", 3), ("term", 3), ("kill", 3)]
        elif state == "stopped" and signals < 3:
            choices += [("kill", 2)]
        kinds, weights = zip(*choices, strict=True)
        kind = rng.choices(kinds, weights)[0]
        if kind == "write":
            stream = rng.choice(STREAMS)
            add(Write(stream, lines(stream, 1, 25), rng.choice(["block", "each", "each", "split"])))
        elif kind == "rename":
            name, late = model.new_generation_name("A"), lines("A", 0, 3)
            if state == "running" and restarts < 2 and variant.random() < 0.3:
                restarts += 1
                down = model.take("A", variant.randint(0, 4))
                add(RenameAcrossRestart(name, late, variant.choice(["term", "term", "kill"]), down))
            else:
                add(Rename(name, late))
        elif kind == "delete":
            add(Delete(lines("A", 0, 2)))
        elif kind == "copytruncate":
            window = lines("A", 0, 2) if rng.random() < 0.5 else ()
            add(CopyTruncate(model.new_generation_name("A"), window))
        elif kind in ("truncate", "partial"):
            if state == "running" and rng.random() < 0.7:
                add(Settle())  # mostly, logtail has read everything before the cut
            add(Truncate() if kind == "truncate" else PartialTruncate(model.take("A", 1)[0]))
        elif kind == "retarget":
            add(Retarget(model.new_generation_name("B"), lines("B", 0, 3) if rng.random() < 0.5 else ()))
        elif kind == "compress":
            add(Compress(model.files[rng.choice(model.old)].names[-1]))
        elif kind == "idle":
            add(Idle(rng.choice([0.05, 0.1, 0.3])))
        elif kind == "settle":
            add(Settle())
        else:
            signals += 1
            add({"stop": Stop, "term": Term, "kill": Kill}[kind]())
    if model.reader == "stopped":
        add(Cont())
    elif model.reader == "down":
        add(Start())
    add(Settle())
    return Plan(seed, append, tuple(ops)), model


# -- the verdict ---------------------------------------------------------------------------------


@dataclass
class Run:
    """What one logtail process printed, and how it ended."""

    raw: list[bytes]
    stderr: str
    after_kill: bool  # it was started after a SIGKILL
    status: int | None = None  # None: killed
    found: str = ""  # the checkpoint and the directory as this run found them (LOGTAIL_MODEL_DUMP)


def verdict(model: Model, runs: list[Run]) -> list[str]:
    """Every way the output breaks the model's rules (empty if none)."""
    problems: list[str] = []
    per_run: list[dict[str, list[int]]] = []
    for index, run in enumerate(runs):
        seqs: dict[str, list[int]] = {s: [] for s in STREAMS}
        bad = []
        for raw in run.raw:
            match = LINE.match(raw)
            if match:
                seqs[match.group(1).decode()].append(int(match.group(2)))
            else:
                bad.append(raw)
        if bad:
            problems.append(f"run {index}: {len(bad)} malformed lines, e.g. {[b[:60] for b in bad[:4]]}")
        per_run.append(seqs)
    required = model.required()
    for stream in STREAMS:
        printed: list[int] = []
        # Everything printed, replays included: a run killed before its first save replays, after
        # the next restart, what it printed itself (its own replay too) from the last saved position.
        history: list[int] = []
        for index, (run, seqs) in enumerate(zip(runs, per_run, strict=True)):
            got = seqs[stream]
            history.extend(got)
            if run.after_kill and printed:
                top = max(printed)
                k = 0
                while k < len(got) and got[k] <= top:
                    k += 1
                replay = got[:k]
                if replay:
                    # Run ``index`` was started by the model's Start number ``index`` (run 0 by none).
                    starts = model.gone_at_start
                    gone = starts[index - 1][stream] if index <= len(starts) else set()
                    before = [seq for seq in history[: -len(got)] if seq not in gone]
                    tail = before[-k:]
                    if replay != tail:
                        problems.append(
                            f"run {index} after SIGKILL: {stream} replay {replay[:30]} ({k} lines) is not "
                            f"the contiguous tail of what was printed before, and is still on disk "
                            f"({tail[-30:]})"
                        )
                got = got[k:]
            printed.extend(got)
        counts: dict[int, int] = defaultdict(int)
        for seq in printed:
            counts[seq] += 1
        repeated = {seq for seq, n in counts.items() if n > 1}
        if repeated:
            problems.append(f"printed more than once: {model.where(stream, repeated)}")
        backwards = [(a, b) for a, b in itertools.pairwise(printed) if b < a]
        if backwards:
            problems.append(f"{stream} out of order at {backwards[:6]}")
        missing = required[stream] - counts.keys()
        if missing:
            problems.append(f"{len(missing)} required lines missing: {model.where(stream, missing)}")
        for kind in ("abandoned", "never written"):
            wrong = {seq for seq in counts if model.kind_of(stream, seq) == kind}
            if wrong:
                problems.append(f"{kind} lines printed: {model.where(stream, wrong)}")
    for index, run in enumerate(runs):
        if run.status not in (None, 0):
            problems.append(f"run {index} exited {run.status}")
        if "Traceback" in run.stderr:
            problems.append(f"run {index} had a traceback")
    return problems


# -- the driver ----------------------------------------------------------------------------------


class Writer:
    """One application's descriptor on its log file, reopened by name only when told."""

    def __init__(self, path: Path, append: bool) -> None:
        self.path = path
        self.flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if append else 0)
        self.fd = os.open(path, self.flags, 0o644)

    def write(self, data: bytes) -> None:
        assert os.write(self.fd, data) == len(data)

    def lines(self, stream: str, seqs: tuple[int, ...], style: str = "each") -> None:
        if style == "block":
            if seqs:
                self.write(b"".join(line_text(stream, seq) for seq in seqs))
            return
        for seq in seqs:
            text = line_text(stream, seq)
            if style == "split":
                self.write(text[:20])
                time.sleep(SPLIT_PAUSE)  # the scenario: a line whose halves arrive apart
                self.write(text[20:])
            else:
                self.write(text)

    def reopen(self, path: Path | None = None) -> None:
        os.close(self.fd)
        self.path = path or self.path
        self.fd = os.open(self.path, self.flags, 0o644)

    def close(self) -> None:
        os.close(self.fd)


class Driver:
    """Runs a plan's operations on real files and a real logtail subprocess."""

    def __init__(self, plan: Plan, workdir: Path, start_logtail: Any) -> None:
        self.plan = plan
        self.dir = workdir
        self.start_logtail = start_logtail
        self.app = workdir / "app.log"
        self.link = workdir / "current.log"
        self.checkpoint = workdir / "checkpoint.json"
        self.model = Model(plan.append)
        self.writer_a = Writer(self.app, plan.append)
        self.writer_b = Writer(workdir / "app-0.log", True)
        self.link.symlink_to("app-0.log")
        self.procs: list[Logtail] = []
        self.runs: list[Run] = []
        self.after_kill = False
        self.proc: Logtail | None = None
        self.failed_at: str | None = None

    def _found(self) -> str:
        """The checkpoint and every file (inode, size, mtime, ctime) as a run starts, for a diagnosis."""
        lines = [self.checkpoint.read_text() if self.checkpoint.exists() else "(no checkpoint)"]
        for entry in sorted(self.dir.iterdir()):
            st = entry.lstat()
            lines.append(
                f"{entry.name} ino={st.st_ino} size={st.st_size} "
                f"mtime_ns={st.st_mtime_ns} ctime_ns={st.st_ctime_ns}"
            )
        return "\n".join(lines) + "\n"

    def start(self) -> bool:
        """Start logtail; wait until it has opened the files now at both paths and saved a checkpoint
        that names them (a reader killed before it ever looked, or before it saved what it found,
        cannot know more; the previous run's checkpoint does not count)."""
        found = self._found()
        self.proc = self.start_logtail(
            "--checkpoint",
            self.checkpoint,
            "--checkpoint-interval",
            CHECKPOINT_INTERVAL,
            "--rotate-wait",
            ROTATE_WAIT,
            "--poll-interval",
            POLL_INTERVAL,
            f"a={self.app}",
            f"b={self.link}",
        )
        self.procs.append(self.proc)
        self.runs.append(Run([], "", self.after_kill, found=found))
        proc = self.proc.proc
        wanted = {str(path): (os.stat(path).st_dev, os.stat(path).st_ino) for path in (self.app, self.link)}
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while not (set(wanted.values()) <= open_files(proc.pid) and knows(self.checkpoint, wanted)):
            if time.monotonic() > deadline or proc.poll() is not None:
                self.failed_at = (
                    f"logtail run {len(self.runs) - 1} did not open both files and save a checkpoint within "
                    f"{SETTLE_TIMEOUT}s (exit {proc.poll()})"
                )
                return False
            time.sleep(0.005)
        return True

    def printed(self) -> dict[str, set[int]]:
        out: dict[str, set[int]] = {s: set() for s in STREAMS}
        for proc in self.procs:
            for raw in proc.raw_lines:
                match = LINE.match(raw)
                if match:
                    out[match.group(1).decode()].add(int(match.group(2)))
        return out

    def execute(self) -> None:
        try:
            if not self.start():
                return
            for index, op in enumerate(self.plan.ops):
                if isinstance(op, Settle) and not self.settle(index):
                    break
                if not self.do(op):
                    break
                self.model.apply(op)
        finally:
            self.finish()

    def settle(self, index: int) -> bool:
        required = self.model.required()
        deadline = time.monotonic() + SETTLE_TIMEOUT
        while True:
            printed = self.printed()
            missing = {s: required[s] - printed[s] for s in STREAMS}
            if not any(missing.values()):
                return True
            assert self.proc is not None
            if time.monotonic() > deadline or self.proc.proc.poll() is not None:
                where = "; ".join(self.model.where(s, m) for s, m in missing.items() if m)
                self.failed_at = f"settle #{index} gave up after {SETTLE_TIMEOUT}s; not printed: {where}"
                return False
            time.sleep(0.01)

    def do(self, op: Op) -> bool:
        """Run one operation; False if the sequence cannot go on (logtail did not come up)."""
        if isinstance(op, Write):
            (self.writer_a if op.stream == "A" else self.writer_b).lines(op.stream, op.seqs, op.style)
        elif isinstance(op, Rename):
            os.rename(self.app, self.dir / op.dst)
            self.writer_a.lines("A", op.late)
            self.writer_a.reopen()
        elif isinstance(op, RenameAcrossRestart):
            os.rename(self.app, self.dir / op.dst)
            self.app.touch()  # logrotate's `create`
            self.writer_a.lines("A", op.late)
            self.do(Term() if op.signal == "term" else Kill())
            self.writer_a.lines("A", op.down)
            if not self.start():
                return False
            self.writer_a.reopen()
        elif isinstance(op, Delete):
            os.unlink(self.app)
            self.writer_a.lines("A", op.late)
            self.writer_a.reopen()
        elif isinstance(op, CopyTruncate):
            subprocess.run(["cp", self.app, self.dir / op.dst], check=True, timeout=30)
            self.writer_a.lines("A", op.window)
            os.truncate(self.app, 0)
        elif isinstance(op, Truncate):
            os.truncate(self.app, 0)
        elif isinstance(op, PartialTruncate):
            self.writer_a.write(line_text("A", op.seq)[:20])
            observe(0.05)  # long enough for logtail to read the half line
            os.truncate(self.app, 0)
        elif isinstance(op, Retarget):
            new = self.dir / op.new
            new.touch()
            tmp = self.dir / "current.log.tmp"
            tmp.symlink_to(op.new)
            os.rename(tmp, self.link)  # atomic retarget, as `ln -sfn` + `mv -T` do
            self.writer_b.lines("B", op.late)
            self.writer_b.reopen(new)
        elif isinstance(op, Compress):
            subprocess.run(["gzip", self.dir / op.name], check=True, timeout=30)
        elif isinstance(op, Idle):
            observe(op.seconds)
        elif isinstance(op, Stop | Cont):
            assert self.proc is not None
            self.proc.signal(signal.SIGSTOP if isinstance(op, Stop) else signal.SIGCONT)
            wanted = isinstance(op, Stop)
            status = psutil.Process(self.proc.proc.pid)
            deadline = time.monotonic() + 5
            while (status.status() == psutil.STATUS_STOPPED) != wanted and time.monotonic() < deadline:
                time.sleep(0.002)
        elif isinstance(op, Term):
            assert self.proc is not None
            self.runs[-1].status = self.proc.stop(signal.SIGTERM)
            self.after_kill = False
            self.proc = None
        elif isinstance(op, Kill):
            assert self.proc is not None
            self.proc.proc.kill()
            self.proc.finish()
            self.after_kill = True
            self.proc = None
        elif isinstance(op, Start):
            return self.start()
        return True

    def finish(self) -> None:
        if self.proc is not None:
            if self.proc.proc.poll() is None:
                self.proc.signal(signal.SIGCONT)  # in case the sequence broke off while it was stopped
            self.runs[-1].status = self.proc.stop(signal.SIGTERM)
        for proc, run in zip(self.procs, self.runs, strict=True):
            run.raw = proc.raw_lines
            run.stderr = proc.stderr
        self.writer_a.close()
        self.writer_b.close()

    def report(self, problems: list[str]) -> str:
        files = sorted(p.name for p in self.dir.iterdir())
        stderr = "\n".join(
            f"--- run {i} (exit {run.status}) stderr tail:\n{run.stderr[-1500:]}"
            for i, run in enumerate(self.runs)
        )
        return (
            f"seed {self.plan.seed} broke the model:\n- "
            + "\n- ".join(problems)
            + f"\n{self.plan.describe()}\nfiles at the end: {files}\n{stderr}\n"
            + f"reproduce: LOGTAIL_MODEL_SEEDS={self.plan.seed} python -m pytest tests/test_model.py "
            "-k model_seed --runxfail"
        )


def open_files(pid: int) -> set[tuple[int, int]]:
    """(device, inode) of every file process ``pid`` has open."""
    found = set()
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return found
    for fd in fds:
        try:
            st = os.stat(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        found.add((st.st_dev, st.st_ino))
    return found


def knows(checkpoint: Path, wanted: dict[str, tuple[int, int]]) -> bool:
    """Whether the checkpoint names, for every path in ``wanted``, the file (device, inode) now there:
    a checkpoint saved by this run, not one the previous run left behind."""
    try:
        doc = json.loads(checkpoint.read_bytes())
    except (OSError, ValueError):
        return False
    files = doc.get("files") if isinstance(doc, dict) else None
    if not isinstance(files, dict):
        return False
    for path, file_id in wanted.items():
        entry = files.get(path)
        if not isinstance(entry, dict):
            return False
        positions = [entry, *entry.get("later", [])]  # a file read to its end ("done") is not followed
        if file_id not in {(p.get("dev"), p.get("ino")) for p in positions if isinstance(p, dict)}:
            return False
    return True


# -- the tests -----------------------------------------------------------------------------------


def parse_seeds(text: str) -> list[int]:
    """``"0-99,250,300-310"`` -> those seeds, in order."""
    seeds: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        seeds.extend(range(int(low), int(high or low) + 1))
    return seeds


# Seeds that still fail, sometimes (issue 11 stays open for them): run by hand, each reports as an
# expected failure (XPASS when it passed), so a count of the others is not hidden by them. On
# 2026-12-04, one run of seeds 0-199 failed 3 (84, 119, 130; 119 then passed 6 of 6 runs, 130
# 15 of 15, 84 6 of 8); 1, 2, 4, 5, 74 and 169, listed here before, passed 8 of 8 runs each, and CI runs
# them as regression seeds or in CI_SEEDS. None of these is in CI's list:
KNOWN_FAILING = {
    84: "a writer without O_APPEND: truncate, copytruncate and a delete with late lines, then, while "
    "logtail is stopped, copytruncates of the new file: the deleted file's late lines are printed "
    "after the new file's copy (out of order; 2 of 8 runs on 2026-12-04)",
    130: "a delete, then while stopped two renames with late lines and compressions: the renamed "
    "files' late lines are printed after the newer file's (out of order; 1 of about 20 runs on "
    "2026-12-04)",
}


def chosen_seeds() -> list[Any]:
    text = os.environ.get("LOGTAIL_MODEL_SEEDS")
    seeds = parse_seeds(text) if text else [*CI_SEEDS, *(s for s in REGRESSION_SEEDS if s not in CI_SEEDS)]
    return [
        pytest.param(seed, marks=pytest.mark.xfail(reason=KNOWN_FAILING[seed], strict=False))
        if seed in KNOWN_FAILING
        else seed
        for seed in seeds
    ]


@pytest.mark.e2e
# Never rerun: a seed that loses, repeats or misorders a line one run in three has found a bug.
@pytest.mark.flaky(reruns=0)
@pytest.mark.timeout(90)
@pytest.mark.parametrize("seed", chosen_seeds())
def test_model_seed(tmp_path: Path, logtail: Any, seed: int) -> None:
    """A seeded sequence of writes, rotations, truncations, compressions and logtail signals and
    restarts prints every required line exactly once and in order per stream, repeating only a
    SIGKILL's contiguous replay, and never an abandoned line."""
    plan, _ = generate(seed)
    driver = Driver(plan, tmp_path, logtail)
    driver.execute()
    problems = verdict(driver.model, driver.runs)  # the operations done: all, unless a settle gave up
    if driver.failed_at:
        problems.insert(0, driver.failed_at)
    if problems and (dump := os.environ.get("LOGTAIL_MODEL_DUMP")):
        # The report shows only the tail of each run's stderr; a diagnosis needs all of it.
        into = Path(dump) / str(seed)
        into.mkdir(parents=True, exist_ok=True)
        for index, run in enumerate(driver.runs):
            (into / f"err{index}").write_text(run.stderr)
            (into / f"out{index}").write_bytes(b"".join(run.raw))
            (into / f"found{index}").write_text(run.found)
    assert not problems, driver.report(problems)


# -- the pure part, tested on its own ------------------------------------------------------------


def test_model_generation_is_deterministic_and_valid() -> None:
    """The same seed gives the same operations; every sequence ends with logtail running and a settle,
    and signals only go to a logtail in a state that can take them."""
    for seed in range(200):
        plan, _ = generate(seed)
        assert plan == generate(seed)[0]
        assert isinstance(plan.ops[-1], Settle)
        state = "running"
        for op in plan.ops:
            if isinstance(op, Settle | Stop | Term):
                assert state == "running", plan.describe()
            if isinstance(op, Cont):
                assert state == "stopped", plan.describe()
            if isinstance(op, Start):
                assert state == "down", plan.describe()
            if isinstance(op, Kill):
                assert state in ("running", "stopped"), plan.describe()
            state = {Stop: "stopped", Cont: "running", Term: "down", Kill: "down", Start: "running"}.get(
                type(op), state
            )


def model_after(*ops: Op, append: bool = True) -> Model:
    model = Model(append)
    for op in ops:
        model.apply(op)
    return model


def test_model_renamed_file_lines_are_required_even_while_down() -> None:
    """Lines in a renamed file that still exists are required, also when written while logtail is down."""
    model = model_after(
        Write("A", (0, 1), "each"), Term(), Write("A", (2,), "each"), Rename("app.log.1", (3,)), Start()
    )
    assert model.required()["A"] == {0, 1, 2, 3}


def test_model_copytruncate_window_is_optional_and_copy_is_required() -> None:
    """Lines between copy and truncate are optional; lines in the copy are required until the copy goes
    while logtail is down, then only those not settled before become optional."""
    model = model_after(Write("A", (0, 1), "each"), Settle(), Write("A", (2,), "each"))
    model.apply(CopyTruncate("app.log.1", (3,)))
    assert model.required()["A"] == {0, 1, 2}
    assert model.kind_of("A", 3) == "optional"
    model.apply(Kill())
    model.apply(Compress("app.log.1"))
    assert model.required()["A"] == {0, 1}
    assert model.kind_of("A", 2) == "optional"


def test_model_deleted_file_is_readable_while_held() -> None:
    """A file logtail holds stays readable after deletion while logtail is only SIGSTOPped, but a SIGKILL
    destroys its unprinted lines; a file created after the last settle is not held."""
    held = model_after(Write("A", (0,), "each"), Settle(), Stop(), Delete((1, 2)), Cont())
    assert held.required()["A"] == {0, 1, 2}
    killed = model_after(Write("A", (0,), "each"), Settle(), Stop(), Delete((1, 2)), Kill(), Start())
    assert killed.required()["A"] == {0}
    fresh = model_after(Settle(), Rename("app.log.1", ()), Write("A", (0,), "each"), Stop(), Delete((1,)))
    assert fresh.required()["A"] == set()


def test_model_abandoned_partial_line_must_not_appear() -> None:
    """A half-written line cut by a truncation is abandoned; the verdict fails if its fragment is printed."""
    model = model_after(Write("A", (0,), "each"), Settle(), PartialTruncate(1), Write("A", (2,), "each"))
    assert model.kind_of("A", 1) == "abandoned"
    fragment = line_text("A", 1)[:20] + b"\n"
    run = Run([line_text("A", 0), fragment, line_text("A", 2)], "", after_kill=False, status=0)
    assert any("malformed" in p for p in verdict(model, [run]))
    clean = Run([line_text("A", 0), line_text("A", 2)], "", after_kill=False, status=0)
    assert verdict(model, [clean]) == []


def test_model_sigkill_replay_must_be_the_contiguous_tail() -> None:
    """After a SIGKILL, the next run may start by repeating the tail printed before the kill, nothing else."""
    model = model_after(Write("A", tuple(range(6)), "each"), Kill(), Start())
    first = [line_text("A", s) for s in range(5)]
    ok = Run([line_text("A", s) for s in (3, 4, 5)], "", after_kill=True, status=0)
    assert verdict(model, [Run(first, "", False), ok]) == []
    gap = Run([line_text("A", s) for s in (2, 4, 5)], "", after_kill=True, status=0)
    assert verdict(model, [Run(first, "", False), gap]) != []
    after_term = Run([line_text("A", s) for s in (4, 5)], "", after_kill=False, status=0)
    assert verdict(model, [Run(first, "", False, 0), after_term]) != []


def test_model_sigkill_replay_leaves_out_what_is_gone_from_disk() -> None:
    """A replay cannot hold lines destroyed since they were printed (here truncated while down): it is
    the tail of what was printed without them, and still nothing else (model seed 151)."""
    model = model_after(
        Write("A", (0, 1, 2), "each"),
        Rename("app.log.1", ()),
        Write("A", (3, 4, 5), "each"),
        Settle(),
        Kill(),
        Truncate(),  # 3-5 gone; 0-2 are still in app.log.1
        Start(),
    )
    first = [line_text("A", s) for s in range(6)]
    assert model.gone_at_start[0]["A"] == {3, 4, 5}
    replay = Run([line_text("A", s) for s in (1, 2)], "", after_kill=True, status=0)
    assert verdict(model, [Run(first, "", False), replay]) == []
    not_the_tail = Run([line_text("A", s) for s in (0, 1)], "", after_kill=True, status=0)
    assert verdict(model, [Run(first, "", False), not_the_tail]) != []


def test_model_sigkill_replay_may_hold_a_target_never_required() -> None:
    """A symlink target the link left before logtail was shown to open it is not required, but it is
    still on disk: a run that found it anyway may replay it after a SIGKILL (model seeds 162, 167)."""
    model = model_after(
        Write("B", (0, 1), "each"),
        Settle(),
        Retarget("app-1.log", ()),
        Write("B", (2, 3), "each"),
        Retarget("app-2.log", ()),  # app-1.log: out of reach for the model, still on disk
        Kill(),
        Start(),
    )
    assert model.gone_at_start[0]["B"] == set()
    first = [line_text("B", s) for s in range(4)]
    replay = Run([line_text("B", s) for s in (2, 3)], "", after_kill=True, status=0)
    assert verdict(model, [Run(first, "", False), replay]) == []


def test_model_symlink_target_never_seen_is_out_of_reach() -> None:
    """The rest of a target logtail had open is required after a retarget while down; a target the link
    pointed at only while logtail was down is out of reach once the link moves on."""
    model = model_after(
        Write("B", (0,), "each"),
        Settle(),
        Term(),
        Write("B", (1,), "each"),
        Retarget("app-1.log", (2,)),
        Write("B", (3,), "each"),
        Retarget("app-2.log", (4,)),
        Write("B", (5,), "each"),
        Start(),
    )
    assert model.required()["B"] == {0, 1, 2, 5}
    assert model.kind_of("B", 3) == model.kind_of("B", 4) == "optional"


def test_model_rename_across_restart_keeps_late_lines_required() -> None:
    """Lines the writer puts into the renamed file before and while logtail restarts (SIGTERM or SIGKILL) are
    required: the renamed file still exists; the new app.log, created empty, is read from its first byte."""
    for signal_name in ("term", "kill"):
        model = model_after(
            Write("A", (0, 1), "each"),
            Settle(),
            RenameAcrossRestart("app.log.1", (2,), signal_name, (3, 4)),
            Write("A", (5,), "each"),
        )
        assert model.required()["A"] == {0, 1, 2, 3, 4, 5}
        assert model.reader == "running"
