#!/usr/bin/env bash
# Builds the replvault image with podman and checks that it works, with no
# container registry: both base images are made here from Debian packages
# (mmdebstrap) and tagged with the names the Dockerfiles use.
#
#   deploy/test-image.sh                 the runtime image around a host-built
#                                        binary (deploy/Dockerfile.prebuilt)
#   deploy/test-image.sh --from-source   the real deploy/Dockerfile: cargo
#                                        builds inside the image (minutes)
#
# REPLVAULT_IMAGE_FROM_SOURCE=1 is the same as --from-source. The prebuilt
# path takes $REPLVAULT_BIN, else ${CARGO_TARGET_DIR:-target}/release/replvault
# (`cargo build --release --locked` first); it must run on Debian 12's glibc.
#
# Run as root on Debian 12. Installs podman, buildah, skopeo, runc,
# mmdebstrap (and redis-server, curl, python3 when missing). Then checks:
# the image's config and files, `--version`, `keygen` into a fresh named
# volume, a backup of a real redis-server on loopback (host network) into a
# mounted vault, `list` and `verify --all` from the image, the vault's files
# owned by the image's user, `run --listen` answering /healthz and /metrics
# through a published port as uid 65532 with no capabilities, and a clean
# `podman stop` within the grace period. Any failed check stops the script
# with a message and a non-zero exit; the last line is
# `image test: PASS: ...` or `image test: FAIL: ...`.
#
# The stand-in base images stay in podman's store under the real names
# (label replvault.local-stand-in=true): remove them with
# `podman rmi gcr.io/distroless/cc-debian12:nonroot rust:1-slim-bookworm`
# before pulling the real ones on a machine that reaches the registries.
set -euo pipefail
cd "$(dirname "$0")/.."

from_source=${REPLVAULT_IMAGE_FROM_SOURCE:-0}
[ "$from_source" = 0 ] || [ "$from_source" = 1 ] || from_source=1
for arg in "$@"; do
  case $arg in
    --from-source) from_source=1 ;;
    -h | --help) sed -n '2,/^set -e/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "test-image.sh: unknown argument: $arg" >&2; exit 2 ;;
  esac
done
mode=$([ "$from_source" = 1 ] && echo from-source || echo prebuilt)

image=localhost/replvault:test
runtime_base=gcr.io/distroless/cc-debian12:nonroot
rust_base=docker.io/library/rust:1-slim-bookworm
suite=bookworm
mirrors=(
  "deb http://deb.debian.org/debian $suite main"
  "deb http://deb.debian.org/debian $suite-updates main"
  "deb http://deb.debian.org/debian-security $suite-security main"
)
grace=10 # seconds `podman stop` waits before SIGKILL

start=$(date +%s.%N)
step="setup"
checks=0
tmp=""
redis_pid=""
mounted=""
volumes=()
# Every container is named $prefix*, so cleanup finds those a timeout left.
prefix=replvault-test-$$-

now() { date +%s.%N; }
since() { awk -v a="$(now)" -v b="$1" 'BEGIN { printf "%.1f", a - b }'; }
mib() { awk -v n="$1" 'BEGIN { printf "%.1f", n / 1048576 }'; }
say() { printf '==> %s\n' "$*"; }
ok() { checks=$((checks + 1)); printf 'ok %d - %s\n' "$checks" "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

cleanup() {
  local rc=$?
  set +e
  for c in $(podman ps -a -q --filter "name=^$prefix" 2>/dev/null); do podman rm -f "$c" >/dev/null 2>&1; done
  for v in "${volumes[@]}"; do podman volume rm -f "$v" >/dev/null 2>&1; done
  [ -z "$mounted" ] || podman image unmount "$mounted" >/dev/null 2>&1
  if [ -n "$redis_pid" ]; then kill "$redis_pid" 2>/dev/null; wait "$redis_pid" 2>/dev/null; fi
  [ -z "$tmp" ] || rm -rf "$tmp"
  if [ "$rc" = 0 ]; then
    echo "image test: PASS: $checks checks ($mode, $(since "$start") s)"
  else
    echo "image test: FAIL: at '$step' after $checks checks passed ($mode, exit $rc, $(since "$start") s)"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

[ "$(id -u)" = 0 ] || fail "run as root (podman, mmdebstrap and chown of the test vault need it)"

# --- tools ---------------------------------------------------------------
step="installing tools"
need=()
for pair in podman:podman buildah:buildah skopeo:skopeo runc:runc mmdebstrap:mmdebstrap \
  iptables:iptables redis-server:redis-server redis-cli:redis-tools curl:curl \
  python3:python3 strip:binutils; do
  command -v "${pair%%:*}" >/dev/null || need+=("${pair#*:}")
done
if [ ${#need[@]} -gt 0 ]; then
  say "installing Debian packages: ${need[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi

tmp=$(mktemp -d "${TMPDIR:-/tmp}/replvault-image.XXXXXX")
chmod 755 "$tmp"

# podman's own settings for this run only (CONTAINERS_CONF replaces the
# system's containers.conf): runc, since crun fails on cgroups in hybrid mode
# ("cgroups in hybrid mode not supported"); and ulimits that root may set
# here. podman's defaults (1048576 files and processes) exceed the hard
# limits, which root cannot raise without CAP_SYS_RESOURCE; podman 4.3 also
# lowers its own process limit to 32768 at start, and a container cannot
# get more than podman has.
lim() { # soft limit to give containers: min(host hard limit, cap)
  local v=$1 cap=$2
  if [ "$v" = unlimited ] || [ "$v" -gt "$cap" ]; then echo "$cap"; else echo "$v"; fi
}
nofile=$(lim "$(ulimit -Hn)" 1048576)
nproc=$(lim "$(ulimit -Hu)" 32768)
cat >"$tmp/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$nofile:$nofile", "nproc=$nproc:$nproc"]

[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF=$tmp/containers.conf

# --- base images -----------------------------------------------------------
# Tagging over an existing name leaves the old image dangling: drop the old
# ones first (the test image first, as it sits on the runtime base).
podman rmi -f "$image" >/dev/null 2>&1 || true

# gcr.io/distroless/cc-debian12:nonroot, remade: glibc, libgcc, libstdc++,
# libgomp, libssl3, CA certificates, tzdata, netbase, base-files, the users
# root, nobody and nonroot (65532); no shell, no package manager. The
# packages whose dependencies would bring those in (ca-certificates needs
# openssl and debconf, base-files mawk, tzdata debconf) are unpacked alone.
make_runtime_base() {
  local r=$tmp/runtime-root
  cat >"$tmp/extract-hook.sh" <<'EOF'
#!/bin/sh
set -eu
mkdir -p "$1/tmp/debs"
cd "$1/tmp/debs"
APT_CONFIG=$MMDEBSTRAP_APT_CONFIG apt-get download -q=2 -o APT::Sandbox::User=root base-files netbase tzdata ca-certificates
for d in ./*.deb; do dpkg-deb --extract "$d" "$1"; done
cd / && rm -rf "$1/tmp/debs"
EOF
  chmod +x "$tmp/extract-hook.sh"
  mmdebstrap --quiet --variant=extract \
    --include=libc6,libgcc-s1,libstdc++6,libgomp1,libssl3 \
    --extract-hook="$tmp/extract-hook.sh \"\$1\"" \
    "$suite" "$r" "${mirrors[@]}"
  # What ca-certificates' postinst (update-ca-certificates) would write.
  mkdir -p "$r/etc/ssl/certs"
  cat "$r"/usr/share/ca-certificates/mozilla/*.crt >"$r/etc/ssl/certs/ca-certificates.crt"
  cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/sbin/nologin
nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin
nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin
EOF
  cat >"$r/etc/group" <<'EOF'
root:x:0:
tty:x:5:
staff:x:50:
nonroot:x:65532:
nobody:x:65534:
EOF
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$r/etc/nsswitch.conf"
  install -d -m 0700 -o 65532 -g 65532 "$r/home/nonroot"
  install -d -m 0700 "$r/root"
  chmod 1777 "$r/tmp"
  # No package manager state, no device nodes (the runtime makes /dev), no
  # docs but the copyright files.
  rm -rf "${r:?}"/dev/* "$r/etc/apt" "$r/var/lib/apt" "$r/var/cache/apt" "$r/var/log"/* \
    "$r/usr/share/man" "$r/usr/share/info" "$r/usr/share/lintian" "$r/usr/share/locale"
  find "$r/usr/share/doc" -type f ! -name copyright -delete
  find "$r/usr/share/doc" -type d -empty -delete
  for f in sh bash dash mawk awk apt dpkg; do
    if [ -e "$r/bin/$f" ] || [ -e "$r/usr/bin/$f" ]; then fail "runtime base has /usr/bin/$f"; fi
  done
  podman rmi -f "$runtime_base" >/dev/null 2>&1 || true
  tar -C "$r" --numeric-owner -cf - . | podman import --quiet \
    --change 'USER=65532' --change 'WORKDIR=/home/nonroot' \
    --change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV=SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
    --change 'LABEL=replvault.local-stand-in=true' \
    - "$runtime_base" >/dev/null
  rm -rf "$r"
}

# rust:1-slim-bookworm, remade: Debian 12 with gcc and libc6-dev, and the
# host's Rust toolchain (no rustup download is possible here) in
# /usr/local/rustup, on PATH through /usr/local/cargo/bin as in the real
# image. The host's own extra CA certificates (a TLS-inspecting proxy's, as
# on this build machine) are trusted in this build stage only, so cargo
# reaches crates.io; the runtime image has Debian's CAs only.
make_rust_base() {
  local r=$tmp/rust-root sysroot name
  sysroot=$(rustc --print sysroot) || fail "no Rust toolchain on the host to put in the build base"
  name=$(basename "$sysroot")
  mmdebstrap --quiet --variant=minbase --include=ca-certificates,gcc,libc6-dev \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/doc/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' \
    "$suite" "$r" "${mirrors[@]}"
  mkdir -p "$r/usr/local/rustup/toolchains/$name" "$r/usr/local/cargo/bin"
  for d in bin lib libexec etc; do
    [ ! -d "$sysroot/$d" ] || cp -a "$sysroot/$d" "$r/usr/local/rustup/toolchains/$name/"
  done
  for b in "$r/usr/local/rustup/toolchains/$name/bin"/*; do
    ln -s "/usr/local/rustup/toolchains/$name/bin/$(basename "$b")" "$r/usr/local/cargo/bin/"
  done
  if compgen -G '/usr/local/share/ca-certificates/*.crt' >/dev/null; then
    cp /usr/local/share/ca-certificates/*.crt "$r/usr/local/share/ca-certificates/"
    chroot "$r" update-ca-certificates >/dev/null 2>&1 || fail "update-ca-certificates failed in the build base"
  fi
  rm -rf "${r:?}"/dev/*
  podman rmi -f "$rust_base" >/dev/null 2>&1 || true
  tar -C "$r" --numeric-owner -cf - . | podman import --quiet \
    --change 'ENV=RUSTUP_HOME=/usr/local/rustup' --change 'ENV=CARGO_HOME=/usr/local/cargo' \
    --change 'ENV=PATH=/usr/local/cargo/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'LABEL=replvault.local-stand-in=true' \
    - "$rust_base" >/dev/null
  rm -rf "$r"
}

step="making the runtime base image ($runtime_base)"
say "$step"
t=$(now)
make_runtime_base
say "runtime base made in $(since "$t") s"

# --- the image ---------------------------------------------------------------
if [ "$from_source" = 1 ]; then
  step="making the build base image ($rust_base)"
  say "$step"
  t=$(now)
  make_rust_base
  say "build base made in $(since "$t") s"
  step="building deploy/Dockerfile from source"
  say "$step"
  t=$(now)
  nice -n 10 podman build --pull=never --layers=false -f deploy/Dockerfile -t "$image" . \
    >"$tmp/build.log" 2>&1 || { tail -40 "$tmp/build.log" >&2; fail "podman build of deploy/Dockerfile failed"; }
  say "image built from source in $(since "$t") s"
  expect_version="replvault $(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -n 1)"
else
  step="building deploy/Dockerfile.prebuilt"
  say "$step"
  bin=${REPLVAULT_BIN:-${CARGO_TARGET_DIR:-target}/release/replvault}
  [ -x "$bin" ] || fail "no binary at $bin: run cargo build --release --locked first, or set REPLVAULT_BIN"
  t=$(now)
  mkdir -p "$tmp/context/data"
  strip -o "$tmp/context/replvault" "$bin"
  podman build --pull=never -f deploy/Dockerfile.prebuilt -t "$image" "$tmp/context" \
    >"$tmp/build.log" 2>&1 || { cat "$tmp/build.log" >&2; fail "podman build of deploy/Dockerfile.prebuilt failed"; }
  say "image built in $(since "$t") s"
  expect_version=$("$bin" --version)
fi

# --- checks --------------------------------------------------------------
step="image config"
cfg=$(podman image inspect -f '{{.Config.User}} {{json .Config.Entrypoint}} {{json .Config.ExposedPorts}}' "$image")
[ "$cfg" = 'nonroot:nonroot ["/replvault"] {"9187/tcp":{}}' ] ||
  fail "image config: want user nonroot:nonroot, entrypoint [\"/replvault\"], port 9187/tcp; got: $cfg"
ok "config: user nonroot:nonroot, entrypoint /replvault, exposes 9187/tcp"

step="image files"
mounted=$image
mnt=$(podman image mount "$image")
[ "$(stat -c '%u:%g %a' "$mnt/replvault")" = "0:0 755" ] ||
  fail "/replvault should be root's, mode 755: $(stat -c '%u:%g %a' "$mnt/replvault")"
[ "$(stat -c '%u:%g' "$mnt/var/lib/replvault")" = "65532:65532" ] ||
  fail "/var/lib/replvault should belong to 65532:65532: $(stat -c '%u:%g' "$mnt/var/lib/replvault")"
grep -q '^nonroot:x:65532:65532:' "$mnt/etc/passwd" || fail "no nonroot user 65532 in /etc/passwd"
[ "$(grep -c 'BEGIN CERTIFICATE' "$mnt/etc/ssl/certs/ca-certificates.crt")" -gt 100 ] ||
  fail "no CA bundle at /etc/ssl/certs/ca-certificates.crt"
for f in /bin/sh /usr/bin/sh /bin/bash /usr/bin/apt /usr/bin/dpkg; do
  [ ! -e "$mnt$f" ] || fail "the image has $f"
done
podman image unmount "$image" >/dev/null
mounted=""
ok "files: /replvault root-owned 755, /var/lib/replvault owned by 65532, CA bundle, no shell"

step="--version"
got=$(podman run --rm --name "${prefix}version" "$image" --version 2>&1) || fail "--version exited $?: $got"
[ "$got" = "$expect_version" ] || fail "--version printed '$got', want '$expect_version'"
ok "--version: $got"

step="keygen into a named volume"
keys=${prefix}keys
volumes+=("$keys")
podman volume create "$keys" >/dev/null
out=$(podman run --rm --name "${prefix}keygen" -v "$keys:/var/lib/replvault" "$image" keygen --out /var/lib/replvault/backup.key 2>&1) ||
  fail "keygen into a fresh named volume on /var/lib/replvault exited $?: $out"
key=$(podman volume inspect -f '{{.Mountpoint}}' "$keys")/backup.key
[ "$(stat -c '%u:%g %a %s' "$key")" = "65532:65532 600 32" ] ||
  fail "key file should be 65532:65532, mode 600, 32 bytes: $(stat -c '%u:%g %a %s' "$key")"
ok "keygen: a fresh named volume on /var/lib/replvault is writable by the image's user; key 0600, 65532"

step="starting redis-server"
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
rport=$(free_port)
mkdir -p "$tmp/redis"
redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp/redis" \
  --enable-debug-command yes --repl-diskless-sync-delay 0 --logfile "$tmp/redis/log" &
redis_pid=$!
for _ in $(seq 50); do redis-cli -p "$rport" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$rport" ping >/dev/null 2>&1 || fail "redis-server did not start: $(tail -5 "$tmp/redis/log")"
redis-cli -p "$rport" debug populate 20000 key 100 >/dev/null
redis-cli -p "$rport" hset hash f1 v1 f2 v2 >/dev/null
redis-cli -p "$rport" rpush list a b c >/dev/null
redis-cli -p "$rport" set volatile v ex 86400 >/dev/null
nkeys=$(redis-cli -p "$rport" dbsize)

step="backup from the image"
vault=$tmp/vault
install -d -m 0700 -o 65532 -g 65532 "$vault"
run_tool() { # the image on the host network, key volume read-only, vault mounted
  podman run --rm --name "$prefix$RANDOM" --network host -v "$keys:/var/lib/replvault:ro" -v "$vault:/vault" "$image" "$@"
}
t=$(now)
out=$(timeout 120 podman run --rm --name "${prefix}backup" --network host \
  -v "$keys:/var/lib/replvault:ro" -v "$vault:/vault" "$image" \
  backup --redis "redis://127.0.0.1:$rport" --vault /vault \
  --key-file /var/lib/replvault/backup.key --no-progress 2>&1) ||
  fail "backup exited $?: $out"
echo "$out" | grep -q "complete: $nkeys keys" || fail "backup did not report $nkeys keys: $out"
ok "backup of redis-server on 127.0.0.1:$rport (host network) into a mounted vault: $nkeys keys, $(since "$t") s"

step="list from the image"
out=$(run_tool list --vault /vault 2>&1) || fail "list exited $?: $out"
[ "$(echo "$out" | grep -c '^[0-9]\{8\}T')" = 1 ] || fail "list should show one backup: $out"
json=$(run_tool list --vault /vault --json 2>"$tmp/list.err") || fail "list --json exited $?: $(cat "$tmp/list.err")"
listed=$(echo "$json" | python3 -c 'import json,sys; m=json.load(sys.stdin); print(len(m), m[-1]["summary"]["databases"]["0"]["keys"], m[-1]["finished_at"])') ||
  fail "list --json is not the expected JSON: $json"
read -r nbackups listed_keys finished_at <<<"$listed"
[ "$nbackups $listed_keys" = "1 $nkeys" ] || fail "list --json: want 1 backup of $nkeys keys, got $nbackups of $listed_keys"
ok "list: one backup of $nkeys keys"

step="verify --all from the image"
out=$(run_tool verify --all --vault /vault --key-file /var/lib/replvault/backup.key 2>&1) ||
  fail "verify --all exited $?: $out"
echo "$out" | grep -q "^OK .* $nkeys keys" || fail "verify --all did not report the backup OK: $out"
ok "verify --all: decrypts, decompresses, CRC, structure and SHA-256 check out"

step="vault ownership"
nfiles=$(find "$vault" -mindepth 1 | wc -l)
others=$(find "$vault" \( ! -uid 65532 -o ! -gid 65532 \) -printf '%u:%g %p\n')
[ "$nfiles" -ge 3 ] || fail "vault holds only $nfiles entries: $(find "$vault")"
[ -z "$others" ] || fail "vault entries not owned by 65532:65532: $others"
ok "vault: all $nfiles entries owned by 65532:65532"

step="daemon with --listen"
hport=$(free_port)
daemon=${prefix}daemon
podman run -d --name "$daemon" -p "127.0.0.1:$hport:9187" \
  -v "$keys:/var/lib/replvault:ro" -v "$vault:/vault" "$image" \
  run --redis "redis://127.0.0.1:$rport" --vault /vault --key-file /var/lib/replvault/backup.key \
  --every 1h --listen 0.0.0.0:9187 >/dev/null
code=""
deadline=$((SECONDS + 15))
while [ "$SECONDS" -lt "$deadline" ]; do
  code=$(curl -s -o "$tmp/healthz" -w '%{http_code}' "http://127.0.0.1:$hport/healthz" || true)
  [ "$code" = 200 ] && break
  [ "$(podman inspect -f '{{.State.Running}}' "$daemon")" = true ] || break
  sleep 0.2
done
[ "$code" = 200 ] || fail "/healthz on published port $hport answered '${code:-nothing}': $(cat "$tmp/healthz" 2>/dev/null); logs: $(podman logs "$daemon" 2>&1 | tail -5)"
ok "run --listen: /healthz answers 200 through published port 127.0.0.1:$hport ($(head -c 80 "$tmp/healthz"))"

step="daemon metrics"
metrics=$(curl -sf "http://127.0.0.1:$hport/metrics") || fail "/metrics did not answer"
seeded=$(echo "$metrics" | sed -n 's/^replvault_last_success_timestamp_seconds \([0-9.e+]*\)$/\1/p')
want=$(python3 -c "import datetime,sys; print(int(datetime.datetime.fromisoformat(sys.argv[1][:19]).replace(tzinfo=datetime.timezone.utc).timestamp()))" "$finished_at")
python3 -c "import sys; sys.exit(abs(float(sys.argv[1]) - float(sys.argv[2])) > 2)" "${seeded:-0}" "$want" ||
  fail "replvault_last_success_timestamp_seconds is '${seeded:-missing}', want the backup's end ($want)"
ok "/metrics: last success seeded from the mounted vault ($seeded)"

step="daemon user"
pid=$(podman inspect -f '{{.State.Pid}}' "$daemon")
uids=$(awk '/^Uid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
gids=$(awk '/^Gid:/ {print $2, $3, $4, $5}' "/proc/$pid/status")
capeff=$(awk '/^CapEff:/ {print $2}' "/proc/$pid/status")
[ "$uids|$gids" = "65532 65532 65532 65532|65532 65532 65532 65532" ] ||
  fail "daemon runs as uid $uids, gid $gids; want 65532"
[ "$capeff" = 0000000000000000 ] || fail "daemon has capabilities $capeff"
ok "daemon process runs as uid and gid 65532 with no effective capabilities"

step="podman stop"
t=$(now)
podman stop -t "$grace" "$daemon" >/dev/null || fail "podman stop failed"
took=$(since "$t")
state=$(podman inspect -f '{{.State.Status}} {{.State.ExitCode}} {{.State.OOMKilled}}' "$daemon")
[ "$state" = "exited 0 false" ] || fail "after podman stop: status, exit code, OOM killed = $state (137 is SIGKILL after the grace period); logs: $(podman logs "$daemon" 2>&1 | tail -5)"
python3 -c "import sys; sys.exit(float(sys.argv[1]) >= float(sys.argv[2]))" "$took" "$grace" ||
  fail "podman stop took $took s, the whole grace period ($grace s)"
ok "podman stop: SIGTERM ends the daemon with exit code 0 in $took s (grace $grace s)"

step="image size"
size=$(podman image inspect -f '{{.Size}}' "$image")
podman save --quiet --format oci-archive -o "$tmp/replvault.oci.tar" "$image"
archive=$(stat -c %s "$tmp/replvault.oci.tar")
base_size=$(podman image inspect -f '{{.Size}}' "$runtime_base")
ocicfg=$(skopeo inspect --config "oci-archive:$tmp/replvault.oci.tar" |
  python3 -c 'import json,sys; c=json.load(sys.stdin)["config"]; print(c.get("User"), c.get("Entrypoint"))')
[ "$ocicfg" = "nonroot:nonroot ['/replvault']" ] || fail "OCI archive config: $ocicfg"
ok "OCI archive readable by skopeo with the same user and entrypoint"
echo "image $image: $size bytes ($(mib "$size") MiB) uncompressed, $archive bytes ($(mib "$archive") MiB) as an OCI archive; runtime base $base_size bytes ($(mib "$base_size") MiB)"
step="done"
