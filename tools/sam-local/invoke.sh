#!/usr/bin/env bash
# Try the functions with `sam local invoke`, each event re-signed against a fresh embedded AWS, and check
# every answer against events/<function>/expected.json (kuma_iam_cli/local/expected.py, which the sam tier
# reads too); ends with a pass/fail table and exits 1 if any answer is not the expected one:
#   tools/sam-local/invoke.sh                      every event under events/
#   tools/sam-local/invoke.sh events/verifier/allowed.json [...]
# KUMA_SAM_CONFIG_ENV picks the samconfig.toml environment: `local` (the default here) uses the
# stand-in image from engine.sh and starts that engine; `default` uses a Docker you run yourself and
# the real public.ecr.aws/lambda image. Nothing under events/ is modified: the re-signed copies, the
# answers, the logs and the embedded AWS's state live in .local/sam-local/.
set -euo pipefail

REPO=$(cd "$(dirname "$0")/../.." && pwd)
cd "$REPO"
CONFIG_ENV="${KUMA_SAM_CONFIG_ENV:-local}"
MOTO_PORT="${KUMA_SAM_MOTO_PORT:-5055}"
SCRATCH="$REPO/.local/sam-local"
ENGINE="$REPO/tools/sam-local/engine.sh"
[ -x "$REPO/.venv/bin/sam" ] && export PATH="$REPO/.venv/bin:$PATH"   # sam, kuma-iam, python3.13
export SAM_CLI_TELEMETRY=0

log() { echo "invoke.sh: $*" >&2; }
PYTHON="$REPO/.venv/bin/python"; [ -x "$PYTHON" ] || PYTHON=python3.13
expected() { "$PYTHON" -m kuma_iam_cli.local.expected --events "$REPO/events" "$@"; }
seconds_since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }'; }

# Which events, before anything slow: a mistyped path fails here, listing the valid ones.
listing=$(expected list --validate "$@") || exit 2
mapfile -t EVENTS <<<"$listing"
[ -n "${EVENTS[0]:-}" ] || { log "no events under events/"; exit 2; }

rm -rf "$SCRATCH"
mkdir -p "$SCRATCH/answers"
# The embedded AWS first: a busy port is known in a second, not after the build. It listens beyond the
# loopback because the function runs in a container on Docker's bridge.
log "starting the embedded AWS on 0.0.0.0:$MOTO_PORT (log: $SCRATCH/serve.log)"
kuma-iam serve --host 0.0.0.0 --moto-port "$MOTO_PORT" --port 0 --state-dir "$SCRATCH" \
    --functions "$REPO/functions" >"$SCRATCH/serve.log" 2>&1 &
SERVE_PID=$!
trap 'kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true' EXIT
WORLD="$SCRATCH/$MOTO_PORT/world.json"
# Seconds on a quiet machine; a loaded one can need minutes to start moto and seed the world.
for _ in $(seq 600); do
    [ -s "$WORLD" ] && break
    if ! kill -0 "$SERVE_PID" 2>/dev/null; then
        cat "$SCRATCH/serve.log" >&2
        log "the embedded AWS's port comes from KUMA_SAM_MOTO_PORT, e.g. KUMA_SAM_MOTO_PORT=$((MOTO_PORT + 1)) make sam-local-invoke"
        exit 2
    fi
    sleep 0.5
done
[ -s "$WORLD" ] || { log "the embedded AWS did not come up in 300 s"; tail -n 20 "$SCRATCH/serve.log" >&2; exit 1; }

if [ "$CONFIG_ENV" = local ]; then
    "$ENGINE" start
    "$ENGINE" image
    eval "$("$ENGINE" env)"
fi

started=$EPOCHREALTIME
log "sam build (log: $SCRATCH/build.log; about 15 s)"
sam build >"$SCRATCH/build.log" 2>&1 || { tail -n 40 "$SCRATCH/build.log" >&2; log "sam build failed"; exit 1; }
log "built in $(seconds_since "$started") s"

kuma-iam events --world "$WORLD" --out "$SCRATCH/events" \
    --container-endpoint "http://host.docker.internal:$MOTO_PORT" >/dev/null 2>&1
ENV_FILE="$SCRATCH/events/env.json"

log "sam local invoke of ${#EVENTS[@]} events (each 10-20 s: SAM rebuilds the layer image every time)"
labels=() verdicts=() details=() times=()
failed=0 index=0
for line in "${EVENTS[@]}"; do
    read -r label fn <<<"$line"
    index=$((index + 1))
    # As kuma-iam events wrote it (re-signed when it carries a token); else the committed event as it is.
    event="$SCRATCH/events/$label.json"
    [ -f "$event" ] || event="$REPO/events/$label.json"
    answer="$SCRATCH/answers/$label.json"
    mkdir -p "$(dirname "$answer")"
    printf '  [%2d/%d] %-40s ' "$index" "${#EVENTS[@]}" "$label" >&2
    eval "$("$REPO/tools/sam-local/sam-env.sh" "$WORLD" "$fn")"   # the function's own principal's keys
    began=$EPOCHREALTIME
    if sam local invoke --config-env "$CONFIG_ENV" "$fn" --event "$event" --env-vars "$ENV_FILE" \
        >"$answer" 2>"$SCRATCH/answers/$label.log"; then
        verdict=$(expected check "$label" "$answer") || true
    else
        verdict="FAIL sam local invoke exited non-zero (log: $SCRATCH/answers/$label.log)"
    fi
    seconds=$(seconds_since "$began")
    labels+=("$label") verdicts+=("${verdict%% *}") details+=("${verdict#* }") times+=("$seconds")
    printf '%s  %5s s\n' "${verdict%% *}" "$seconds" >&2
    if [ "${verdict%% *}" != PASS ]; then
        failed=$((failed + 1))
        tail -n 15 "$SCRATCH/answers/$label.log" >&2
    fi
done

echo
printf '%-40s %-6s %7s  %s\n' "event" "result" "time" "answer (expected: events/<function>/expected.json)"
for i in "${!labels[@]}"; do
    printf '%-40s %-6s %5s s  %s\n' "${labels[$i]}" "${verdicts[$i]}" "${times[$i]}" "${details[$i]}"
done
echo "$(( ${#labels[@]} - failed )) passed, $failed failed; answers and logs in $SCRATCH/answers/"
[ "$failed" -eq 0 ]
