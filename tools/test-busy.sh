#!/usr/bin/env bash
# make test-busy: the unit and integration tiers while BUSY processes (default: one per core) keep the cores
# busy, as on a loaded CI runner: a test that passes only on a quiet machine fails here.
# The busy processes are stopped by their own process ids whatever the outcome (trap on EXIT), and each
# also stops by itself should this script vanish without running its trap (kill -9).
# Usage: [BUSY=3] tools/test-busy.sh [pytest arguments...]
set -euo pipefail

busy=${BUSY:-$(nproc)}
pytest=${PYTEST:-.venv/bin/pytest}
[[ $busy =~ ^[0-9]+$ ]] || { echo "test-busy: BUSY must be a number of processes, not '$busy'" >&2; exit 2; }

pids=()
stop_busy() {
	if ((${#pids[@]})); then
		kill "${pids[@]}" 2>/dev/null || true
		wait "${pids[@]}" 2>/dev/null || true
	fi
}
trap stop_busy EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

for ((i = 0; i < busy; i++)); do
	(while kill -0 "$$" 2>/dev/null; do :; done) & # spins on one core for as long as this script lives
	pids+=("$!")
done
echo "test-busy: ${busy} busy processes (pids ${pids[*]}) beside the unit and integration tiers;" \
	"load average $(cut -d' ' -f1-3 /proc/loadavg)"

# One pytest per tier, as `make test` runs them: the tiers are separate sessions (test modules of the same
# name live in both), and the second runs even when the first fails, so one run shows everything.
started=$SECONDS
status=0
for tier in tests/unit tests/integration; do
	began=$SECONDS
	tier_status=0
	"$pytest" "$tier" "$@" || tier_status=$?
	echo "test-busy: ${tier}: pytest exited ${tier_status} after $((SECONDS - began)) s;" \
		"load average $(cut -d' ' -f1-3 /proc/loadavg)"
	((tier_status == 0)) || status=$tier_status
done
echo "test-busy: exit ${status} after $((SECONDS - started)) s beside ${busy} busy processes" \
	"($([[ $status == 0 ]] && echo passed || echo FAILED))"
exit "$status"
