#!/usr/bin/env python3
"""Point-in-time recovery benchmark: what the stream archiver costs and how
far behind it is, on the same redis-server in the same run.

For each vault (a local directory, and s3s-fs on loopback unless --skip-s3):

  lag         `replvault run --pitr` attached while redis-benchmark writes at
              full speed; a probe client writes a key and sends `WAIT 1 5000`
              on the same connection every 50 ms: its latency is the archive
              lag (the time until the write is in the vault). p50/p99/max.
  rss         the archiver's peak RSS over that run (/usr/bin/time -v).

Then, once (local vault):

  throughput  redis-benchmark SET/LPUSH/HSET requests per second on the
              primary with the archiver attached, against with a real
              replica (redis-server --replicaof) attached; interleaved for
              --repeat rounds; the ratio is the median of paired rounds.
  restore     `restore --at latest --format rdb` wall time, against the time
              the same server takes to load the equivalent aof-dir by itself
              (from process start until it answers PING with the data loaded).

Results are printed as Markdown and appended as JSON lines to
bench/results/pitr-<timestamp>.jsonl. Only the standard library; needs
redis-server, redis-benchmark, /usr/bin/time, and s3s-fs for the S3 rows.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cli(port, *args, check=True):
    out = subprocess.run(["redis-cli", "-p", str(port), *map(str, args)],
                         capture_output=True, text=True, check=check)
    return out.stdout.strip()


def wait_ping(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if cli(port, "PING", check=False) == "PONG":
                return
        except OSError:
            pass
        time.sleep(0.02)
    raise RuntimeError(f"server on {port} did not answer")


def start_redis(workdir, name, *extra):
    port = free_port()
    d = Path(workdir) / name
    d.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--dir", str(d),
         "--save", "", "--appendonly", "no", "--repl-diskless-sync", "yes",
         "--repl-diskless-sync-delay", "0", "--enable-debug-command", "yes", *extra],
        stdout=open(d / "redis.log", "w"), stderr=subprocess.STDOUT)
    wait_ping(port)
    return port, proc


class Resp:
    """A minimal blocking RESP client for the probe."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port))
        self.buf = b""

    def cmd(self, *args):
        out = f"*{len(args)}\r\n".encode()
        for a in args:
            a = str(a).encode()
            out += f"${len(a)}\r\n".encode() + a + b"\r\n"
        self.s.sendall(out)
        while b"\r\n" not in self.buf:
            self.buf += self.s.recv(4096)
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line.decode()


def probe(port, stop, samples):
    c = Resp(port)
    i = 0
    name = f"probe:{threading.get_ident()}"
    while not stop.is_set():
        i += 1
        c.cmd("SET", name, i)
        t0 = time.monotonic()
        r = c.cmd("WAIT", 1, 5000)
        dt = time.monotonic() - t0
        samples.append((dt, r))
        time.sleep(0.05)


def bench_load(port, seconds, n=300_000):
    """redis-benchmark SET/LPUSH/HSET at full speed, repeated for about
    `seconds`; returns the mean requests per second by test."""
    got = {}
    t0 = time.monotonic()
    while time.monotonic() - t0 < seconds:
        out = subprocess.run(["redis-benchmark", "-p", str(port), "-t", "set,lpush,hset",
                              "-n", str(n), "-P", "16", "-c", "20", "-r", "1000000", "-q",
                              "--csv"], capture_output=True, text=True, check=True).stdout
        for line in out.splitlines():
            parts = [x.strip('"') for x in line.split(",")]
            if len(parts) >= 2 and parts[0] != "test":
                try:
                    got.setdefault(parts[0], []).append(float(parts[1]))
                except ValueError:
                    pass
    return {k: statistics.mean(v) for k, v in got.items()}


def run_archiver(rv, port, vault, env, log):
    return subprocess.Popen(
        ["/usr/bin/time", "-v", rv, "run", "--pitr", "--redis", f"redis://127.0.0.1:{port}",
         "--vault", vault, "--no-encryption", "--every", "24h"],
        stdout=subprocess.DEVNULL, stderr=open(log, "w"), env=env)


def stop_archiver(p, log):
    # SIGTERM to replvault itself: /usr/bin/time would die of it and report
    # nothing.
    kids = subprocess.run(["pgrep", "-P", str(p.pid)], capture_output=True, text=True).stdout
    for pid in kids.split():
        os.kill(int(pid), signal.SIGTERM)
    p.wait(timeout=120)
    rss = None
    for line in Path(log).read_text().splitlines():
        if "Maximum resident set size" in line:
            rss = int(line.split(":")[1]) // 1024
    return rss


def wait_streaming(port, timeout=60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if "state=online" in cli(port, "INFO", "replication"):
            return
        time.sleep(0.05)
    raise RuntimeError("the archiver did not come online")


def pct(xs, q):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))]


def lag_row(rv, work, name, vault, env, seconds):
    port, proc = start_redis(work, f"lag-{name}")
    log = Path(work) / f"archiver-{name}.log"
    arch = run_archiver(rv, port, vault, env, log)
    try:
        wait_streaming(port)
        stop, samples = threading.Event(), []
        # Several probes: each waits up to an interval for its WAIT.
        threads = [threading.Thread(target=probe, args=(port, stop, samples)) for _ in range(8)]
        for t in threads:
            t.start()
        rps = bench_load(port, seconds)
        stop.set()
        for t in threads:
            t.join()
    finally:
        rss = stop_archiver(arch, log)
        proc.terminate()
        proc.wait()
    lat = [s[0] for s in samples]
    missed = sum(1 for s in samples if s[1] != ":1")
    return {"row": "lag", "vault": name, "probes": len(lat), "missed": missed,
            "p50_s": pct(lat, 0.5), "p99_s": pct(lat, 0.99), "max_s": max(lat),
            "rss_mib": rss, "rps": rps}


def throughput_rows(rv, work, repeat, seconds):
    ratios, rows = [], []
    for r in range(repeat):
        for mode in ("replica", "archiver"):
            port, proc = start_redis(work, f"tp-{r}-{mode}")
            helper = None
            try:
                if mode == "replica":
                    rport, helper = start_redis(work, f"tp-{r}-replica-of", "--replicaof",
                                                "127.0.0.1", str(port))
                else:
                    vault = Path(work) / f"tp-vault-{r}"
                    helper = run_archiver(rv, port, str(vault), os.environ,
                                          Path(work) / f"tp-{r}.log")
                wait_streaming(port)
                rps = bench_load(port, seconds)
            finally:
                if helper is not None:
                    if mode == "archiver":
                        stop_archiver(helper, Path(work) / f"tp-{r}.log")
                    else:
                        helper.terminate()
                        helper.wait()
                proc.terminate()
                proc.wait()
            rows.append({"row": "throughput", "round": r, "mode": mode, "rps": rps})
        a, b = rows[-1]["rps"], rows[-2]["rps"]
        common = [k for k in a if k in b]
        ratios.append(statistics.mean(a[k] / b[k] for k in common))
    return rows, statistics.median(ratios), ratios


def restore_rows(rv, work, seconds):
    port, proc = start_redis(work, "restore-src")
    vault = str(Path(work) / "restore-vault")
    log = Path(work) / "restore-archiver.log"
    arch = run_archiver(rv, port, vault, os.environ, log)
    try:
        wait_streaming(port)
        bench_load(port, seconds)
        c = Resp(port)
        c.cmd("SET", "last", "1")
        c.cmd("WAIT", 1, 10000)
        digest = cli(port, "DEBUG", "DIGEST")
    finally:
        stop_archiver(arch, log)
        proc.terminate()
        proc.wait()
    out = Path(work) / "at.rdb"
    t0 = time.monotonic()
    subprocess.run([rv, "restore", "--at", "latest", "--vault", vault, "--out", str(out)],
                   check=True, capture_output=True)
    rdb_s = time.monotonic() - t0
    aofdir = Path(work) / "aofhome" / "appendonlydir"
    aofdir.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([rv, "restore", "--at", "latest", "--format", "aof-dir", "--vault", vault,
                    "--out", str(aofdir)], check=True, capture_output=True)
    lport = free_port()
    t0 = time.monotonic()
    lp = subprocess.Popen(["redis-server", "--port", str(lport), "--dir", str(aofdir.parent),
                           "--appendonly", "yes", "--save", "", "--enable-debug-command", "yes"],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if cli(lport, "PING", check=False) == "PONG" and \
                        "loading:0" in cli(lport, "INFO", "persistence", check=False):
                    break
            except OSError:
                pass
            time.sleep(0.005)
        load_s = time.monotonic() - t0
        same = cli(lport, "DEBUG", "DIGEST") == digest
    finally:
        lp.terminate()
        lp.wait()
    return {"row": "restore", "rdb_s": rdb_s, "aof_dir_load_s": load_s,
            "ratio": rdb_s / load_s, "aof_dir_digest_matches": same,
            "rdb_bytes": out.stat().st_size}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--binary", default=str(ROOT / "target/release/replvault"))
    ap.add_argument("--seconds", type=int, default=30, help="load per run")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--skip-s3", action="store_true")
    args = ap.parse_args()
    rv = args.binary
    if not args.skip_s3 and not shutil.which("s3s-fs"):
        sys.exit("s3s-fs not found on PATH (or pass --skip-s3)")
    results = []
    with tempfile.TemporaryDirectory(prefix="rv-pitr-bench-") as work:
        results.append(lag_row(rv, work, "local", str(Path(work) / "vault"), os.environ,
                               args.seconds))
        if not args.skip_s3:
            s3root = Path(work) / "s3"
            (s3root / "bench").mkdir(parents=True)
            s3port = free_port()
            s3 = subprocess.Popen(["s3s-fs", "--host", "127.0.0.1", "--port", str(s3port),
                                   "--access-key", "k", "--secret-key", "s", str(s3root)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            env = dict(os.environ, AWS_ACCESS_KEY_ID="k", AWS_SECRET_ACCESS_KEY="s",
                       AWS_REGION="us-east-1", AWS_ENDPOINT_URL=f"http://127.0.0.1:{s3port}",
                       REPLVAULT_S3_PATH_STYLE="true", AWS_EC2_METADATA_DISABLED="true")
            time.sleep(0.5)
            try:
                results.append(lag_row(rv, work, "s3", "s3://bench/pitr", env, args.seconds))
            finally:
                s3.terminate()
                s3.wait()
        tp, ratio, ratios = throughput_rows(rv, work, args.repeat, args.seconds)
        results.extend(tp)
        results.append({"row": "throughput-ratio", "median": ratio, "rounds": ratios})
        results.append(restore_rows(rv, work, args.seconds))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = ROOT / "bench" / "results" / f"pitr-{stamp}.jsonl"
    with open(out, "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    print("| vault | probes | WAIT 1 p50 | p99 | max | archiver peak RSS |")
    print("|---|---|---|---|---|---|")
    for r in results:
        if r["row"] == "lag":
            print(f"| {r['vault']} | {r['probes']} ({r['missed']} not acked) | {r['p50_s']:.3f} s "
                  f"| {r['p99_s']:.3f} s | {r['max_s']:.3f} s | {r['rss_mib']} MiB |")
    print(f"\nprimary throughput, archiver / real replica: median {ratio:.3f}x "
          f"(rounds {', '.join(f'{x:.3f}' for x in ratios)})")
    r = results[-1]
    print(f"restore --at rdb {r['rdb_s']:.2f} s against loading the aof-dir "
          f"{r['aof_dir_load_s']:.2f} s: {r['ratio']:.2f}x (aof-dir digest matches: "
          f"{r['aof_dir_digest_matches']})")
    print(f"\nresults: {out.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
