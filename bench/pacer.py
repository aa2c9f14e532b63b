"""A writer process that appends numbered, timestamped lines at a fixed rate, one write() per line.

    python bench/pacer.py PATH RATE SECONDS [LINE_BYTES]

Line i is due at start + i / RATE; every due line is written at once (its own os.write on
its own O_APPEND descriptor, as a logging handler does), then the pacer sleeps until the
next one is due, so the rate stays exact even where sleep() overshoots (at 10,000 lines/s a
sleep of 100 us takes longer: the lines then go out in small runs). Each line is
``L <seq> <monotonic ns of its write> xxx...\\n``; CLOCK_MONOTONIC is the same in every
process, so the reader computes the delay from the line alone. At the end one JSON object
goes to stdout: lines written, first and last write time, and the largest lag behind
schedule.
"""

from __future__ import annotations

import json
import os
import sys
import time


def main() -> int:
    path, rate, seconds = sys.argv[1], float(sys.argv[2]), float(sys.argv[3])
    line_len = int(sys.argv[4]) if len(sys.argv) > 4 else 80
    n = max(1, round(rate * seconds))
    period = 1e9 / rate
    fd = os.open(path, os.O_WRONLY | os.O_APPEND)
    clock = time.monotonic_ns
    t0 = clock()
    first = last = t0
    max_lag = 0
    i = 0
    while i < n:
        now = clock()
        due = t0 + int(i * period)
        if now < due:
            time.sleep((due - now) / 1e9)
            continue
        max_lag = max(max_lag, now - due)
        while i < n and t0 + int(i * period) <= now:
            ts = clock()
            head = b"L %d %d " % (i, ts)
            os.write(fd, head + b"x" * (line_len - 1 - len(head)) + b"\n")
            if i == 0:
                first = ts
            last = ts
            i += 1
    os.close(fd)
    json.dump({"lines": n, "first_ns": first, "last_ns": last, "max_lag_ms": max_lag / 1e6}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
