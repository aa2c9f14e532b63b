"""End to end in a pod runtime: the Dockerfile's image runs examples/counter-pod.yaml under podman.

../shared/docs/containers.md says why it goes this way: no registry (so a debootstrap base image stands in
for python:3.12-slim and busybox), runc and lower rlimits (in a containers.conf of the test's own).
"""

from __future__ import annotations

import json
import os
import re
import resource
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

pytestmark = [pytest.mark.container, pytest.mark.e2e]

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "localhost/logtail-test-base"  # built once, kept between runs
IMAGE = "localhost/logtail-sidecar:test"
VOLUME_PREFIX = "logtail-test-"
POD = "counter"
SIDECARS = ["count-log-1", "count-log-2", "count-log-all"]
BURST = 10_000  # lines per file written as fast as sh can, right before the Pod is stopped
TICKS = 3  # lines per file logtail must print while the Pod runs, before the burst is triggered
MAX_IMAGE_BYTES = 30_000_000
PYTHON = "/opt/logtail/bin/python"  # the image's interpreter, for checks that need one
# Not in the image: installers, test suites, GUI and interactive tools (see the Dockerfile).
ABSENT = ["pip", "setuptools", "ensurepip", "venv", "tkinter", "idlelib", "test", "unittest", "pydoc"]
VERSION = re.findall(r'__version__ = "(.+)"', (ROOT / "logtail" / "__init__.py").read_text())[0]

# The test's stand-in for the docs' `count` container: the same lines, once a second, until the test
# creates /var/log/go; then a burst of numbered lines, a "burst done" on stdout, and no more writes.
# It keeps running (as an application would) and exits at once on SIGTERM.
COUNT_SCRIPT = f"""
trap 'exit 0' TERM
i=0
until [ -e /var/log/go ]; do
  echo "$i: $(date)" >> /var/log/1.log
  echo "$(date) INFO $i" >> /var/log/2.log
  i=$((i+1))
  sleep 1
done
end=$((i+{BURST}))
while [ $i -lt $end ]; do
  echo "$i: burst" >> /var/log/1.log
  echo "burst INFO $i" >> /var/log/2.log
  i=$((i+1))
done
echo "burst done"
while true; do sleep 1; done
"""


class LiteralDumper(yaml.SafeDumper):
    """Writes multi-line strings as ``|`` blocks: podman's YAML parser rejects PyYAML's quoted ones."""

    def represent_str(self, data: str) -> yaml.ScalarNode:
        return self.represent_scalar("tag:yaml.org,2002:str", data, style="|" if "\n" in data else None)


LiteralDumper.add_representer(str, LiteralDumper.represent_str)


def require(tool: str) -> None:
    """Skip without ``tool`` on a developer's machine; in CI a missing tool is a failure, not a skip."""
    if shutil.which(tool) is None:
        packages = "podman runc catatonit debootstrap uidmap slirp4netns"
        message = f"{tool} is not installed (apt-get install -y {packages})"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)


def run(argv: list[str], env: dict[str, str], timeout: float = 60, **kwargs: Any) -> str:
    """Run a command and return its stdout; fail the test with its stderr if it fails."""
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}"
    return done.stdout


def wait_for(predicate: Callable[[], object], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.2)


def logs(container: str, env: dict[str, str]) -> list[str]:
    """The container's stdout lines (``podman logs`` keeps stderr, logtail's diagnostics, apart)."""
    return run(["podman", "logs", container], env).splitlines()


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for podman: runc and rlimits this machine allows, without touching global config."""
    require("podman")
    conf = tmp_path_factory.mktemp("podman") / "containers.conf"
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]  # podman's default is above it on some hosts
    nofile = 1 << 20 if nofile == resource.RLIM_INFINITY else nofile
    conf.write_text(
        f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n'
        '[engine]\nruntime = "runc"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


@pytest.fixture(scope="module")
def image(env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> str:
    """The image built from the Dockerfile on a local Debian base (no registry can be reached)."""
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE], env=env).returncode != 0:
        require("debootstrap")
        rootfs = tmp_path_factory.mktemp("rootfs")
        packages = "--include=python3,python3-venv"
        run(["debootstrap", "--variant=minbase", packages, "bookworm", str(rootfs)], env, timeout=600)
        with subprocess.Popen(["tar", "-C", str(rootfs), "-c", "."], stdout=subprocess.PIPE) as tar:
            change = "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
            run(["podman", "import", "--change", change, "-", BASE_IMAGE], env, timeout=300, stdin=tar.stdout)
        assert tar.returncode == 0, f"tar of {rootfs} failed"
        shutil.rmtree(rootfs)
    # pip in the build reaches the package index through this machine's certificates, mounted for
    # the RUN steps only, and through the host's network (no container network stack needed).
    mounts = [f"--volume={p}:{p}:ro" for p in ("/etc/ssl/certs", "/etc/pip.conf") if Path(p).exists()]
    build_args = [f"--build-arg=BASE_IMAGE={BASE_IMAGE}", f"--build-arg=VERSION={VERSION}"]
    build = ["podman", "build", "--network=host", "--tag", IMAGE, *build_args, *mounts, str(ROOT)]
    run(build, env, timeout=600)
    return IMAGE


@pytest.fixture
def counter_pod(env: dict[str, str], image: str, tmp_path: Path) -> Iterator[Path]:
    """examples/counter-pod.yaml played with local images and COUNT_SCRIPT; yields its /var/log on the host.

    Its volumes get names of the test's own, so a run interrupted before its cleanup cannot hand stale
    files or checkpoints to the next one, and no one else's volume is touched.
    """
    pod = yaml.safe_load((ROOT / "examples" / "counter-pod.yaml").read_text())
    for container in pod["spec"]["containers"]:
        if container["name"] == "count":
            container.update(image=BASE_IMAGE, args=["/bin/sh", "-c", COUNT_SCRIPT.strip()])
        else:
            container["image"] = image
        for mount in container.get("volumeMounts", []):
            mount["name"] = VOLUME_PREFIX + mount["name"]
    volumes = []
    for volume in pod["spec"]["volumes"]:
        volume["name"] = VOLUME_PREFIX + volume["name"]
        volumes.append(volume["name"])
    spec = tmp_path / "counter-pod.yaml"
    spec.write_text(yaml.dump(pod, Dumper=LiteralDumper))

    def remove() -> None:
        subprocess.run(["podman", "kube", "down", str(spec)], env=env, capture_output=True, timeout=120)
        subprocess.run(["podman", "pod", "rm", "--force", POD], env=env, capture_output=True, timeout=120)
        subprocess.run(["podman", "volume", "rm", "--force", *volumes], env=env, capture_output=True)

    remove()
    run(["podman", "kube", "play", "--network=none", str(spec)], env)  # logtail needs no network
    try:
        yield mounted(f"{POD}-count", "/var/log", env)[0]
    finally:
        remove()


def mounted(container: str, destination: str, env: dict[str, str]) -> tuple[Path, bool]:
    """The host directory mounted at ``destination`` in the container, and whether it is writable there."""
    template = (
        '{{range .Mounts}}{{if eq .Destination "' + destination + '"}}{{.Source}} {{.RW}}{{end}}{{end}}'
    )
    source, writable = inspect(container, template, env).split()
    return Path(source), writable == "true"


def inspect(container: str, template: str, env: dict[str, str]) -> str:
    return run(["podman", "inspect", "--format", template, container], env).strip()


# Every program in a bin or sbin directory of the image, and modules found by import (or None).
LIST_IMAGE = f"""
import importlib.util, json, os
programs = sorted(
    f for d, _, fs in os.walk("/") if os.path.basename(d) in ("bin", "sbin") and not d.startswith("/proc")
    for f in fs
)
print(json.dumps([programs, [m for m in {ABSENT!r} if importlib.util.find_spec(m)]]))
"""

# Imports every module of logtail and of the packages installed with it, as a late import would; a
# failure is reported unless the missing module is another optional package (rich, twisted, ...).
IMPORT_ALL = """
import importlib, importlib.metadata, pkgutil, sys
missing = []
for dist in importlib.metadata.distributions():
    for top in (dist.read_text("top_level.txt") or "").split() or [dist.name.replace("-", "_")]:
        try:
            package = importlib.import_module(top)
        except ModuleNotFoundError:
            continue
        paths = getattr(package, "__path__", [])
        for info in pkgutil.walk_packages(paths, top + "."):
            try:
                importlib.import_module(info.name)
            except ImportError as exc:
                if (exc.name or "").split(".")[0] in sys.stdlib_module_names:
                    missing.append(f"{info.name}: {exc}")
            except Exception:
                pass  # a module for another platform (click._winconsole asserts it runs on Windows)
print("\\n".join(missing) or "all imported")
"""


@pytest.mark.timeout(1200)  # includes building the base image (~1.5 min) and the image (~1 min)
def test_image_holds_logtail_and_nothing_else(env: dict[str, str], image: str) -> None:
    """At most 30 MB; no shell, package manager or pip; user 65532, exec-form entrypoint, OCI labels."""
    size = int(inspect(image, "{{.Size}}", env))
    assert size <= MAX_IMAGE_BYTES, f"the image is {size / 1e6:.1f} MB"
    assert inspect(image, "{{.Config.User}}", env) == "65532:65532"
    assert inspect(image, "{{json .Config.Entrypoint}}", env) == '["logtail"]'
    assert inspect(image, '{{index .Config.Labels "org.opencontainers.image.version"}}', env) == VERSION
    assert "PYTHONDONTWRITEBYTECODE=1" in inspect(image, "{{json .Config.Env}}", env)
    python = ["podman", "run", "--rm", "--read-only", "--network=none", f"--entrypoint={PYTHON}", image]
    programs, found = json.loads(run([*python, "-c", LIST_IMAGE], env))
    assert {re.sub(r"^python3\.\d+$", "python3", p) for p in programs} <= {"python", "python3", "logtail"}
    assert found == [], "should not be in the image"
    assert run([*python, "-c", "import os; print(os.getuid(), os.getgid())"], env).strip() == "65532 65532"
    assert run([*python, "-c", IMPORT_ALL], env).strip() == "all imported"


# Runs logtail with its stdout closed by the reader (a shell would use a pipe; the image has none).
STDOUT_CLOSED = """
import os, runpy, sys
read, write = os.pipe()
os.close(read)
os.dup2(write, 1)
sys.argv[0] = "logtail"
runpy.run_module("logtail", run_name="__main__")
"""

# A bug's traceback, rendered the way logtail logs one (``follower failed``), in each log format.
TRACEBACK = """
import sys
from logtail import logs
logs.configure("info", sys.argv[1])
try:
    1 / 0
except ZeroDivisionError:
    logs.get().exception("follower failed")
"""


@pytest.fixture
def logs_dir(tmp_path: Path) -> Path:
    """A log directory with two lines in app.log and a symlink to a file outside it, for ``/logs``."""
    directory = tmp_path / "logs"
    directory.mkdir(mode=0o755)
    (directory / "app.log").write_bytes(b"first\nsecond\n")
    (directory / "evil.log").symlink_to("/opt/logtail/pyvenv.cfg")  # a file that exists in the image
    return directory


def run_image(
    env: dict[str, str], image: str, args: list[str], *options: str
) -> subprocess.CompletedProcess[str]:
    """Run the image once, read-only and without network, and return what it did."""
    argv = ["podman", "run", "--rm", "--read-only", "--network=none", "--timeout=50", *options, image, *args]
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)


@pytest.mark.timeout(1200)
def test_image_runs_every_path_that_imports_late(env: dict[str, str], image: str, logs_dir: Path) -> None:
    """Help, version, each output and log format, a usage error, a runtime error, a bug's traceback, a
    symlink refusal, --exec, --until and --timeout all work in the image: no module they import is missing."""
    logs = f"--volume={logs_dir}:/logs:ro"

    def ok(args: list[str], *options: str, status: int = 0) -> subprocess.CompletedProcess[str]:
        done = run_image(env, image, args, logs, *options)
        assert done.returncode == status, f"{args}: exit {done.returncode}\n{done.stderr[-3000:]}"
        assert "Traceback" not in done.stderr or args[:2] == ["-c", TRACEBACK], done.stderr
        return done

    assert "Usage: logtail [OPTIONS]" in ok(["--help"]).stdout
    assert ok(["--version"]).stdout == f"logtail, version {VERSION}\n"
    raw = ok(["--no-follow", "--prefix", "[{name}] ", "--log-format", "json", "/logs/app.log"])
    assert raw.stdout == "[app.log] first\n[app.log] second\n"
    assert json.loads(raw.stderr.splitlines()[-1])["event"] == "summary"
    as_json = ok(["--no-follow", "--format", "json", "--log-format", "console", "/logs/app.log"])
    assert [json.loads(line)["message"] for line in as_json.stdout.splitlines()] == ["first", "second"]
    assert "summary" in as_json.stderr
    on_a_terminal = ok(["--no-follow", "--log-format", "console", "/logs/app.log"], "--tty")  # in colour
    assert "first" in on_a_terminal.stdout
    assert "summary" in on_a_terminal.stdout  # a terminal is stdout and stderr at once

    usage = ok(["--lines", "many", "/logs/app.log"], status=2)
    assert usage.stderr.startswith("logtail: error: ")
    assert usage.stderr.count("\n") == 1, usage.stderr
    closed = ok(["-c", STDOUT_CLOSED, "--no-follow", "/logs/app.log"], f"--entrypoint={PYTHON}", status=1)
    assert "stdout was closed" in closed.stderr, closed.stderr
    for log_format in ("json", "console"):
        bug = ok(["-c", TRACEBACK, log_format], f"--entrypoint={PYTHON}")
        assert "ZeroDivisionError" in bug.stderr, bug.stderr
        assert "Traceback" in bug.stderr, bug.stderr

    refused = ok(["--no-follow", "--log-format", "json", "/logs/evil.log"], status=1)
    assert refused.stdout == ""
    assert "outside /logs" in refused.stderr, refused.stderr

    ran = ok(["--exec", "--log-format", "json", "/logs/app.log", "--", PYTHON, "-c", "exit(7)"], status=7)
    assert ran.stdout == "first\nsecond\n"
    ok(["--exec", "--log-format", "json", "/logs/app.log", "--", "/no/such/program"], status=127)
    assert ok(["--until", "^sec", "--log-format", "json", "/logs/app.log"]).stdout == "first\nsecond\n"
    ok(["--timeout", "0.5", "--log-format", "json", "/logs/app.log"], status=124)


@pytest.mark.timeout(1200)
@pytest.mark.parametrize("watch", ["inotify", "poll"])
def test_image_follows_rotation_and_drains_on_sigterm(
    env: dict[str, str], image: str, logs_dir: Path, tmp_path: Path, watch: str
) -> None:
    """Following a glob with inotify or --poll and a checkpoint, the image prints lines written while it
    runs across a rename rotation, and on SIGTERM prints the rest, writes its checkpoint and exits 0."""
    state = tmp_path / "state"
    state.mkdir(mode=0o777)
    state.chmod(0o777)  # the umask took some bits; the image's user must be able to write here
    (logs_dir / "evil.log").unlink()
    name = f"logtail-test-follow-{watch}"
    options = ["--poll", "--poll-interval", "0.2"] if watch == "poll" else []
    log_format = "console" if watch == "poll" else "json"
    args = [*options, "--log-format", log_format, "--checkpoint", "/state/cp.json", "/logs/*.log"]
    mounts = [f"--volume={logs_dir}:/logs:ro", f"--volume={state}:/state"]
    subprocess.run(["podman", "rm", "--force", name], env=env, capture_output=True)
    run(
        ["podman", "run", "--detach", "--read-only", "--network=none", "--name", name, *mounts, image, *args],
        env,
    )
    try:
        wait_for(lambda: logs(name, env) == ["first", "second"], timeout=30, what="the lines already there")
        pid_1 = run(["podman", "exec", name, PYTHON, "-c", "print(open('/proc/1/cmdline').read())"], env)
        assert pid_1.split("\0")[:2] == [PYTHON, "/opt/logtail/bin/logtail"], "logtail is not PID 1"
        with (logs_dir / "app.log").open("ab") as app:
            app.write(b"third\n")
        (logs_dir / "app.log").rename(logs_dir / "app.log.1")
        (logs_dir / "app.log").write_bytes(b"fourth\n")
        wait_for(lambda: len(logs(name, env)) >= 4, timeout=30, what="the lines written while it runs")
        with (logs_dir / "app.log").open("ab") as app:  # right before the stop: mostly printed by the drain
            app.write(b"".join(b"%d\n" % i for i in range(50_000)))
        run(["podman", "stop", "--time", "30", name], env, timeout=60)
        assert logs(name, env) == ["first", "second", "third", "fourth", *map(str, range(50_000))]
        assert inspect(name, "{{.State.ExitCode}}", env) == "0"
        assert (state / "cp.json").is_file()
    finally:
        subprocess.run(["podman", "rm", "--force", name], env=env, capture_output=True)


@pytest.mark.timeout(1200)
def test_counter_pod_sidecars_print_every_line_and_drain_on_stop(
    env: dict[str, str], counter_pod: Path
) -> None:
    """Each sidecar prints its files' lines in order while the Pod runs, and all of a burst on stop."""
    wait_for(
        lambda: all(len(logs(f"{POD}-{name}", env)) >= TICKS for name in SIDECARS),
        timeout=60,
        what=f"{TICKS} lines from every sidecar while the Pod runs",
    )
    sidecars = [f"{POD}-{name}" for name in SIDECARS]
    for sidecar in sidecars:
        assert inspect(sidecar, "{{.HostConfig.ReadonlyRootfs}}", env) == "true"
        assert mounted(sidecar, "/var/log", env) == (counter_pod, False), "logs not shared read-only"
    # Frozen during the burst, the sidecars are thousands of lines behind when they are thawed and
    # stopped at once: the SIGTERM arrives before they can catch up, and only the drain prints the rest.
    run(["podman", "pause", *sidecars], env)
    run(["podman", "exec", f"{POD}-count", "touch", "/var/log/go"], env)
    wait_for(lambda: "burst done" in logs(f"{POD}-count", env), timeout=60, what="the burst")
    printed_before_stop = len(logs(f"{POD}-count-log-1", env))
    run(["podman", "unpause", *sidecars], env)
    run(["podman", "pod", "stop", "--time", "30", POD], env, timeout=120)

    one = (counter_pod / "1.log").read_text().splitlines()
    two = (counter_pod / "2.log").read_text().splitlines()
    assert len(one) >= TICKS + BURST
    assert printed_before_stop <= len(one) - BURST, "the sidecars had caught up before the stop"
    assert [int(line.split(":")[0]) for line in one] == list(range(len(one)))
    assert [int(line.rsplit(" ", 1)[1]) for line in two] == list(range(len(two)))
    assert logs(f"{POD}-count-log-1", env) == one, f"{printed_before_stop} lines printed before the stop"
    assert logs(f"{POD}-count-log-2", env) == two
    combined = logs(f"{POD}-count-log-all", env)
    assert [line.removeprefix("[one] ") for line in combined if line.startswith("[one] ")] == one
    assert [line.removeprefix("[two] ") for line in combined if line.startswith("[two] ")] == two
    assert len(combined) == len(one) + len(two), "a line without its [one] or [two] prefix"
    for name in SIDECARS:
        state = inspect(f"{POD}-{name}", "{{.State.Status}} {{.State.ExitCode}}", env)
        assert state == "exited 0", f"{name}: {state}"
        checkpoint = mounted(f"{POD}-{name}", "/var/lib/logtail", env)[0] / f"{name}.json"
        assert checkpoint.is_file(), f"{name} wrote no checkpoint"
