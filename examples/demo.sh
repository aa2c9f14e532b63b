#!/usr/bin/env bash
# Set up logtail and watch it follow the counter Pod's two log files, with a prefix per file.
# On a fresh machine this is all there is to do: bash examples/demo.sh  (Ctrl-C to stop)
# DEMO_SECONDS=N ends it after N seconds of counting, once logtail has printed every line.
set -euo pipefail
cd "$(dirname "$0")/.."
bash .ci/venv  # the clone's .venv, made on the first run (Debian/Ubuntu refuse a system-wide pip install)
dir=$(mktemp -d /tmp/logtail-demo.XXXXXX)
seconds=${DEMO_SECONDS:-0}
sh examples/counter.sh "$dir" "$seconds" &
counter=$!
trap 'kill $counter 2>/dev/null || true' EXIT
echo "counter writes $dir/1.log and $dir/2.log; logtail follows both (Ctrl-C stops it, after draining)" >&2
args=(--prefix '[{name}] ' --log-format console "one=$dir/1.log" "two=$dir/2.log")
if [ "$seconds" -gt 0 ]; then
  args+=(--pid "$counter")  # a bounded demo ends when the counter does
fi
.venv/bin/logtail "${args[@]}"
