#!/usr/bin/env python3
"""What the sidecar costs in a Pod: logtail's image under ``podman kube play``, measured from the host.

    python bench/pod.py              # builds the image (cached layers), about 3 minutes in all
    python bench/pod.py --no-build   # reuse localhost/logtail-sidecar:bench as it is

The Pod is the README's: an application container and a logtail sidecar sharing an emptyDir,
the sidecar with the example's resources (requests cpu 10m / memory 32Mi, limits cpu 500m /
memory 64Mi) and securityContext, following two files. The application container runs
``bench/pacer.py`` (mounted read-only from this checkout) for each phase through ``podman
exec``: one line per ``write()``, as logging frameworks that flush every record do.

Phases: idle (20 s, both files quiet), steady 100, 1,000 and 10,000 lines/s (10 s each), and a
burst of 200,000 lines written as fast as the pacer can. For each: the sidecar's CPU (on-CPU
time of its threads, /proc/PID/task/*/schedstat of its host PID) in % of a core, its RSS now
and its peak (VmHWM), and the memory its container's cgroup is charged (``podman stats``).
At the end every line must have reached the sidecar's stdout (``podman logs``).

Needs podman (runc) and the base image the container tests build (localhost/logtail-test-base;
``pytest tests/test_container.py`` makes it once). ../shared/docs/containers.md says why.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASE_IMAGE = "localhost/logtail-test-base"
IMAGE = "localhost/logtail-sidecar:bench"
POD = "logtail-bench"
SIDECAR = f"{POD}-logtail"
APP = f"{POD}-app"
RESOURCES = {"requests": {"cpu": "10m", "memory": "32Mi"}, "limits": {"cpu": "500m", "memory": "64Mi"}}
STEADY = (100, 1000, 10000)
BURST = 200_000
IDLE_SECONDS = 20.0
STEADY_SECONDS = 10.0


def podman_env(tmp: Path) -> dict[str, str]:
    """runc and rlimits this machine allows, without touching global configuration."""
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    nofile = 1 << 20 if nofile == resource.RLIM_INFINITY else nofile
    conf = tmp / "containers.conf"
    conf.write_text(
        f'[containers]\ndefault_ulimits = ["nofile={nofile}:{nofile}", "nproc=4096:4096"]\n'
        '[engine]\nruntime = "runc"\n'
    )
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def run(argv: list[str], env: dict[str, str], timeout: float = 120) -> str:
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(argv[:4])}: exit {done.returncode}: {done.stderr.strip()[-800:]}")
    return done.stdout


def build(env: dict[str, str]) -> None:
    if subprocess.run(["podman", "image", "exists", BASE_IMAGE], env=env).returncode != 0:
        raise SystemExit(f"{BASE_IMAGE} is missing: run pytest tests/test_container.py once to build it")
    version = re.findall(r'__version__ = "(.+)"', (ROOT / "logtail" / "__init__.py").read_text())[0]
    mounts = [f"--volume={p}:{p}:ro" for p in ("/etc/ssl/certs", "/etc/pip.conf") if Path(p).exists()]
    args = [f"--build-arg=BASE_IMAGE={BASE_IMAGE}", f"--build-arg=VERSION={version}"]
    run(["podman", "build", "--network=host", "--tag", IMAGE, *args, *mounts, str(ROOT)], env, timeout=900)


def pod_spec() -> dict[str, object]:
    security = {
        "runAsNonRoot": True,
        "runAsUser": 65532,
        "runAsGroup": 65532,
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"},
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": POD},
        "spec": {
            "containers": [
                {
                    "name": "app",
                    "image": BASE_IMAGE,
                    "args": ["/bin/sh", "-c", "trap 'exit 0' TERM; while true; do sleep 1; done"],
                    "volumeMounts": [
                        {"name": "logtail-bench-logs", "mountPath": "/var/log/app"},
                        {"name": "logtail-bench-tools", "mountPath": "/bench", "readOnly": True},
                    ],
                },
                {
                    "name": "logtail",
                    "image": IMAGE,
                    "args": ["/var/log/app/app.log", "/var/log/app/idle.log"],
                    "resources": RESOURCES,
                    "securityContext": security,
                    "volumeMounts": [
                        {"name": "logtail-bench-logs", "mountPath": "/var/log/app", "readOnly": True}
                    ],
                },
            ],
            "volumes": [
                {"name": "logtail-bench-logs", "emptyDir": {}},
                {
                    "name": "logtail-bench-tools",
                    "hostPath": {"path": str(ROOT / "bench"), "type": "Directory"},
                },
            ],
        },
    }


def cpu_ns(pid: int) -> int:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError, ValueError):  # a thread that ended meanwhile
            total += int((task / "schedstat").read_text().split()[0])
    return total


def memory(pid: int) -> tuple[float, float]:
    """RSS now and peak RSS (VmHWM), MiB."""
    fields = dict(
        line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines() if ":" in line
    )
    return int(fields["VmRSS"].split()[0]) / 1024, int(fields["VmHWM"].split()[0]) / 1024


def cgroup_memory(env: dict[str, str]) -> str:
    out = run(["podman", "stats", "--no-stream", "--format", "{{.MemUsage}}", SIDECAR], env)
    return out.strip().split(" / ")[0]


def printed(env: dict[str, str]) -> int:
    logs = subprocess.run(["podman", "logs", SIDECAR], env=env, capture_output=True, timeout=300)
    return logs.stdout.count(b"\n")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--no-build", action="store_true", help=f"use {IMAGE} as it is")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="logtail-pod-bench-") as tmp:
        env = podman_env(Path(tmp))
        if not args.no_build:
            build(env)
        spec = Path(tmp) / "pod.json"  # YAML is a superset of JSON: podman kube play reads it
        spec.write_text(json.dumps(pod_spec()))

        def down() -> None:
            subprocess.run(["podman", "pod", "rm", "--force", POD], env=env, capture_output=True, timeout=120)
            subprocess.run(
                ["podman", "volume", "rm", "--force", "logtail-bench-logs"], env=env, capture_output=True
            )

        down()
        run(["podman", "kube", "play", "--network=none", str(spec)], env)
        rows: list[tuple[str, str, str, str, str]] = []
        try:
            for name in ("app.log", "idle.log"):
                run(["podman", "exec", APP, "sh", "-c", f": >> /var/log/app/{name}"], env)
            pid = int(run(["podman", "inspect", "--format", "{{.State.Pid}}", SIDECAR], env))
            time.sleep(3)  # logtail has started and opened both files

            def phase(label: str, seconds: float, pacer: list[str] | None, lines: int = 0) -> None:
                before = cpu_ns(pid)
                if pacer is None:
                    time.sleep(seconds)
                else:
                    app = ["podman", "exec", APP, "python3", "/bench/pacer.py", "/var/log/app/app.log"]
                    run([*app, *pacer], env)
                    time.sleep(1.0)  # the last lines reach stdout
                cpu = (cpu_ns(pid) - before) / 1e9
                # Over the writer's seconds (podman exec's start-up and the second after add idle
                # time only); a burst's length is mostly that start-up, so it is given per line.
                cost = f"{lines / cpu:,.0f} lines per CPU-second" if lines else f"{cpu / seconds * 100:.2f} %"
                rss, peak = memory(pid)
                rows.append((label, cost, f"{rss:.1f} MiB", f"{peak:.1f} MiB", cgroup_memory(env)))
                print(f"{label}: {rows[-1][1:]}", file=sys.stderr)

            phase("idle, 2 files", IDLE_SECONDS, None)
            written = 0
            for rate in STEADY:
                phase(f"{rate:,} lines/s", STEADY_SECONDS, [str(rate), str(STEADY_SECONDS)])
                written += int(rate * STEADY_SECONDS)
            # A burst: as fast as one writer can, one line per write().
            phase(f"burst of {BURST:,} lines", 0, [str(BURST * 10), "0.1"], lines=BURST)
            written += BURST
            deadline = time.monotonic() + 60
            while (got := printed(env)) < written and time.monotonic() < deadline:
                time.sleep(1)
            version = run(["podman", "--version"], env).split()[-1]
        finally:
            down()
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    print(f"\nSidecar in a Pod (podman {version}, runc), limits cpu 500m / memory 64Mi, {when}")
    print("| phase | CPU (% of a core) | RSS | peak RSS | cgroup memory |")
    print("|---|---:|---:|---:|---:|")
    for row in rows:
        print("| " + " | ".join(row) + " |")
    print(f"\nlines printed: {got:,} of {written:,} written")
    return 0 if got >= written else 1


if __name__ == "__main__":
    sys.exit(main())
