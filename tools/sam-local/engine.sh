#!/usr/bin/env bash
# Make `sam local invoke` / `sam local start-api` work on a host with no
# running Docker engine and no reachable container registry:
#   start  - install docker.io + debootstrap if missing, start dockerd if no engine answers
#   stop   - stop the dockerd that `start` launched (and only that one)
#   image  - build a stand-in for public.ecr.aws/lambda/python:3.13 from Debian trixie
#   env    - print the variables a caller should export
# See README.md beside this file for timings and the exact `sam local` flags.
set -euo pipefail

IMAGE_TAG="${KUMA_LAMBDA_IMAGE:-kuma-iam/lambda-python:3.13}"
CACHE_DIR="${KUMA_SAM_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kuma-iam}"
STATE_DIR="${KUMA_DOCKERD_STATE:-/tmp/kuma-iam-dockerd}"
DOCKERD_WAIT="${KUMA_DOCKERD_WAIT:-60}"          # seconds to wait for `docker info`
SUITE=trixie                                     # trixie's python3 is 3.13, like the Lambda runtime
DEB_PACKAGES=python3,ca-certificates
# Lambda's python runtime ships boto3 in /var/runtime; awslambdaric is the runtime client.
PIP_PACKAGES="${KUMA_LAMBDA_PIP:-awslambdaric==4.2.2 boto3==1.44.8}"
PYVER=3.13

PIDFILE="$STATE_DIR/dockerd.pid"
LOGFILE="$STATE_DIR/dockerd.log"

die() { echo "engine.sh: $*" >&2; exit 1; }
log() { echo "engine.sh: $*" >&2; }

engine_up() { docker info >/dev/null 2>&1; }
is_dockerd() { [ "$(cat "/proc/$1/comm" 2>/dev/null)" = dockerd ]; }

# The Debian mirror apt on this host already uses: the only one known to be reachable.
debian_mirror() {
    if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
    local m
    m=$( { grep -hsE '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}'
           grep -hsE '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
               sed -E 's/\[[^]]*\]//' | awk '{print $2}'; } |
         grep -E '/debian/?$' | head -n1 )
    [ -n "$m" ] || die "no Debian mirror found in /etc/apt; set DEBIAN_MIRROR"
    echo "${m%/}"
}

# Long steps run with their output in a log and a line every 10 s (apt and debconf chatter belongs in a
# log, not in the user's terminal); a step inside a shell function gets the heartbeat alone.
PROGRESS="$(cd "$(dirname "$0")/.." && pwd)/progress.sh"
heartbeat() {  # $1 = what is going on; says so every 10 s until killed
    local started=$SECONDS
    while sleep 10; do log "  ... $1 ($((SECONDS - started)) s)"; done
}

apt_install() {  # $@ = commands that must exist; each comes from the Debian package of the same need
    local missing=() cmd
    for cmd in "$@"; do
        case "$cmd" in
            dockerd) command -v dockerd >/dev/null || missing+=(docker.io) ;;
            debootstrap) command -v debootstrap >/dev/null || missing+=(debootstrap) ;;
        esac
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    command -v apt-get >/dev/null || die "missing ${missing[*]} and no apt-get to install them"
    log "installing ${missing[*]} with apt-get (log: $STATE_DIR/apt.log; about 30 s)"
    "$PROGRESS" "apt-get update" "$STATE_DIR/apt-update.log" apt-get update || die "apt-get update failed"
    "$PROGRESS" "apt-get install ${missing[*]}" "$STATE_DIR/apt.log" \
        env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}" ||
        die "apt-get install ${missing[*]} failed"
}

cmd_start() {
    # An engine that already answers (Docker Desktop, a system dockerd) is used as it is: nothing to install.
    if engine_up; then log "docker engine already answers"; return 0; fi
    apt_install dockerd
    mkdir -p "$STATE_DIR"
    # dockerd refuses to start over a pidfile whose pid was reused by another process.
    [ -f "$PIDFILE" ] && ! is_dockerd "$(cat "$PIDFILE")" && rm -f "$PIDFILE"
    # No systemd here: run dockerd detached (setsid) so it outlives this shell.
    log "starting dockerd (log: $LOGFILE)"
    setsid dockerd --pidfile "$PIDFILE" >"$LOGFILE" 2>&1 </dev/null &
    local pid=$! i
    for ((i = 0; i < DOCKERD_WAIT; i++)); do
        engine_up && { log "dockerd up (pid $pid)"; return 0; }
        kill -0 "$pid" 2>/dev/null || break
        sleep 1
    done
    tail -n 20 "$LOGFILE" >&2 || true
    die "dockerd did not answer 'docker info' within ${DOCKERD_WAIT}s (log: $LOGFILE)"
}

cmd_stop() {
    [ -f "$PIDFILE" ] || { log "no dockerd started by this script ($PIDFILE missing)"; return 0; }
    local pid i
    pid=$(cat "$PIDFILE")
    # Only kill it if the pid still is a dockerd: pidfiles outlive reboots.
    if ! is_dockerd "$pid"; then
        log "pid $pid is not a dockerd; removing stale pidfile"; rm -f "$PIDFILE"; return 0
    fi
    kill -TERM "$pid"
    for ((i = 0; i < 30; i++)); do kill -0 "$pid" 2>/dev/null || { log "dockerd stopped"; return 0; }; sleep 1; done
    die "dockerd (pid $pid) still running after 30s"
}

cmd_env() {
    # dockerd listens on the default socket; being explicit stops a stray DOCKER_HOST from winning.
    echo "export DOCKER_HOST=unix:///var/run/docker.sock"
    echo "export KUMA_LAMBDA_IMAGE=$IMAGE_TAG"
    # SAM CLI otherwise sends telemetry to AWS; this host has no such network.
    echo "export SAM_CLI_TELEMETRY=0"
    # Lambda containers sit on the default bridge (SAM ignores --docker-network host), so a host
    # service must listen on 0.0.0.0 (or this address) and the function must call this address,
    # or host.docker.internal with `--add-host host.docker.internal:host-gateway`.
    local gw
    gw=$(docker network inspect -f '{{(index .IPAM.Config 0).Gateway}}' bridge 2>/dev/null || true)
    [ -z "$gw" ] || echo "export KUMA_DOCKER_HOST_IP=$gw"
}

# What the Lambda RIE runs: with no CMD in the image, aws-lambda-rie (mounted by SAM at
# /var/rapid) execs /var/runtime/bootstrap with _HANDLER set from AWS_LAMBDA_FUNCTION_HANDLER.
# The sys.path order copies Lambda's: function code, then layers, then the runtime's boto3.
# shellcheck disable=SC2016  # the $-expressions are for the container's shell
BOOTSTRAP='#!/bin/sh
export PYTHONPATH="/var/task:/opt/python/lib/python'"$PYVER"'/site-packages:/opt/python:/var/runtime${PYTHONPATH:+:$PYTHONPATH}"
exec /usr/bin/python3 -m awslambdaric "$_HANDLER"
'
# Image config that the public.ecr.aws/lambda/python image carries, minus ENTRYPOINT/CMD:
# SAM sets the entrypoint to the RIE, and a CMD would be taken as the bootstrap to run.
IMAGE_CHANGES=(
    "ENV LAMBDA_TASK_ROOT=/var/task"
    "ENV LAMBDA_RUNTIME_DIR=/var/runtime"
    "ENV LANG=C.UTF-8"
    "ENV TZ=:/etc/localtime"
    "ENV PATH=/usr/local/bin:/usr/bin:/bin:/opt/bin"
    "ENV LD_LIBRARY_PATH=/var/task:/var/task/lib:/opt/lib"
    "WORKDIR /var/task"
)

arch_names() {  # prints: <debian arch> <manylinux arch>
    case "$(uname -m)" in
        x86_64) echo "amd64 x86_64" ;;
        aarch64) echo "arm64 aarch64" ;;
        *) die "unsupported architecture $(uname -m)" ;;
    esac
}

# Everything the image is made of; `declare -f` covers the build steps (not their comments).
recipe_hash() {
    { echo "$SUITE $DEB_PACKAGES $PIP_PACKAGES $(arch_names) $(debian_mirror)"
      echo "$BOOTSTRAP"; printf '%s\n' "${IMAGE_CHANGES[@]}"; declare -f build_rootfs_tar; } |
        sha256sum | cut -c1-16
}

WORK="" HEARTBEAT=""
cleanup() {
    [ -z "$HEARTBEAT" ] || kill "$HEARTBEAT" 2>/dev/null || true
    [ -n "$WORK" ] || return 0
    # debootstrap mounts proc/sys in the target; never rm -rf through a live mount.
    umount -R "$WORK/rootfs/proc" "$WORK/rootfs/sys" 2>/dev/null || true
    rm -rf --one-file-system "$WORK"
}
trap cleanup EXIT

build_rootfs_tar() {  # $1 = output tarball
    local out=$1 rootfs deb_arch py_arch
    read -r deb_arch py_arch < <(arch_names)
    WORK=$(mktemp -d /tmp/kuma-rootfs.XXXXXX)
    rootfs=$WORK/rootfs
    log "debootstrap $SUITE ($deb_arch) from $(debian_mirror)"
    debootstrap --variant=minbase --arch="$deb_arch" --include="$DEB_PACKAGES" \
        "$SUITE" "$rootfs" "$(debian_mirror)" >"$WORK/debootstrap.log" 2>&1 ||
        { tail -n 30 "$WORK/debootstrap.log" >&2; die "debootstrap failed"; }

    # Install wheels from the host's pip for the image's interpreter: no pip, compiler or
    # network is needed inside the rootfs. Both manylinux tags: older pips don't expand them.
    log "pip: $PIP_PACKAGES -> /var/runtime"
    # shellcheck disable=SC2086  # PIP_PACKAGES is a word list on purpose
    python3 -m pip install -qq --no-warn-conflicts --disable-pip-version-check --no-compile \
        --target "$rootfs/var/runtime" --only-binary=:all: --implementation cp \
        --python-version "$PYVER" --platform "manylinux2014_$py_arch" \
        --platform "manylinux_2_28_$py_arch" \
        $PIP_PACKAGES
    printf '%s' "$BOOTSTRAP" >"$rootfs/var/runtime/bootstrap"
    chmod 755 "$rootfs/var/runtime/bootstrap"
    mkdir -p "$rootfs/var/task" "$rootfs/opt"
    # Byte-compile with the image's own python so each cold start skips it (boto3 is big).
    chroot "$rootfs" /usr/bin/python3 -m compileall -q -j0 /var/runtime >/dev/null
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/*
    tar -C "$rootfs" --numeric-owner --exclude='./dev/*' --exclude='./proc/*' \
        --exclude='./sys/*' -cf "$out.part" .
    mv "$out.part" "$out"
}

cmd_image() {
    engine_up || die "no docker engine answers; run '$0 start' first"
    local hash tar have
    hash=$(recipe_hash)
    have=$(docker image inspect -f '{{index .Config.Labels "kuma-iam.recipe"}}' "$IMAGE_TAG" 2>/dev/null || true)
    if [ "$have" = "$hash" ]; then log "$IMAGE_TAG is current (recipe $hash)"; return 0; fi

    mkdir -p "$CACHE_DIR"
    exec 9>"$CACHE_DIR/image.lock"
    flock 9   # two callers at once would debootstrap twice
    tar="$CACHE_DIR/lambda-python$PYVER-rootfs-$hash.tar"
    if [ -f "$tar" ]; then
        log "using cached rootfs $tar"
    else
        apt_install debootstrap
        log "building the stand-in Lambda image, once (1-3 min; the rootfs is cached for later)"
        heartbeat "building the image" &
        HEARTBEAT=$!
        build_rootfs_tar "$tar"
        kill "$HEARTBEAT" 2>/dev/null || true
        # Older recipes' tarballs are dead weight.
        find "$CACHE_DIR" -name "lambda-python$PYVER-rootfs-*.tar" ! -name "${tar##*/}" -delete
    fi
    local changes=() c
    for c in "${IMAGE_CHANGES[@]}" "LABEL kuma-iam.recipe=$hash"; do changes+=(--change "$c"); done
    log "importing $tar as $IMAGE_TAG"
    "$PROGRESS" "docker import" "$CACHE_DIR/import.log" docker import "${changes[@]}" "$tar" "$IMAGE_TAG" ||
        die "docker import failed"
    # With --skip-pull-image SAM reuses its derived "<repo>:rapid-<arch>" image as long as it
    # exists, even when the base under it changed: drop it so SAM rebuilds it on top of ours.
    docker image ls --format '{{.Repository}}:{{.Tag}}' "${IMAGE_TAG%:*}" |
        grep ':rapid-' | xargs -r docker image rm >/dev/null || true
    log "built $IMAGE_TAG (recipe $hash)"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    image) cmd_image ;;
    env) cmd_env ;;
    *) echo "usage: $0 start|stop|image|env" >&2; exit 2 ;;
esac
