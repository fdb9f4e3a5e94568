#!/usr/bin/env bash
# Runs every fuzz target on one core, one after the other, seeding the RDB
# checker's corpus with the real-server fixtures. Usage:
#   protocol/fuzz/run-all.sh [seconds for rdb_check] [seconds for each other]
# Needs cargo-fuzz (`cargo install cargo-fuzz --locked`); stable Rust works
# with RUSTC_BOOTSTRAP=1 (set here). Logs go to protocol/fuzz/logs/.
# Built with -a (debug assertions, so overflow checks): -O alone turns them
# off, and an input-controlled length that overflows is a bug to find here.
set -euo pipefail
cd "$(dirname "$0")"
rdb_secs=${1:-1200}
other_secs=${2:-300}
export RUSTC_BOOTSTRAP=1
mkdir -p corpus/rdb_check corpus/resplit corpus/slot_check corpus/dump logs
# rdb_check reads its first byte as the chunking: seed each fixture whole
# (0x80) and in 64-byte chunks (0x3F), the fixture's own bytes after it.
for f in ../../fixtures/rdb/*.rdb; do
  n=$(basename "$f" .rdb)
  { printf '\200'; cat "$f"; } >"corpus/rdb_check/$n-whole"
  { printf '\077'; cat "$f"; } >"corpus/rdb_check/$n-64"
  # resplit: 2 outputs in 14-byte chunks; slot_check: one of three
  # ranges in 10-byte chunks (the first byte; see fuzzing.rs).
  { printf '\005'; cat "$f"; } >"corpus/resplit/$n"
  { printf '\005'; cat "$f"; } >"corpus/slot_check/$n"
done
cargo fuzz build -O -a
for t in rdb_check resp handshake payload dump repl_stream resplit slot_check; do
  secs=$other_secs
  [ "$t" = rdb_check ] && secs=$rdb_secs
  echo "== $t for ${secs}s"
  cargo fuzz run -O -a "$t" -- -max_total_time="$secs" -max_len=65536 \
    -rss_limit_mb=1024 -timeout=10 -print_final_stats=1 >"logs/$t.log" 2>&1 || {
    echo "$t found a failure: see logs/$t.log and artifacts/$t/"
    tail -30 "logs/$t.log"
    exit 1
  }
  grep -E "^(#[0-9]+.*(DONE|pulse)|stat::)" "logs/$t.log" | tail -8
done
