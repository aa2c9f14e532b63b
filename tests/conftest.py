from __future__ import annotations

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
