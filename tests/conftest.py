from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
from support import Logtail


@pytest.fixture
def logtail() -> Iterator[Any]:
    """Start logtail processes; each is killed at the end of the test if it is still running."""
    started: list[Logtail] = []

    def start(*args: Any, **kwargs: Any) -> Logtail:
        argv: Sequence[Any] = args[0] if len(args) == 1 and isinstance(args[0], list) else args
        proc = Logtail(argv, **kwargs)
        started.append(proc)
        return proc

    yield start
    for proc in started:
        proc.kill()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Reruns for end-to-end tests only: they race real tools on a small shared machine.

    A pure or in-process test that fails once fails the run, and so does an end-to-end test
    that fails three times; every rerun is named in the summary (``-rR``), and
    ``LOGTAIL_E2E_RERUNS=0`` turns them off to see a rare failure whole.
    """
    reruns = int(os.environ.get("LOGTAIL_E2E_RERUNS", "2"))
    for item in items:
        # A test that says how it is to be rerun (the model test: never) keeps its own word.
        if item.get_closest_marker("e2e") is not None and item.get_closest_marker("flaky") is None:
            item.add_marker(pytest.mark.flaky(reruns=reruns, reruns_delay=1))
