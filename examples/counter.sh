#!/bin/sh
# The Kubernetes docs' counter Pod, as a script: append a line to two log files every second.
# Usage: examples/counter.sh DIR [SECONDS]   (SECONDS: stop after that many lines; default forever)
dir=${1:?usage: counter.sh DIR [SECONDS]}
limit=${2:-0}
mkdir -p "$dir"
i=0
while [ "$limit" -eq 0 ] || [ "$i" -lt "$limit" ]; do
  echo "$i: $(date)" >> "$dir/1.log"
  echo "$(date) INFO $i" >> "$dir/2.log"
  i=$((i + 1))
  sleep 1
done
