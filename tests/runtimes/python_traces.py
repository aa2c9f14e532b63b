"""Prints real Python tracebacks between ordinary log lines, as logging and the interpreter do."""

import logging
import sys

logging.basicConfig(stream=sys.stdout, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
log = logging.getLogger("app")


def parse(text: str) -> int:
    return int(text)


def load(text: str) -> int:
    try:
        return parse(text)
    except ValueError as exc:
        raise RuntimeError("could not load the value") from exc


def cleanup() -> None:
    raise OSError("disk gone")


log.warning("before the first trace")
try:
    load("x")
except RuntimeError:
    log.exception("chained with 'from'")
log.warning("between traces")
try:
    try:
        load("y")
    except RuntimeError:
        cleanup()
except OSError:
    log.exception("during handling")
log.warning("before a group")
try:
    raise ExceptionGroup("several", [ValueError("one"), TypeError("two")])
except ExceptionGroup:
    log.exception("an exception group")
log.warning("after the logged traces")
sys.stdout.flush()
# The interpreter's own report of an uncaught exception, on stderr (redirected by the caller).
try:
    {}["missing"]
except KeyError as exc:
    raise LookupError("no such key") from exc
