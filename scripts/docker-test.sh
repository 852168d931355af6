#!/usr/bin/env bash
# The Docker image, built and run for real (run by scripts/test.sh, so by
# CI too): builds docker/Dockerfile offline and runs tests/tests/docker.rs
# against its containers.
#
# 1. Installs Debian's docker.io and debootstrap when missing.
# 2. Starts dockerd (--bridge=none --iptables=false --ip-masq=false, the
#    default data root so base images stay cached) when no engine answers,
#    and stops it, by its PID, when done.
# 3. Makes the runtime base image when it is not there yet:
#    herald-local/debian:RELEASE, a `debootstrap --variant=minbase` root
#    filesystem of this machine's Debian release (so the host-built
#    binaries' glibc matches) loaded with `docker import`. It is kept
#    between runs.
# 4. Builds the release binaries on the host (broker, CLI, examples) and
#    the image's two targets with BINARIES=prebuilt and
#    RUNTIME_IMAGE=herald-local/debian:RELEASE: no registry is contacted.
# 5. Runs `cargo test -p herald-tests --test docker -- --ignored` with the
#    image names in HERALD_DOCKER_IMAGE / HERALD_DOCKER_EXAMPLES_IMAGE.
#    Every container runs with --network host, on free loopback ports.
# 6. Removes the containers and images it made (not the base image).
#
# It skips, saying why, only when the engine cannot run here (not root and
# no access to a running engine); under CI (CI=true) it never skips.
# Extra arguments go to the test binary (e.g. a test name).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/apt-ensure.sh
# dockerd and debootstrap live in sbin, which a non-login PATH may lack.
PATH="$PATH:/usr/sbin:/sbin"

started=$SECONDS
say() { echo "--- docker: $* (+$((SECONDS - started))s)"; }
skip() {
    if [ "${CI:-}" = "true" ]; then
        echo "--- docker: cannot run the Docker test: $*" >&2
        exit 1
    fi
    echo "--- docker: SKIPPED: $*"
    exit 0
}

# The Debian release of this machine: the runtime base must be the same, as
# the binaries copied into the image are built here.
# shellcheck disable=SC1091
. /etc/os-release
release="${VERSION_CODENAME:-}"
if [ "${ID:-}" != "debian" ] || [ -z "$release" ]; then
    skip "this machine is not Debian (${PRETTY_NAME:-unknown}); the offline build needs Debian's debootstrap and docker.io"
fi
base_image="herald-local/debian:$release"

engine_usable() { "$DOCKER" info >/dev/null 2>&1; }

if [ "$(id -u)" -ne 0 ]; then
    # Without root, use an engine that runs already, or skip.
    DOCKER="$(command -v docker || true)"
    if [ -z "$DOCKER" ] || ! engine_usable; then
        skip "not root and no usable Docker engine (docker info fails)"
    fi
else
    apt_ensure dockerd docker.io "the Docker test builds and runs the image"
    apt_ensure debootstrap debootstrap "the Docker test makes its base image"
fi

# The cluster test's Redis (the host's, on a free loopback port) and the
# Socket.IO client; both no-ops when in place.
apt_ensure redis-server redis-server "the Docker cluster test starts its own"
bash scripts/socketio-deps.sh

# A client that builds with BuildKit (the Dockerfile needs it): `docker`
# with the buildx plugin, or Debian's docker.io client (20.10) with
# DOCKER_BUILDKIT=1, which uses the engine's own BuildKit.
if command -v docker >/dev/null 2>&1 && docker buildx version >/dev/null 2>&1; then
    DOCKER="$(command -v docker)"
elif [ -x /usr/bin/docker ]; then
    DOCKER=/usr/bin/docker
    export DOCKER_BUILDKIT=1
else
    DOCKER="$(command -v docker || true)"
    [ -n "$DOCKER" ] || skip "no docker client"
    export DOCKER_BUILDKIT=1
fi

work="$(mktemp -d /tmp/herald-docker-test.XXXXXX)"
dockerd_pid=""
tag="herald-test-$$"
image="herald-test:$$"
examples_image="herald-test-examples:$$"
stop_engine() {
    [ -n "$dockerd_pid" ] || return 0
    say "stopping dockerd (pid $dockerd_pid)"
    kill -TERM "$dockerd_pid" 2>/dev/null || true
    for _ in $(seq 1 300); do
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$dockerd_pid" 2>/dev/null; then
        echo "dockerd did not stop within 30 s; killing it" >&2
        kill -KILL "$dockerd_pid" 2>/dev/null || true
    fi
    wait "$dockerd_pid" 2>/dev/null || true
    dockerd_pid=""
}
cleanup() {
    local status=$?
    if [ -n "${DOCKER:-}" ] && engine_usable; then
        # The test removes its containers itself; these are what an
        # interrupted run left.
        local left
        left="$("$DOCKER" ps -aq --filter "label=herald-test=$tag" || true)"
        [ -z "$left" ] || "$DOCKER" rm -f $left >/dev/null 2>&1 || true
        "$DOCKER" image rm -f "$image" "$examples_image" >/dev/null 2>&1 || true
        # On the engine this script started, also the build cache of those
        # images (the binaries change every build); images, so the cached
        # base image, are untouched.
        [ -z "$dockerd_pid" ] || "$DOCKER" builder prune -f >/dev/null 2>&1 || true
    fi
    stop_engine
    rm -rf "$work" target/docker-prebuilt
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---- the engine -------------------------------------------------------------
if ! engine_usable; then
    say "starting dockerd"
    dockerd --bridge=none --iptables=false --ip-masq=false \
        >"$work/dockerd.log" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 1 600); do
        engine_usable && break
        kill -0 "$dockerd_pid" 2>/dev/null || break
        sleep 0.1
    done
    if ! engine_usable; then
        tail -n 30 "$work/dockerd.log" >&2 || true
        skip "dockerd did not start within 60 s (log above)"
    fi
fi
say "engine $("$DOCKER" version --format '{{.Server.Version}}'), client $DOCKER"

# ---- the base image (cached) ------------------------------------------------
if "$DOCKER" image inspect "$base_image" >/dev/null 2>&1; then
    say "base image $base_image is cached"
else
    say "making $base_image with debootstrap --variant=minbase $release"
    rootfs="$work/rootfs"
    if ! debootstrap --variant=minbase "$release" "$rootfs" >"$work/debootstrap.log" 2>&1; then
        tail -n 30 "$work/debootstrap.log" >&2
        echo "debootstrap failed (log above)" >&2
        exit 1
    fi
    # What a container never reads: documentation, translations, apt's
    # package lists and caches.
    rm -rf "$rootfs"/usr/share/doc/* "$rootfs"/usr/share/man/* \
        "$rootfs"/usr/share/info/* "$rootfs"/usr/share/locale/* \
        "$rootfs"/var/cache/apt/* "$rootfs"/var/lib/apt/lists/* \
        "$rootfs"/var/log/*.log "$rootfs"/var/cache/debconf/*-old
    tar -C "$rootfs" -c . | "$DOCKER" import \
        --change 'CMD ["bash"]' - "$base_image" >/dev/null
    rm -rf "$rootfs"
    say "imported $base_image"
fi

# ---- the binaries and the images -------------------------------------------
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
say "building the release binaries"
cargo build --release --locked -p herald-broker -p herald-cli
cargo build --release --locked -p herald-examples --examples
# The build context is this repository; .dockerignore lets this through.
mkdir -p target/docker-prebuilt/examples
cp "$target_dir"/release/herald-broker "$target_dir"/release/herald target/docker-prebuilt/
for service in orders billing notifier; do
    cp "$target_dir/release/examples/$service" target/docker-prebuilt/examples/
done

build() {
    # --network none: the one RUN step (useradd) needs no network, and the
    # engine has no bridge.
    "$DOCKER" build --network none -f docker/Dockerfile \
        --build-arg BINARIES=prebuilt \
        --build-arg PREBUILT_DIR=target/docker-prebuilt \
        --build-arg DEBIAN_RELEASE="$release" \
        --build-arg RUNTIME_IMAGE="$base_image" \
        --label "herald-test=$tag" "$@" . >"$work/build.log" 2>&1 || {
        tail -n 40 "$work/build.log" >&2
        echo "docker build failed (log above)" >&2
        exit 1
    }
}
say "docker build (target runtime)"
build --target runtime -t "$image"
say "docker build (target examples)"
build --target examples -t "$examples_image"
size="$("$DOCKER" image inspect --format '{{.Size}}' "$image")"
examples_size="$("$DOCKER" image inspect --format '{{.Size}}' "$examples_image")"
base_size="$("$DOCKER" image inspect --format '{{.Size}}' "$base_image")"
say "image size: broker $((size / 1000000)) MB ($size bytes; base $((base_size / 1000000)) MB), examples $((examples_size / 1000000)) MB"

# ---- the test ---------------------------------------------------------------
say "running tests/tests/docker.rs"
HERALD_DOCKER="$DOCKER" \
HERALD_DOCKER_IMAGE="$image" \
HERALD_DOCKER_EXAMPLES_IMAGE="$examples_image" \
HERALD_DOCKER_LABEL="herald-test=$tag" \
    cargo test --locked -p herald-tests --test docker -- --ignored --test-threads=1 "$@"
say "passed; image size $((size / 1000000)) MB"
