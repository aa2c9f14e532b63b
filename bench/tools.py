"""The tools compared: logtail, GNU ``tail -n+1 -F`` and busybox ``tail -n+1 -F``, as argv builders."""

from __future__ import annotations

import glob as globmod
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from bench.harness import REPO

# (paths or one glob, prefix or None, is_glob, extra options) -> argv of each process of a pipeline
Build = Callable[[list[str], str | None, bool, list[str]], list[list[str]]]
KEYS = ("logtail", "gnu", "busybox")


@dataclass
class Tool:
    key: str  # one of KEYS: the column it goes to
    label: str
    build: Build
    env: dict[str, str] | None
    prefix_label: str = ""  # how it adds a prefix, when that is not its own option

    def argvs(
        self,
        paths: list[str],
        prefix: str | None = None,
        is_glob: bool = False,
        extra: list[str] | None = None,
    ) -> list[list[str]]:
        return self.build(paths, prefix, is_glob, extra or [])


def _sed_prefix(prefix: str) -> list[str]:
    # sed's replacement side: only \, & and the delimiter are special
    rep = prefix.replace("\\", "\\\\").replace("/", "\\/").replace("&", "\\&")
    return ["sed", "-u", f"s/^/{rep}/"]


def _tail_builder(base: list[str]) -> Build:
    def build(paths: list[str], prefix: str | None, is_glob: bool, extra: list[str]) -> list[list[str]]:
        files = sorted(globmod.glob(paths[0])) if is_glob else paths
        argvs = [[*base, "-q", "-n+1", "-F", *files]]
        if prefix is not None:
            argvs.append(_sed_prefix(prefix))
        return argvs

    return build


def gnu_tail() -> Tool:
    return Tool("gnu", "GNU tail -n+1 -F", _tail_builder(["tail"]), None, "tail \\| sed -u")


def busybox_tail() -> Tool | None:
    """busybox tail, or None when busybox is not installed (its column stays empty)."""
    exe = shutil.which("busybox")
    if exe is None:
        return None
    return Tool("busybox", "busybox tail -n+1 -F", _tail_builder([exe, "tail"]), None)


def _default_logtail() -> list[str]:
    """The console script next to this interpreter, else `logtail` on PATH, else `python -m logtail`.

    The interpreter's own bin/ comes first because `logtail` on PATH may be a version manager's
    shim (pyenv's is a bash script that runs `pyenv exec`): 40 to 110 ms more per start, measured here.
    """
    beside = Path(sys.executable).parent / "logtail"
    if beside.is_file() and os.access(beside, os.X_OK):
        return [str(beside)]
    on_path = shutil.which("logtail")
    if on_path and "/shims/" not in on_path:
        return [on_path]
    return [sys.executable, "-m", "logtail"]


def logtail(spec: str | None) -> Tool:
    """logtail as `spec` (a command line), else the installed console script, else `python -m logtail`.

    PYTHONPATH points at this checkout either way, and LOGTAIL_* variables are removed.
    `spec` 'gnu' stands GNU tail in for logtail, to check the harness itself.
    """
    if spec == "gnu":
        return Tool("logtail", "GNU tail standing in for logtail", _tail_builder(["tail"]), None)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOGTAIL_")}
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    base = shlex.split(spec) if spec else _default_logtail()

    def build(paths: list[str], prefix: str | None, is_glob: bool, extra: list[str]) -> list[list[str]]:
        argv = [*base, *extra]
        if prefix is not None:
            argv += ["--prefix", prefix]
        return [argv + paths]

    return Tool("logtail", " ".join(shlex.quote(a) for a in base), build, env)


def run_once(tool: Tool, args: list[str]) -> str:
    """stdout (else stderr) of `tool ARGS` run without files, e.g. --help or --version; '' on failure."""
    if tool.env is None:
        return ""
    try:
        argv = tool.argvs([], extra=args)[0]
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30, env=tool.env)
    except (OSError, subprocess.SubprocessError):
        return ""
    return p.stdout.strip() or p.stderr.strip()


def has_option(tool: Tool, option: str) -> bool:
    """Whether the tool's --help mentions `option` (features another branch may not have yet)."""
    return option in run_once(tool, ["--help"])
