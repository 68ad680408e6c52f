#!/usr/bin/env bash
# Run a long command with its output in a log file, saying every 10 s that it is still going (with the
# log's last line), so a first `make install` or engine set-up is never a silent wait:
#   tools/progress.sh "pip install" .venv/install.log python -m pip install ...
# Exits with the command's status; on failure prints the end of the log.
set -euo pipefail
[ $# -ge 3 ] || { echo "usage: $0 WHAT LOG COMMAND [ARG...]" >&2; exit 2; }
what=$1 log=$2
shift 2
mkdir -p "$(dirname "$log")"
started=$SECONDS
"$@" >"$log" 2>&1 </dev/null &
pid=$!
trap 'kill "$pid" 2>/dev/null || true' INT TERM EXIT
next=10
while kill -0 "$pid" 2>/dev/null; do
    sleep 1
    if ((SECONDS - started >= next)); then
        last=$(tail -n 1 "$log" 2>/dev/null | tr -d '\r' | cut -c1-90)
        echo "  ... $what: $((SECONDS - started)) s${last:+  ($last)}" >&2
        next=$((next + 10))
    fi
done
status=0
wait "$pid" || status=$?
trap - INT TERM EXIT
if [ "$status" -ne 0 ]; then
    tail -n 30 "$log" >&2
    echo "$what failed after $((SECONDS - started)) s (log: $log)" >&2
fi
exit "$status"
