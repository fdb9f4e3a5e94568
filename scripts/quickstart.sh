#!/usr/bin/env bash
# Quickstart: on a fresh Debian machine, build replvault, start a throwaway
# redis-server with some data, back it up into an encrypted local vault,
# list it, restore it, start a second server on the restored dump.rdb and
# show that both hold the same data (DEBUG DIGEST). Cleans up after itself.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
if ! command -v redis-server >/dev/null || ! command -v redis-cli >/dev/null; then
  echo "==> installing redis-server and redis-tools"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server redis-tools >/dev/null
fi

echo "==> building replvault (release)"
cargo build --release --quiet
rv="$PWD/target/release/replvault"

work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
start_redis() { # dir port [extra args]
  local dir=$1 port=$2; shift 2
  redis-server --port "$port" --bind 127.0.0.1 --dir "$dir" --save '' --appendonly no \
    --repl-diskless-sync-delay 0 --enable-debug-command yes "$@" >"$dir/redis.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 50); do redis-cli -p "$port" ping >/dev/null 2>&1 && return; sleep 0.1; done
  echo "redis-server on port $port did not start" >&2; exit 1
}

mkdir -p "$work/src" "$work/copy" "$work/vault"
src_port=$(free_port)
start_redis "$work/src" "$src_port"
echo "==> filling a throwaway redis-server on port $src_port"
redis-cli -p "$src_port" DEBUG POPULATE 100000 key 64 >/dev/null
redis-cli -p "$src_port" HSET user:1 name Ada lang Rust >/dev/null
redis-cli -p "$src_port" XADD events '*' kind login >/dev/null
redis-cli -p "$src_port" SET session:1 token EX 86400 >/dev/null

echo "==> replvault keygen"
"$rv" keygen --out "$work/backup.key"
echo "==> replvault backup"
"$rv" backup --redis "redis://127.0.0.1:$src_port" --vault "$work/vault" --key-file "$work/backup.key"
echo "==> replvault list"
"$rv" list --vault "$work/vault"
echo "==> replvault restore"
"$rv" restore latest --vault "$work/vault" --key-file "$work/backup.key" --out "$work/copy/dump.rdb"

copy_port=$(free_port)
start_redis "$work/copy" "$copy_port"
a=$(redis-cli -p "$src_port" DEBUG DIGEST)
b=$(redis-cli -p "$copy_port" DEBUG DIGEST)
echo "==> source  DEBUG DIGEST $a ($(redis-cli -p "$src_port" DBSIZE) keys)"
echo "==> restore DEBUG DIGEST $b ($(redis-cli -p "$copy_port" DBSIZE) keys)"
if [ "$a" = "$b" ]; then echo "==> the restored server holds exactly the backed-up data"; else
  echo "==> MISMATCH" >&2; exit 1; fi
