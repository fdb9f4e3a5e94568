#!/usr/bin/env python3
"""Benchmark harness: replvault against the floor (`redis-cli --rdb`) and the
usual cron script, on the same redis-server in the same run.

For each dataset (bulk `DEBUG POPULATE`, or a mixed dataset with every type),
size (GiB of used_memory) and `rdbcompression` setting it times, under
`/usr/bin/time -v` (wall, CPU, peak RSS):

  floor       redis-cli --rdb FILE
  usual       bench/usual/backup.sh: BGSAVE, poll LASTSAVE every 2 s, copy, gzip -9,
              Fernet, SHA-256, upload with boto3 (to s3s-fs, unless --skip-s3)
  local       replvault backup to a local vault
  s3          replvault backup to s3s-fs on loopback (unless --skip-s3)
  restore     replvault restore from the local vault
  verify      replvault verify of the local backup
  disk        dd of the same RDB to a new file, O_DIRECT and fsync (as restore
              writes it where it can): the disk's speed
  scan        replvault backup --mode scan (SCAN + DUMP) to a local vault

and, with --latency, what the source sees (redis-benchmark p50/p99) while
idle, during BGSAVE and during a replvault backup. Floor, local and s3 run
interleaved for --repeat rounds, restores and verifies --repeat times; each
figure is the median run (peak RSS the highest of them), and a backup's ratio
to the floor is the median of the rounds' paired ratios. Each backup also
records the CPU time of the server's fork child (INFO cpu), the source's own
work, to tell a child that ran slower beside replvault from one that waited
on it, and of the server's main process, which relays the fork's pipe to
the replica socket. Results are printed
as a Markdown table and appended as JSON lines to bench/results/<timestamp>.jsonl.

Only the standard library; the usual script needs `cryptography` and `boto3`
(installed into a venv under bench/.venv on first use).
"""

import argparse
import json
import os
import re
import shutil
import signal
import statistics
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(port, *args, check=True):
    out = subprocess.run(["redis-cli", "-p", str(port), *map(str, args)],
                         capture_output=True, text=True, check=check)
    return out.stdout.strip()


def info(port, section):
    fields = {}
    for line in cli(port, "INFO", section).splitlines():
        if ":" in line:
            k, v = line.split(":", 1)
            fields[k] = v.strip()
    return fields


class Redis:
    def __init__(self, workdir, compression):
        self.dir = Path(workdir)
        self.port = free_port()
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
             "--dir", str(self.dir), "--save", "", "--appendonly", "no",
             "--repl-diskless-sync", "yes", "--repl-diskless-sync-delay", "0",
             "--enable-debug-command", "yes", "--rdbcompression", compression,
             "--client-output-buffer-limit", "replica 0 0 0"],
            stdout=open(self.dir / "redis.log", "w"), stderr=subprocess.STDOUT)
        for _ in range(100):
            try:
                if cli(self.port, "PING", check=False) == "PONG":
                    return
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError("redis-server did not start")

    def used_memory(self):
        return int(info(self.port, "memory")["used_memory"])

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


def fill_populate(r, gib):
    """Bulk strings until used_memory reaches the target."""
    target = int(gib * (1 << 30))
    start = 0
    while r.used_memory() < target:
        n = 1_000_000
        cli(r.port, "DEBUG", "POPULATE", n, f"key:{start}:", 100)
        start += n


def mixed_commands(batch_start, batch):
    """RESP for a batch of mixed-type keys: every type and several encodings."""
    out = []

    def cmd(*args):
        parts = [f"*{len(args)}\r\n"]
        for a in args:
            a = str(a)
            parts.append(f"${len(a.encode())}\r\n{a}\r\n")
        out.append("".join(parts))

    for i in range(batch_start, batch_start + batch):
        k = i % 8
        v = f"value-{i:012d}-" + "x" * (i % 64)
        if k == 0:
            cmd("SET", f"s:{i}", v)
        elif k == 1:
            cmd("HSET", f"h:{i}", *[x for j in range(12) for x in (f"f{j}", f"{v}{j}")])
        elif k == 2:
            cmd("RPUSH", f"l:{i}", *[f"{v}{j}" for j in range(16)])
        elif k == 3:
            cmd("SADD", f"set:{i}", *[f"{i * 31 + j}" for j in range(16)])
        elif k == 4:
            cmd("ZADD", f"z:{i}", *[x for j in range(12) for x in (j * 1.5, f"{v}{j}")])
        elif k == 5:
            cmd("XADD", f"x:{i}", "*", "a", v, "b", str(i))
        elif k == 6:
            # Larger hashes: hashtable encoding.
            cmd("HSET", f"hb:{i}", *[x for j in range(200) for x in (f"f{j}", f"{v}{j}")])
        else:
            cmd("SET", f"n:{i}", str(i * 7919))
    return "".join(out).encode()


def fill_mixed(r, gib):
    target = int(gib * (1 << 30))
    i = 0
    batch = 20_000
    while r.used_memory() < target:
        p = subprocess.run(["redis-cli", "-p", str(r.port), "--pipe"],
                           input=mixed_commands(i, batch), capture_output=True, check=True)
        if b"errors: 0" not in p.stdout:
            raise RuntimeError(p.stdout.decode())
        i += batch


def timed(cmd, env=None, cwd=None):
    """Runs cmd under /usr/bin/time -v; returns wall, cpu, rss_kib, rc, stderr.

    Dirty pages of earlier runs are flushed first (outside the timing), so
    one run's writeback (say the floor's multi-GB file) is not billed to the
    next one's fsync."""
    os.sync()
    t0 = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True,
                       env=env, cwd=cwd)
    wall = time.monotonic() - t0
    err = p.stderr

    def grab(pattern, conv=float):
        m = re.search(pattern, err)
        return conv(m.group(1)) if m else None

    user = grab(r"User time \(seconds\): ([\d.]+)") or 0.0
    sys_ = grab(r"System time \(seconds\): ([\d.]+)") or 0.0
    rss = grab(r"Maximum resident set size \(kbytes\): (\d+)", int)
    return {"wall": wall, "cpu": user + sys_, "rss_kib": rss, "rc": p.returncode,
            "stdout": p.stdout, "stderr": err}


def server_cpu(port):
    """CPU-seconds of the server's own process (its main thread relays the
    fork's pipe to the replica socket) and of its finished fork children
    (the RDB writer's work), from INFO cpu."""
    i = info(port, "cpu")
    return (float(i["used_cpu_user"]) + float(i["used_cpu_sys"]),
            float(i["used_cpu_user_children"]) + float(i["used_cpu_sys_children"]))


def with_server_cpu(port, run):
    """Runs `run` and adds the CPU time of the fork child it made and of
    the server's main process meanwhile. The server reaps a child within
    its cron period (100 ms at hz 10), so this waits for that before
    reading."""
    main_before, child_before = server_cpu(port)
    res = run()
    time.sleep(0.3)
    main_after, child_after = server_cpu(port)
    res["child_cpu"] = round(child_after - child_before, 3)
    res["main_cpu"] = round(main_after - main_before, 3)
    return res


def need_space(work, need):
    """Stops the run before a full disk does it halfway through a case."""
    free = shutil.disk_usage(work).free
    if free < need:
        raise SystemExit(f"not enough free space in {work}: this case keeps about "
                         f"{need / 1e9:.1f} GB of files, {free / 1e9:.1f} GB are free "
                         f"(free some, lower --repeat, or pass --work on a larger disk)")


def paired(name, ratios):
    """A median of per-round ratios under `name`, and the rounds under `name_rounds`."""
    return {name: round(statistics.median(ratios), 3), f"{name}_rounds": [round(x, 3) for x in ratios]}


def median(results):
    """The run with the median wall time; peak RSS is the highest of all."""
    ordered = sorted(results, key=lambda r: r["wall"])
    mid = dict(ordered[len(ordered) // 2])
    rss = [r["rss_kib"] for r in results if r["rss_kib"]]
    mid["rss_kib"] = max(rss) if rss else None
    mid["runs"] = len(results)
    mid["walls"] = [round(r["wall"], 3) for r in results]
    failed = [r for r in results if r["rc"]]
    if failed:
        mid["rc"], mid["stderr"] = failed[0]["rc"], failed[0]["stderr"]
    return mid


def latency(port, seconds, during=None):
    """redis-benchmark p50/p99 of GET/SET for `seconds`, optionally while
    `during` (a callable returning a Popen) runs."""
    bg = during() if during else None
    n = 200_000
    p = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "get,set", "-n", str(n),
                        "-c", "10", "-r", "100000", "--csv"], capture_output=True, text=True,
                       timeout=600)
    if bg is not None:
        bg.wait()
    res = {}
    for line in p.stdout.splitlines()[1:]:
        cols = [c.strip('"') for c in line.split(",")]
        if len(cols) >= 7:
            res[cols[0]] = {"p50_ms": float(cols[4]), "p99_ms": float(cols[6])}
    return res


def ensure_usual_venv():
    venv = BENCH / ".venv"
    py = venv / "bin" / "python3"
    if not py.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    if subprocess.run([str(py), "-c", "import cryptography, boto3"], capture_output=True).returncode:
        subprocess.run([str(py), "-m", "pip", "install", "-q", "cryptography", "boto3"], check=True)
    return py


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="1,4", help="GiB of used_memory, comma-separated")
    ap.add_argument("--datasets", default="populate,mixed")
    ap.add_argument("--compression", default="yes,no", help="rdbcompression settings")
    ap.add_argument("--binary", default=str(ROOT / "target/release/replvault"))
    ap.add_argument("--skip-usual", action="store_true", help="skip the usual script")
    ap.add_argument("--usual-max-gib", type=float, default=1.0,
                    help="run the usual script only up to this size (it holds the file in memory)")
    ap.add_argument("--latency", action="store_true", help="also measure source latency")
    ap.add_argument("--repeat", type=int, default=5,
                    help="rounds of floor/local/s3 backups, restores and verifies (median reported)")
    ap.add_argument("--skip-scan", action="store_true", help="skip the scan-mode backup")
    ap.add_argument("--skip-s3", action="store_true",
                    help="skip the S3 backup and restore (otherwise s3s-fs must be on PATH)")
    ap.add_argument("--work", default=None, help="scratch directory (default: a temp dir)")
    args = ap.parse_args()

    rv = args.binary
    if not Path(rv).exists():
        sys.exit(f"{rv} not found: run `cargo build --release` first")
    if not args.skip_s3 and not shutil.which("s3s-fs"):
        # A run without its S3 rows must say so, not drop them silently.
        sys.exit("s3s-fs not found on PATH: install it (`cargo install --locked "
                 "s3s-fs@0.14.1 --features binary`, as scripts/test.sh does) or pass --skip-s3")
    # On SIGTERM (`kill`) the `finally` blocks still stop the servers and
    # clean up.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    work = Path(args.work or tempfile.mkdtemp(prefix="replvault-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    results_dir = BENCH / "results"
    results_dir.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = open(results_dir / f"{stamp}.jsonl", "w")
    key = work / "bench.key"
    if not key.exists():
        subprocess.run([rv, "keygen", "--out", str(key)], check=True, capture_output=True)

    s3 = None
    if not args.skip_s3:
        s3root = work / "s3"
        (s3root / "bench").mkdir(parents=True, exist_ok=True)
        s3port = free_port()
        s3 = subprocess.Popen(["s3s-fs", "--host", "127.0.0.1", "--port", str(s3port),
                               "--access-key", "benchkey", "--secret-key", "benchsecret",
                               str(s3root)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        s3env = dict(os.environ, AWS_ACCESS_KEY_ID="benchkey", AWS_SECRET_ACCESS_KEY="benchsecret",
                     AWS_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://127.0.0.1:{s3port}",
                     REPLVAULT_S3_PATH_STYLE="true", AWS_EC2_METADATA_DISABLED="true",
                     AWS_CONFIG_FILE="/dev/null", AWS_SHARED_CREDENTIALS_FILE="/dev/null")
        time.sleep(0.5)

    rows = []
    try:
        for dataset in args.datasets.split(","):
            for size in [float(s) for s in args.sizes.split(",")]:
                for comp in args.compression.split(","):
                    rdir = work / f"redis-{dataset}-{size}-{comp}"
                    shutil.rmtree(rdir, ignore_errors=True)
                    rdir.mkdir(parents=True)
                    r = Redis(rdir, comp)
                    # Files are deleted only after the case's last timed
                    # run: on a disk mounted with `discard`, a deleted
                    # GB-sized file slows the writes of the next run.
                    spent = []
                    try:
                        t0 = time.monotonic()
                        (fill_populate if dataset == "populate" else fill_mixed)(r, size)
                        fill_s = time.monotonic() - t0
                        used = r.used_memory()
                        case = {"dataset": dataset, "gib": size, "rdbcompression": comp,
                                "used_memory": used, "keys": int(cli(r.port, "DBSIZE")),
                                "fill_s": round(fill_s, 1)}
                        print(f"== {case}", flush=True)
                        url = f"redis://127.0.0.1:{r.port}"
                        vault = work / "vault"
                        shutil.rmtree(vault, ignore_errors=True)
                        backup = [rv, "backup", "--redis", url, "--key-file", str(key), "--no-progress"]
                        # Floor, local and S3 backups interleaved, `repeat`
                        # rounds; each figure is the median round. The order
                        # rotates from round to round: a run's place in the
                        # round moves it by a few per cent on this host.
                        rounds = {"floor": [], "local": [], "s3": []}
                        for i in range(args.repeat):
                            floor_file = work / f"floor-{i}.rdb"
                            spent.append(floor_file)
                            runs_of_round = {
                                "floor": lambda: timed(["redis-cli", "-p", str(r.port), "--rdb",
                                                        str(floor_file)]),
                                "local": lambda: timed([*backup, "--vault", str(vault)]),
                            }
                            if s3 is not None:
                                runs_of_round["s3"] = lambda: timed([*backup, "--vault", "s3://bench/b"],
                                                                    env=s3env)
                            order = list(runs_of_round)
                            order = order[i % len(order):] + order[:i % len(order)]
                            for name in order:
                                rounds[name].append(with_server_cpu(r.port, runs_of_round[name]))
                            rdb_bytes = floor_file.stat().st_size
                            if i == 0:
                                # Files are kept until the case ends (see the
                                # note on discard above), so the case needs
                                # room for all of them up front: floors,
                                # local and S3 restores, copies (an RDB each
                                # a round), the usual script's two and the
                                # vaults' backups.
                                need_space(work, rdb_bytes * (4 * args.repeat + 3))
                        runs = {name: median(rs) for name, rs in rounds.items() if rs}
                        # Each round's backup against that round's floor:
                        # the median of these paired ratios cancels drift
                        # of the host between rounds.
                        for name in ("local", "s3"):
                            if rounds[name]:
                                runs[name].update(paired("x_floor", [b["wall"] / f["wall"] for b, f in
                                                                     zip(rounds[name], rounds["floor"])]))
                        # What the dump itself cost the source: the fork
                        # child's CPU time, the same work in every round. More
                        # of it during a backup than during the floor means the
                        # child ran slower beside us (shared cores, caches);
                        # wall time beyond it means it waited.
                        for name in ("floor", "local", "s3"):
                            if rounds[name]:
                                runs[name]["child_cpu"] = round(statistics.median(
                                    x["child_cpu"] for x in rounds[name]), 3)
                                runs[name]["child_cpu_of_wall"] = round(statistics.median(
                                    x["child_cpu"] / x["wall"] for x in rounds[name]), 3)
                                runs[name]["main_cpu"] = round(statistics.median(
                                    x["main_cpu"] for x in rounds[name]), 3)
                        for name in ("local", "s3"):
                            if rounds[name]:
                                runs[name].update(paired("x_floor_child_cpu", [
                                    b["child_cpu"] / f["child_cpu"] for b, f in
                                    zip(rounds[name], rounds["floor"]) if f["child_cpu"] > 0]))
                        # Restores and the disk's own speed for the same job
                        # (the floor's RDB, in the page cache, copied to a new
                        # file with O_DIRECT and fsynced, as restore writes
                        # it), interleaved
                        # round by round: this disk's speed drifts within
                        # minutes, so restore is compared with the copy run
                        # right after it.
                        rest = {"s3_restore": [], "restore": [], "disk": []}
                        for i in range(args.repeat):
                            def restored(tag):
                                out = work / f"restored-{tag}-{i}.rdb"
                                out.unlink(missing_ok=True)
                                spent.append(out)
                                return str(out)
                            if s3 is not None:
                                rest["s3_restore"].append(timed(
                                    [rv, "restore", "latest", "--vault", "s3://bench/b", "--key-file",
                                     str(key), "--out", restored("s3")], env=s3env))
                            rest["restore"].append(timed(
                                [rv, "restore", "latest", "--vault", str(vault), "--key-file", str(key),
                                 "--out", restored("local")]))
                            copy = work / f"dd-{i}.rdb"
                            spent.append(copy)
                            rest["disk"].append(timed(["dd", f"if={work / 'floor-0.rdb'}", f"of={copy}",
                                                       "bs=4M", "oflag=direct", "conv=fsync", "status=none"]))
                        runs.update({name: median(rs) for name, rs in rest.items() if rs})
                        # Restore speed over the disk's in the same round.
                        runs["restore"].update(paired("x_disk", [d["wall"] / r["wall"] for r, d in
                                                                 zip(rest["restore"], rest["disk"])]))
                        runs["verify"] = median([timed([rv, "verify", "latest", "--vault", str(vault),
                                                        "--key-file", str(key)])
                                                 for _ in range(args.repeat)])
                        # Scan mode (SCAN + DUMP) on the same dataset: keys/s.
                        if not args.skip_scan:
                            scan_vault = work / "scan-vault"
                            shutil.rmtree(scan_vault, ignore_errors=True)
                            runs["scan"] = timed([*backup, "--vault", str(scan_vault), "--mode", "scan"])
                            listed = json.loads(subprocess.run(
                                [rv, "list", "--vault", str(scan_vault), "--json"],
                                capture_output=True, text=True, check=True).stdout)
                            case["scan_rdb_bytes"] = listed[-1]["rdb"]["bytes"] if listed else None
                            shutil.rmtree(scan_vault, ignore_errors=True)
                        if not args.skip_usual and size <= args.usual_max_gib:
                            py = ensure_usual_venv()
                            env = dict(os.environ, REDIS_PORT=str(r.port), PYTHON=str(py),
                                       OUT_DIR=str(work / "usual"))
                            if s3 is not None:
                                env |= {k: v for k, v in s3env.items() if k.startswith("AWS_")}
                                env |= {"S3_ENDPOINT": s3env["AWS_ENDPOINT_URL"], "S3_BUCKET": "bench"}
                            runs["usual"] = timed(["bash", str(BENCH / "usual" / "backup.sh")], env=env)
                        stored = sum(f.stat().st_size for f in vault.rglob("data")) // args.repeat
                        case["rdb_bytes"] = rdb_bytes
                        case["stored_bytes"] = stored
                        for name, res in runs.items():
                            res = {k: v for k, v in res.items() if k not in ("stdout", "stderr")} | (
                                {"error": runs[name]["stderr"][-400:]} if runs[name]["rc"] else {})
                            case[name] = res
                        if args.latency:
                            case["latency_idle"] = latency(r.port, 0)
                            case["latency_bgsave"] = latency(
                                r.port, 0, lambda: subprocess.Popen(["redis-cli", "-p", str(r.port), "BGSAVE"]))
                            shutil.rmtree(vault, ignore_errors=True)
                            case["latency_replvault"] = latency(r.port, 0, lambda: subprocess.Popen(
                                [rv, "backup", "--redis", url, "--vault", str(vault), "--key-file", str(key),
                                 "--no-progress"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                        out.write(json.dumps(case) + "\n")
                        out.flush()
                        rows.append(case)
                        print(json.dumps(case), flush=True)
                    finally:
                        r.stop()
                        shutil.rmtree(rdir, ignore_errors=True)
                        for f in spent:
                            f.unlink(missing_ok=True)
                        shutil.rmtree(work / "s3" / "bench" / "b", ignore_errors=True)
    finally:
        if s3 is not None:
            s3.send_signal(signal.SIGTERM)
            s3.wait()
        # A temporary work directory holds the vaults and the S3 server's
        # files: left behind, a few stopped 4 GiB runs fill the disk.
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print_table(rows)


def print_table(rows):
    print()
    print("| dataset | GiB | rdbcompression | RDB MB | floor s | local s (x floor) | s3 s (x floor) "
          "| usual s (x local, x s3) | restore MB/s (disk MB/s, x disk) | verify MB/s | s3 restore MB/s | local RSS MiB "
          "| s3 RSS MiB | restore RSS MiB | usual RSS MiB | stored/RDB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for c in rows:
        f = c["floor"]["wall"]
        mb = c["rdb_bytes"] / 1e6

        def ratio(name, base):
            if name not in c:
                return "-"
            x = c[name].get("x_floor", c[name]["wall"] / base)
            return f'{c[name]["wall"]:.2f} ({x:.2f}x)'

        def rss(name):
            return f'{c[name]["rss_kib"] / 1024:.0f}' if name in c and c[name]["rss_kib"] else "-"

        usual = "-"
        if "usual" in c:
            u = c["usual"]["wall"]
            usual = f'{u:.1f} ({u / c["local"]["wall"]:.1f}x' + (
                f', {u / c["s3"]["wall"]:.1f}x)' if "s3" in c else ")")
        s3r = f'{mb / c["s3_restore"]["wall"]:.0f}' if "s3_restore" in c else "-"
        disk = ""
        if "disk" in c:
            x = c["restore"].get("x_disk")
            disk = f' ({mb / c["disk"]["wall"]:.0f}' + (f", {x:.2f}x)" if x else ")")
        print(f'| {c["dataset"]} | {c["gib"]} | {c["rdbcompression"]} | {mb:.0f} | {f:.2f} | '
              f'{ratio("local", f)} | {ratio("s3", f)} | {usual} | '
              f'{mb / c["restore"]["wall"]:.0f}{disk} | {mb / c["verify"]["wall"]:.0f} | {s3r} | '
              f'{rss("local")} | {rss("s3")} | {rss("restore")} | {rss("usual")} | '
              f'{c["stored_bytes"] / c["rdb_bytes"]:.3f} |')
    print()
    print("Source cost: the fork child's CPU-seconds (median round), paired ratio against the floor's, "
          "and child CPU as a share of the run's wall time; then the server main process's CPU-seconds "
          "over the same runs (median round).")
    print()
    print("| dataset | GiB | rdbcompression | floor child CPU s (of wall) | local child CPU s (x floor, of wall) "
          "| s3 child CPU s (x floor, of wall) | main CPU s: floor, local, s3 |")
    print("|---|---|---|---|---|---|---|")
    for c in rows:
        def child(name):
            r = c.get(name, {})
            if "child_cpu" not in r:
                return "-"
            x = f'{r["x_floor_child_cpu"]:.2f}x, ' if "x_floor_child_cpu" in r else ""
            return f'{r["child_cpu"]:.2f} ({x}{r["child_cpu_of_wall"]:.2f})'
        def main_cpu(name):
            r = c.get(name, {})
            return f'{r["main_cpu"]:.2f}' if "main_cpu" in r else "-"
        print(f'| {c["dataset"]} | {c["gib"]} | {c["rdbcompression"]} | {child("floor")} | '
              f'{child("local")} | {child("s3")} | '
              f'{main_cpu("floor")}, {main_cpu("local")}, {main_cpu("s3")} |')
    scans = [c for c in rows if "scan" in c]
    if scans:
        print()
        print("| dataset | GiB | rdbcompression | keys | sync s | scan s (x sync) | scan keys/s "
              "| scan MB/s | sync MB/s | scan RSS MiB |")
        print("|---|---|---|---|---|---|---|---|---|---|")
        for c in scans:
            sync, scan = c["local"]["wall"], c["scan"]["wall"]
            smb = (c.get("scan_rdb_bytes") or c["rdb_bytes"]) / 1e6
            print(f'| {c["dataset"]} | {c["gib"]} | {c["rdbcompression"]} | {c["keys"]} | '
                  f'{sync:.2f} | {scan:.2f} ({scan / sync:.2f}x) | {c["keys"] / scan:,.0f} | '
                  f'{smb / scan:.0f} | {c["rdb_bytes"] / 1e6 / sync:.0f} | '
                  f'{c["scan"]["rss_kib"] / 1024:.0f} |')


if __name__ == "__main__":
    main()
