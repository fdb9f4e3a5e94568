#!/usr/bin/env bash
# Checker throughput on large real RDB files: starts a throwaway
# redis-server, makes a bulk (DEBUG POPULATE) and a mixed (every type)
# dataset, saves each with rdbcompression yes and no, then runs the
# check_throughput bench over the files. Usage: bench/checker.sh [GiB]
set -euo pipefail
cd "$(dirname "$0")/.."
gib=${1:-1}
work=$(mktemp -d /tmp/replvault-scanbench.XXXXXX)
trap 'redis-cli -p "$port" shutdown nosave >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
redis-server --port "$port" --bind 127.0.0.1 --dir "$work" --save "" --appendonly no \
  --enable-debug-command yes --daemonize yes --logfile "$work/redis.log"
until redis-cli -p "$port" ping >/dev/null 2>&1; do sleep 0.1; done
files=()
for dataset in populate mixed; do
  redis-cli -p "$port" flushall >/dev/null
  python3 - "$port" "$gib" "$dataset" <<'PY'
import sys
sys.path.insert(0, "bench")
import bench
port, gib, dataset = int(sys.argv[1]), float(sys.argv[2]), sys.argv[3]
class R:  # what bench.fill_* need
    def __init__(self, port): self.port = port
    def used_memory(self): return int(bench.info(self.port, "memory")["used_memory"])
(bench.fill_populate if dataset == "populate" else bench.fill_mixed)(R(port), gib)
PY
  for comp in yes no; do
    redis-cli -p "$port" config set rdbcompression "$comp" >/dev/null
    redis-cli -p "$port" save >/dev/null
    mv "$work/dump.rdb" "$work/$dataset-$comp.rdb"
    files+=("$work/$dataset-$comp.rdb")
  done
done
cargo bench -q -p replvault-protocol --bench check_throughput -- "${files[@]}"
