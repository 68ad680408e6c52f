#!/usr/bin/env bash
# Try the functions with `sam local invoke`, each event re-signed against a fresh embedded AWS:
#   tools/sam-local/invoke.sh                      every event under events/
#   tools/sam-local/invoke.sh events/verifier/allowed.json [...]
# KUMA_SAM_CONFIG_ENV picks the samconfig.toml environment: `local` (the default here) uses the
# stand-in image from engine.sh and starts that engine; `default` uses a Docker you run yourself and
# the real public.ecr.aws/lambda image. Nothing under events/ is modified: the re-signed copies and
# the embedded AWS's state live in .local/sam-local/.
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

function_of() {  # events/<folder>/x.json -> <Folder>Function (verifier -> VerifierFunction)
    local folder
    folder=$(basename "$(dirname "$1")")
    python3 -c 'import sys; print("".join(p.capitalize() for p in sys.argv[1].replace("-", "_").split("_")) + "Function")' "$folder"
}

if [ $# -eq 0 ]; then
    mapfile -t EVENTS < <(find events -mindepth 2 -name '*.json' | sort)
else
    EVENTS=("$@")
fi
[ ${#EVENTS[@]} -gt 0 ] || { log "no events"; exit 2; }

if [ "$CONFIG_ENV" = local ]; then
    "$ENGINE" start
    "$ENGINE" image
    eval "$("$ENGINE" env)"
fi

rm -rf "$SCRATCH"
mkdir -p "$SCRATCH"
log "sam build (log: $SCRATCH/build.log)"
sam build >"$SCRATCH/build.log" 2>&1 || { cat "$SCRATCH/build.log" >&2; exit 1; }
# The embedded AWS must listen beyond the loopback: the function runs in a container on Docker's bridge.
log "starting the embedded AWS on 0.0.0.0:$MOTO_PORT (log: $SCRATCH/serve.log)"
(cd "$SCRATCH" && exec kuma-iam serve --host 0.0.0.0 --moto-port "$MOTO_PORT" --port 0 \
    --functions "$REPO/functions" >"$SCRATCH/serve.log" 2>&1) &
SERVE_PID=$!
trap 'kill "$SERVE_PID" 2>/dev/null || true; wait "$SERVE_PID" 2>/dev/null || true' EXIT
WORLD="$SCRATCH/.local/world.json"
for _ in $(seq 120); do
    [ -s "$WORLD" ] && break
    kill -0 "$SERVE_PID" 2>/dev/null || { cat "$SCRATCH/serve.log" >&2; exit 1; }
    sleep 0.5
done
[ -s "$WORLD" ] || { log "the embedded AWS did not come up"; cat "$SCRATCH/serve.log" >&2; exit 1; }

kuma-iam events --world "$WORLD" --out "$SCRATCH/events" \
    --container-endpoint "http://host.docker.internal:$MOTO_PORT" >/dev/null
ENV_FILE="$SCRATCH/events/env.json"
eval "$("$REPO/tools/sam-local/sam-env.sh" "$WORLD")"

failed=0
for event in "${EVENTS[@]}"; do
    relative=${event#"$REPO"/}
    relative=${relative#events/}
    fresh="$SCRATCH/events/$relative"
    [ -f "$fresh" ] || { log "$event: no such event after re-signing"; failed=1; continue; }
    fn=$(function_of "$fresh")
    eval "$("$REPO/tools/sam-local/sam-env.sh" "$WORLD" "$fn")"   # the function's own principal
    echo "== $relative ($fn)"
    started=$EPOCHREALTIME
    if sam local invoke --config-env "$CONFIG_ENV" "$fn" --event "$fresh" --env-vars "$ENV_FILE" \
        2>"$SCRATCH/last-invoke.log"; then
        echo
        awk -v a="$started" -v b="$EPOCHREALTIME" 'BEGIN { printf "   (%.1f s)\n", b - a }'
    else
        failed=1
        tail -n 30 "$SCRATCH/last-invoke.log" >&2
    fi
done
exit "$failed"
