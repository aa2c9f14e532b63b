"""The Kubernetes examples validate against the API schemas and run logtail the way the README says."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Only the Kubernetes manifests at the top of examples/ (examples/ci/ holds CI snippets, not manifests).
MANIFESTS = sorted(EXAMPLES.glob("*.yaml"))
# Native sidecars (init containers with restartPolicy: Always) are on by default from 1.29.
OLDEST = "1.29"
VERSIONS = [OLDEST, kubernetes_validate.latest_version()]
QUANTITY = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>m|k|M|G|Ki|Mi|Gi)?$")
UNITS = {None: 1, "m": 1e-3, "k": 1e3, "M": 1e6, "G": 1e9, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30}


def documents(path: Path) -> list[dict[str, Any]]:
    with path.open() as stream:
        return [doc for doc in yaml.safe_load_all(stream) if doc]


def pod_spec(doc: dict[str, Any]) -> dict[str, Any]:
    """The Pod spec inside a Pod, a workload with a Pod template, or a CronJob."""
    spec: dict[str, Any] = doc["spec"]
    if doc["kind"] == "CronJob":
        spec = spec["jobTemplate"]["spec"]
    return spec if doc["kind"] == "Pod" else spec["template"]["spec"]


def logtail_containers(path: Path) -> list[tuple[dict[str, Any], dict[str, Any], str]]:
    """(pod spec, container, "containers" or "initContainers") for every container running logtail."""
    found = []
    for doc in documents(path):
        spec = pod_spec(doc)
        for kind in ("initContainers", "containers"):
            found += [(spec, c, kind) for c in spec.get(kind, []) if "logtail" in c["image"]]
    return found


def option(container: dict[str, Any], name: str) -> str | None:
    """The value of ``--name`` in the container's args (either spelling), else of its LOGTAIL_ variable."""
    args = [*container.get("command", []), *container.get("args", [])]
    for i, arg in enumerate(args):
        if arg == f"--{name}" and i + 1 < len(args):
            return str(args[i + 1])
        if arg.startswith(f"--{name}="):
            return str(arg.split("=", 1)[1])
    env_name = "LOGTAIL_" + name.upper().replace("-", "_")
    return next((str(e["value"]) for e in container.get("env", []) if e["name"] == env_name), None)


def quantity(value: str | int) -> float:
    match = QUANTITY.match(str(value))
    assert match, f"{value!r} is not a Kubernetes quantity"
    return float(match["number"]) * UNITS[match["unit"]]


def emptydir_mount(spec: dict[str, Any], container: dict[str, Any], path: str) -> dict[str, Any] | None:
    """The container's mount of an emptyDir volume that holds ``path``, if any."""
    emptydirs = {v["name"] for v in spec.get("volumes", []) if "emptyDir" in v}
    holding = [
        m for m in container.get("volumeMounts", []) if PurePosixPath(path).is_relative_to(m["mountPath"])
    ]
    innermost = max(holding, key=lambda m: len(m["mountPath"]), default=None)
    return innermost if innermost and innermost["name"] in emptydirs else None


LOGTAIL_CONTAINERS = [
    pytest.param(spec, container, id=f"{path.name}:{container['name']}")
    for path in MANIFESTS
    for spec, container, _ in logtail_containers(path)
]


def test_the_documented_examples_exist() -> None:
    """The README points at these three examples; each runs logtail in at least one container."""
    names = {path.name for path in MANIFESTS}
    assert {"counter-pod.yaml", "native-sidecar-pod.yaml", "job.yaml"} <= names
    for path in MANIFESTS:
        assert logtail_containers(path), f"{path.name} runs no logtail container"


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_example_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    """Every object is valid for the oldest and newest supported Kubernetes, unknown fields included."""
    docs = documents(path)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


@pytest.mark.parametrize(("spec", "container"), LOGTAIL_CONTAINERS)
def test_logtail_runs_with_the_restricted_security_context(
    spec: dict[str, Any], container: dict[str, Any]
) -> None:
    """Each sidecar runs as the image's non-root user, unprivileged, on a read-only root filesystem."""
    context = container.get("securityContext", {})
    assert context.get("runAsNonRoot") is True
    assert context.get("runAsUser") == 65532
    assert context.get("allowPrivilegeEscalation") is False
    assert context.get("readOnlyRootFilesystem") is True
    assert context.get("capabilities", {}).get("drop") == ["ALL"]
    assert not context.get("capabilities", {}).get("add")
    assert context.get("seccompProfile", {}).get("type") == "RuntimeDefault"
    assert not context.get("privileged")


@pytest.mark.parametrize(("spec", "container"), LOGTAIL_CONTAINERS)
def test_logtail_has_requests_within_limits(spec: dict[str, Any], container: dict[str, Any]) -> None:
    """CPU and memory are both requested and limited, and no request exceeds its limit."""
    resources = container.get("resources", {})
    for resource in ("cpu", "memory"):
        request = quantity(resources["requests"][resource])
        limit = quantity(resources["limits"][resource])
        assert 0 < request <= limit, f"{resource}: request {request} > limit {limit}"


@pytest.mark.parametrize(("spec", "container"), LOGTAIL_CONTAINERS)
def test_logtail_follows_files_in_a_mounted_directory(
    spec: dict[str, Any], container: dict[str, Any]
) -> None:
    """Files are followed through a read-only, whole-directory emptyDir mount, where renames stay visible."""
    args = [str(arg) for arg in container.get("args", [])]
    files = [arg.split("=", 1)[-1] for arg in args if arg.split("=", 1)[-1].startswith("/")]
    files = [f for f in files if f != option(container, "checkpoint")]
    assert files, "no absolute path to follow in args"
    for path in files:
        mount = emptydir_mount(spec, container, path)
        assert mount, f"{path} is not inside an emptyDir mount"
        assert "subPath" not in mount, f"{path}: mount the whole directory, not a single file"
        assert "subPathExpr" not in mount, f"{path}: mount the whole directory, not a single file"
        assert mount.get("readOnly") is True, f"{path}: a log forwarder needs no write access to the logs"


def test_each_logtail_keeps_its_own_checkpoint_in_the_shared_volume() -> None:
    """A checkpoint survives a sidecar restart (writable emptyDir) and no two sidecars of a Pod share one."""
    for path in MANIFESTS:
        for doc in documents(path):
            spec = pod_spec(doc)
            containers = [*spec.get("initContainers", []), *spec["containers"]]
            checkpoints = []
            for container in (c for c in containers if "logtail" in c["image"]):
                checkpoint = option(container, "checkpoint")
                assert checkpoint, f"{path.name}:{container['name']} has no --checkpoint"
                mount = emptydir_mount(spec, container, checkpoint)
                assert mount, f"{checkpoint} is not in an emptyDir"
                assert not mount.get("readOnly"), f"{checkpoint} is on a read-only mount"
                checkpoints.append(checkpoint)
            assert len(checkpoints) == len(set(checkpoints)), f"{path.name}: shared checkpoint file"


@pytest.mark.parametrize("name", ["native-sidecar-pod.yaml", "job.yaml"])
def test_native_sidecar_examples_run_logtail_as_a_native_sidecar(name: str) -> None:
    """logtail is an init container that restarts always, so it starts first and stops last."""
    containers = logtail_containers(EXAMPLES / name)
    assert containers
    for _, container, kind in containers:
        assert kind == "initContainers"
        assert container.get("restartPolicy") == "Always"


def test_the_counter_pod_follows_each_file_and_both_with_a_prefix() -> None:
    """The counter example keeps the docs' sidecar names and shows --prefix on a combined sidecar."""
    by_name = {c["name"]: c for _, c, _ in logtail_containers(EXAMPLES / "counter-pod.yaml")}
    assert by_name["count-log-1"]["args"][-1] == "/var/log/1.log"
    assert by_name["count-log-2"]["args"][-1] == "/var/log/2.log"
    assert option(by_name["count-log-all"], "prefix") == "[{name}] "


def test_the_job_waits_for_its_application_only() -> None:
    """The Job's Pod does not restart its application, so it completes once the application exits."""
    (job,) = documents(EXAMPLES / "job.yaml")
    assert job["kind"] == "Job"
    assert pod_spec(job)["restartPolicy"] == "Never"
    assert all("logtail" not in c["image"] for c in pod_spec(job)["containers"])
