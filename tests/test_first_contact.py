"""The README's two set-up commands on a fresh Debian 12 and Ubuntu 24.04, as root and as another user.

A clean container with nothing but ``python3`` (no pip, no venv module: the state in which both refuse
``pip install`` and ``python3 -m venv``) gets the repository's tracked files, as a clone would have
them, and runs ``bash examples/demo.sh`` and the install part of ``.ci/run``.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import test_container
from test_container import ROOT, require, run

pytestmark = pytest.mark.container

SECONDS = 3  # DEMO_SECONDS: the counter writes this many lines into each file, then the demo ends
USER = "1000:1000"  # not root, and not known to the image: a user who cannot apt-get install
HOST_CERTS = "/etc/ssl/certs/ca-certificates.crt"  # what pip needs to reach the index from this machine
CERTS = "/opt/host-ca-certificates.crt"  # where the container sees it, apart from its own (apt installs one)


@dataclass(frozen=True)
class System:
    """A distribution that debootstrap can make with python3 and nothing else (minbase)."""

    image: str  # kept between runs
    suite: str
    python: str  # the version its python3 package installs
    mirror: str | None = None  # debootstrap's default (Debian's) if None
    keyring: str | None = None  # checked against it if installed, else unchecked (a throw-away test system)
    components: str = "main"  # as in the sources of a stock install: Ubuntu's venv package is in universe

    def debootstrap(self, rootfs: Path) -> list[str]:
        argv = ["debootstrap", "--variant=minbase", "--include=python3", f"--components={self.components}"]
        if self.keyring:
            argv.append(f"--keyring={self.keyring}" if Path(self.keyring).exists() else "--no-check-gpg")
        argv += [self.suite, str(rootfs)]
        if self.mirror:
            scripts = Path("/usr/share/debootstrap/scripts")
            # Older debootstraps (Debian 12's) know every Ubuntu release by its first one's script.
            script = scripts / self.suite if (scripts / self.suite).exists() else scripts / "gutsy"
            argv += [self.mirror, str(script)]
        return argv


SYSTEMS = {
    "debian-12": System("localhost/logtail-test-bare", "bookworm", "3.11"),
    "ubuntu-24.04": System(
        "localhost/logtail-test-noble",
        "noble",
        "3.12",
        mirror="http://archive.ubuntu.com/ubuntu",
        keyring="/usr/share/keyrings/ubuntu-archive-keyring.gpg",
        components="main,universe",
    ),
}

env = test_container.env  # podman with runc and this machine's rlimits


@pytest.fixture(scope="module", params=SYSTEMS.values(), ids=SYSTEMS.keys())
def system(request: pytest.FixtureRequest) -> System:
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def bare_image(env: dict[str, str], system: System, tmp_path_factory: pytest.TempPathFactory) -> str:
    """The system with python3 and nothing else a Python developer would add (no pip, no venv)."""
    if subprocess.run(["podman", "image", "exists", system.image], env=env).returncode != 0:
        require("debootstrap")
        rootfs = tmp_path_factory.mktemp("bare-rootfs")
        run(system.debootstrap(rootfs), env, 600)
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            change = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            run(["podman", "import", "--change", change, "-", system.image], env, 300, stdin=tar.stdout)
        assert tar.returncode == 0, f"tar of {rootfs} failed"
        shutil.rmtree(rootfs)
    return system.image


def tracked_files() -> bytes:
    """A tar of the repository as a clone has it: the tracked files, with uncommitted edits to them."""
    require("git")
    if not (ROOT / ".git").exists():
        pytest.skip(f"{ROOT} is not a git checkout")
    git = ["git", "-C", str(ROOT), "-c", "user.name=test", "-c", "user.email=test@localhost"]
    stash = subprocess.run([*git, "stash", "create"], capture_output=True, text=True, check=True)
    tree = stash.stdout.strip() or "HEAD"
    return subprocess.run([*git, "archive", "--format=tar", tree], capture_output=True, check=True).stdout


@pytest.fixture(scope="module")
def machine(env: dict[str, str], bare_image: str) -> Iterator[str]:
    """A running bare container with the repository in /root/logtail and, owned by USER, /home/user/logtail.

    It uses the host's network, to reach Debian's mirror (apt) and the package index (pip, with this
    machine's CA bundle; /etc/pip.conf here says no more than that).
    """
    name = f"logtail-first-contact-{uuid.uuid4().hex[:8]}"
    certs = [f"--volume={HOST_CERTS}:{CERTS}:ro", f"--env=PIP_CERT={CERTS}"]
    certs = certs if Path(HOST_CERTS).exists() else []
    start = ["podman", "run", "--detach", "--rm", "--name", name, "--network=host", *certs]
    run([*start, bare_image, "sleep", "infinity"], env)
    try:
        archive = tracked_files()
        for home in ("/root", "/home/user"):
            run(["podman", "exec", name, "mkdir", "-p", f"{home}/logtail"], env)
            untar = ["podman", "exec", "-i", name, "tar", "-x", "-C", f"{home}/logtail"]
            subprocess.run(untar, env=env, input=archive, capture_output=True, timeout=60, check=True)
        run(["podman", "exec", name, "chown", "-R", USER, "/home/user"], env)
        yield name
    finally:
        subprocess.run(["podman", "rm", "--force", "--time=0", name], env=env, capture_output=True)


def sh(
    env: dict[str, str], machine: str, command: str, *, user: str = "root", timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run a bash command line in the clone of ``user`` ("root" or "user") and return what it did."""
    home = "/root" if user == "root" else "/home/user"
    argv = ["podman", "exec", f"--user={'0:0' if user == 'root' else USER}", f"--env=HOME={home}"]
    argv += [f"--workdir={home}/logtail", machine, "bash", "-c", command]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)


def assert_demo_output(done: subprocess.CompletedProcess[str]) -> None:
    """Both files' lines, each with its file's prefix, complete and in order, and nothing else."""
    assert done.returncode == 0, done.stderr[-3000:]
    lines = done.stdout.splitlines()
    one = [line for line in lines if line.startswith("[one] ")]
    two = [line for line in lines if line.startswith("[two] ")]
    assert len(one) + len(two) == len(lines), f"a line without a prefix:\n{done.stdout}"
    assert [int(re.findall(r"^\[one\] (\d+): ", line)[0]) for line in one] == list(range(SECONDS))
    assert [int(re.findall(r" INFO (\d+)$", line)[0]) for line in two] == list(range(SECONDS))


@pytest.mark.timeout(1500)  # includes building the bare base (~1.5 min) and pip installs from the index
def test_demo_and_test_setup_on_a_fresh_system(env: dict[str, str], system: System, machine: str) -> None:
    """Without the venv module, a user is told the one command to run; root gets it installed by apt;
    then the demo prints both files' lines with their prefixes, for root and for the user, a second run
    reuses the environment, and the test command's install part sets up a working pytest."""
    refused = sh(env, machine, "bash examples/demo.sh", user="user")
    assert refused.returncode != 0
    assert refused.stdout == ""
    command = f"sudo apt-get install -y python{system.python}-venv"
    assert refused.stderr == f"logtail: python3 has no venv module; run: {command}\n"
    assert sh(env, machine, "test ! -e .venv", user="user").returncode == 0

    first = sh(env, machine, f"DEMO_SECONDS={SECONDS} bash examples/demo.sh")
    assert_demo_output(first)
    assert f"installing python{system.python}-venv (the venv module) with apt" in first.stderr

    started = time.monotonic()
    again = sh(env, machine, f"DEMO_SECONDS={SECONDS} bash examples/demo.sh")
    took = time.monotonic() - started
    assert_demo_output(again)
    assert "installing" not in again.stderr, again.stderr
    assert took < SECONDS + 10, f"a second run took {took:.1f}s for a {SECONDS}s demo"

    as_user = sh(env, machine, f"DEMO_SECONDS={SECONDS} bash examples/demo.sh", user="user")
    assert_demo_output(as_user)

    # .ci/run's own install step (its apt packages are the tests' tools, left out here: several hundred MB).
    assert "\nbash .ci/venv test\n" in (ROOT / ".ci" / "run").read_text()
    installed = sh(env, machine, "bash .ci/venv test", timeout=900)
    assert installed.returncode == 0, installed.stderr[-3000:]
    tests = sh(env, machine, ".venv/bin/python -m pytest -q -p no:cacheprovider tests/test_framing.py")
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert re.search(r"\d+ passed", tests.stdout), tests.stdout[-3000:]
