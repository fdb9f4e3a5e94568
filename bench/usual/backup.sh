#!/usr/bin/env bash
# A faithful small copy of the usual cron backup, for benchmarking only (not
# shipped): BGSAVE, poll LASTSAVE every POLL_SECS (the usual scripts sleep 2 s
# between polls) until it changes, copy dump.rdb, then a Python step that
# gzips (level 9), encrypts with Fernet, hashes, writes the result, and
# uploads it to S3 with boto3 when S3_ENDPOINT is set, holding the whole file
# in memory as such scripts do.
set -euo pipefail
port=${REDIS_PORT:?}
out=${OUT_DIR:?}
py=${PYTHON:-python3}
poll=${POLL_SECS:-2}
mkdir -p "$out"
before=$(redis-cli -p "$port" LASTSAVE)
redis-cli -p "$port" BGSAVE >/dev/null
while [ "$(redis-cli -p "$port" LASTSAVE)" = "$before" ]; do
  # A failed BGSAVE (a full disk) never moves LASTSAVE: stop instead of
  # polling forever.
  info=$(redis-cli -p "$port" INFO persistence)
  if grep -q 'rdb_bgsave_in_progress:0' <<<"$info" && grep -q 'rdb_last_bgsave_status:err' <<<"$info"; then
    echo "BGSAVE failed (see the Redis log)" >&2
    exit 1
  fi
  sleep "$poll"
done
dir=$(redis-cli -p "$port" CONFIG GET dir | tail -1)
file=$(redis-cli -p "$port" CONFIG GET dbfilename | tail -1)
cp "$dir/$file" "$out/backup.rdb"
"$py" "$(dirname "$0")/compress_encrypt.py" "$out/backup.rdb" "$out/backup.rdb.gz.enc"
rm -f "$out/backup.rdb" "$out/backup.rdb.gz.enc"
