#!/usr/bin/env python3
"""Cluster backup benchmark: a 3-shard `backup --cluster` (every shard at
once, each from its replica) against `redis-cli --rdb` of each replica
alone, on the same cluster in the same run.

    python3 bench/cluster.py --binary target/release/replvault --mib 900 --repeat 3

Reports the median over rounds of: the cluster backup's wall time; the
slowest shard's `redis-cli --rdb` time alone, the wall time of three
`redis-cli --rdb` at once (the floor for all shards at the same time on
this machine: with fewer free cores than shards, the servers' forks
share them), and the sum of the three (what a shard-after-shard script
such as `redis-cli --cluster backup` takes); the ratio of the first to
each; and replvault's peak RSS with all shards at once (total) and with
`--cluster-concurrency 1` (one shard's pipeline).
Results go to bench/results/cluster-<time>.jsonl. Needs redis-server,
redis-cli and redis-benchmark (7.0+) on PATH.
"""

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    # The cluster bus takes port + 10000: both must be free.
    while True:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            p = s.getsockname()[1]
        if p + 10000 < 65536:
            try:
                with socket.socket() as b:
                    b.bind(("127.0.0.1", p + 10000))
                return p
            except OSError:
                continue


def cli(port, *args):
    return subprocess.run(["redis-cli", "-p", str(port), *args], capture_output=True,
                          text=True, check=True).stdout.strip()


def info(port, field):
    for line in cli(port, "INFO", "replication").splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1]
    return None


def wait(what, cond, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cond():
                return
        except (subprocess.CalledProcessError, OSError):
            pass
        time.sleep(0.1)
    raise RuntimeError(f"timed out waiting for {what}")


def start_cluster(work):
    ports, procs = [], []
    for i in range(6):
        p = free_port()
        d = Path(work) / f"node-{i}"
        d.mkdir()
        procs.append(subprocess.Popen(
            ["redis-server", "--port", str(p), "--bind", "127.0.0.1", "--dir", str(d),
             "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
             "--save", "", "--appendonly", "no", "--repl-diskless-sync", "yes",
             "--repl-diskless-sync-delay", "0", "--repl-backlog-size", "64mb"],
            stdout=open(d / "redis.log", "w"), stderr=subprocess.STDOUT))
        ports.append(p)
    for p in ports:
        wait("a node to answer", lambda p=p: cli(p, "PING") == "PONG")
    subprocess.run(["redis-cli", "--cluster", "create", *[f"127.0.0.1:{p}" for p in ports],
                    "--cluster-replicas", "1", "--cluster-yes"], check=True,
                   capture_output=True)
    wait("cluster_state:ok", lambda: all("cluster_state:ok" in cli(p, "CLUSTER", "INFO")
                                         for p in ports))
    replicas = [p for p in ports if info(p, "role") == "slave"]
    wait("every replica's link", lambda: all(info(p, "master_link_status") == "up"
                                            for p in replicas))
    return ports, replicas, procs


def fill(ports, replicas, mib):
    # redis-benchmark --cluster tags its keys so each goes to its owner.
    value = 512
    n = mib * (1 << 20) // (value + 90)
    subprocess.run(["redis-benchmark", "--cluster", "-p", str(ports[0]), "-t", "set",
                    "-n", str(n), "-r", str(n * 50), "-d", str(value), "-P", "32", "-c", "12",
                    "-q"], check=True, capture_output=True)

    def caught_up():
        for r in replicas:
            host, port = info(r, "master_host"), int(info(r, "master_port"))
            if info(port, "master_repl_offset") != info(r, "slave_repl_offset"):
                return False
        return True
    wait("the replicas to catch up", caught_up, 600)
    return n


def floor(port, work):
    out = Path(work) / f"floor-{port}.rdb"
    t = time.monotonic()
    subprocess.run(["redis-cli", "-p", str(port), "--rdb", str(out)], check=True,
                   capture_output=True)
    dt = time.monotonic() - t
    size = out.stat().st_size
    out.unlink()
    return dt, size


def floor_parallel(ports, work):
    """`redis-cli --rdb` of every shard at once: the floor for taking them
    all at the same time on this machine."""
    outs = [Path(work) / f"par-{p}.rdb" for p in ports]
    t = time.monotonic()
    procs = [subprocess.Popen(["redis-cli", "-p", str(p), "--rdb", str(o)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for p, o in zip(ports, outs)]
    for pr in procs:
        if pr.wait() != 0:
            raise RuntimeError("redis-cli --rdb failed")
    dt = time.monotonic() - t
    for o in outs:
        o.unlink()
    return dt


def replvault(rv, seed, work, extra):
    vault = Path(work) / "vault"
    t = time.monotonic()
    p = subprocess.run(["/usr/bin/time", "-v", rv, "backup", "--cluster", "--redis",
                        f"redis://127.0.0.1:{seed}", "--vault", str(vault), "--no-encryption",
                        *extra], capture_output=True, text=True)
    dt = time.monotonic() - t
    if p.returncode != 0:
        raise RuntimeError(f"replvault failed: {p.stderr[-2000:]}")
    rss = next(int(l.split(":")[1]) // 1024 for l in p.stderr.splitlines()
               if "Maximum resident set size" in l)
    shutil.rmtree(vault)
    return dt, rss


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=str(ROOT / "target/release/replvault"))
    ap.add_argument("--mib", type=int, default=900, help="data written, over all shards")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = tempfile.mkdtemp(prefix="rv-cluster-bench-")
    procs = []
    try:
        ports, replicas, procs = start_cluster(work)
        keys = fill(ports, replicas, args.mib)
        used = sum(int(next(l.split(":")[1] for l in cli(p, "INFO", "memory").splitlines()
                            if l.startswith("used_memory:"))) for p in ports
                   if info(p, "role") == "master")
        rows = []
        for r in range(args.repeat):
            floors = [floor(p, work) for p in replicas]
            together = floor_parallel(replicas, work)
            wall, rss_total = replvault(args.binary, ports[0], work, [])
            seq_wall, rss_one = replvault(args.binary, ports[0], work,
                                          ["--cluster-concurrency", "1"])
            slowest = max(f[0] for f in floors)
            row = {"row": "cluster", "round": r, "keys": keys, "used_memory": used,
                   "rdb_bytes": [f[1] for f in floors], "floor_s": [round(f[0], 3) for f in floors],
                   "slowest_floor_s": round(slowest, 3), "sum_floor_s": round(sum(f[0] for f in floors), 3),
                   "parallel_floor_s": round(together, 3),
                   "cluster_s": round(wall, 3), "cluster_rss_mib": rss_total,
                   "one_at_a_time_s": round(seq_wall, 3), "one_shard_rss_mib": rss_one,
                   "ratio_slowest": round(wall / slowest, 3),
                   "ratio_sum": round(wall / sum(f[0] for f in floors), 3),
                   "ratio_parallel_floor": round(wall / together, 3),
                   "cores": os.cpu_count()}
            rows.append(row)
            print(json.dumps(row), flush=True)
        out = ROOT / "bench" / "results" / f"cluster-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.jsonl"
        out.write_text("".join(json.dumps(x) + "\n" for x in rows))
        med = lambda k: statistics.median(x[k] for x in rows)
        print(f"\n{keys:,} keys, {used / (1 << 20):.0f} MiB used_memory over 3 primaries, "
              f"{os.cpu_count()} cores, {args.repeat} rounds (median):")
        print("| redis-cli --rdb: slowest shard alone | all three at once | one after another "
              "| backup --cluster | ratio to slowest | to all at once | to one after another "
              "| peak RSS, 3 at once | peak RSS, 1 at a time |")
        print("|---|---|---|---|---|---|---|---|---|")
        print(f"| {med('slowest_floor_s'):.2f} s | {med('parallel_floor_s'):.2f} s "
              f"| {med('sum_floor_s'):.2f} s | {med('cluster_s'):.2f} s "
              f"| {med('ratio_slowest'):.2f}x | {med('ratio_parallel_floor'):.2f}x "
              f"| {med('ratio_sum'):.2f}x | {med('cluster_rss_mib')} MiB "
              f"| {med('one_shard_rss_mib')} MiB |")
        print(f"\nresults: {out.relative_to(ROOT)}")
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
