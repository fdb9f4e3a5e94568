#!/usr/bin/env python3
"""Soak and chaos harness for `replvault run --pitr` (issue 30, item 1).

One command, seeded (`--seed N` replays a run's fault plan and load):

    python3 bench/soak/soak.py --minutes 3            # the test command's run
    python3 bench/soak/soak.py --minutes 120 --seed 7 # a long soak

It starts a real primary (redis-server on loopback, small
--repl-backlog-size, so long outages overrun it) with a real replica, a
steady mixed write load with checkpoints (load.py), and two archivers:

    replvault run --pitr --pitr-interval 500ms --every E --keep-pitr ...
      local: into a vault on a small loop-mounted ext4 filesystem (so the
             disk can be filled), through a TCP fault proxy to Redis
      s3:    into s3s-fs behind an HTTP fault proxy, through another TCP
             fault proxy to Redis

then injects faults drawn from the seed (kill -9 and SIGTERM of replvault,
CLIENT KILL TYPE replica, a primary restart, S3 stalls, 503s, cut
connections and a restart of the S3 server, stalls and cuts of the Redis
link, a full disk), and at the end checks both vaults: verify --all, every
backup restores and loads, checkpoints restore to their digests, the
largest unrestorable span (RPO), prune leaves no orphan and no open upload,
RSS and open files stay flat. Prints a Markdown summary, writes a JSON
report, exits 1 if any check failed. See bench/soak/README.md.

Standard library only; needs redis-server, redis-cli and s3s-fs on PATH,
and root for the loop mount (without it the local vault is a plain
directory and the disk-full fault is skipped, which the report says)."""

import argparse
import bisect
import datetime
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from load import Resp, RespError, Writer, info, replica_acks  # noqa: E402
from proxies import HttpFaultProxy, TcpFaultProxy  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

KINDS = ["kill9", "sigterm", "client_kill", "primary_restart", "s3_stall", "s3_503",
         "s3_cut", "s3_restart", "net_stall", "net_cut", "disk_full"]
VAULTS = ("local", "s3")
# The loopback address each archiver's proxy connects to Redis from, so
# INFO replication tells their acknowledged offsets apart.
SOURCE_IP = {"local": "127.0.0.2", "s3": "127.0.0.3"}

# Resource bounds (stated in the report and README.md).
RSS_SLOPE_MIB_H = 16.0     # fitted RSS growth per hour, enforced from 30 min of samples
FD_SLOPE_H = 10.0          # fitted growth of open fds per hour, same
RSS_PEAK_MIB = 512.0       # any sample, always enforced
FD_PEAK = 256              # any sample, always enforced
SLOPE_MIN_HOURS = 0.5
WARMUP_S = 120             # samples this early in a process's life are left out of the fit

T0 = time.time()
_log_lock = threading.Lock()
_log_file = None


def log(msg):
    line = f"[{time.time() - T0:8.1f}s] {msg}"
    with _log_lock:
        print(line, flush=True)
        if _log_file is not None:
            _log_file.write(line + "\n")
            _log_file.flush()


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso_ms(ms):
    d = datetime.datetime.fromtimestamp(ms // 1000, tz=datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def parse_us(s):
    """An RFC 3339 time in UTC (as chrono writes it) to Unix microseconds."""
    s = s.replace("Z", "+00:00")
    main, _, tz = s.partition("+")
    if "." in main:
        whole, frac = main.split(".")
    else:
        whole, frac = main, "0"
    d = datetime.datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(
        tzinfo=datetime.timezone.utc)
    return int(d.timestamp()) * 1_000_000 + int((frac + "000000")[:6])


def parse_duration(s):
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}
    for u in ("ms", "s", "m", "h", "d"):
        if s.endswith(u) and s[:-len(u)].replace(".", "").isdigit():
            return float(s[:-len(u)]) * units[u]
    raise ValueError(s)


def tail(path, n=15):
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return ""


class Failures:
    def __init__(self):
        self.items = []
        self.lock = threading.Lock()

    def add(self, check, vault, detail):
        with self.lock:
            self.items.append({"check": check, "vault": vault, "detail": detail})
        log(f"FAIL {check} [{vault}]: {detail}")


FAILS = Failures()


# --- processes ---------------------------------------------------------------------------

class Redis:
    """redis-server on a fixed port, restartable on the same data."""

    def __init__(self, name, workdir, extra, port=None):
        self.name = name
        self.dir = Path(workdir) / name
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.extra = list(extra)
        self.proc = None
        self.down = False

    def argv(self):
        return ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1",
                "--protected-mode", "no", "--dir", str(self.dir), "--dbfilename", "dump.rdb",
                "--save", "", "--appendonly", "no", "--enable-debug-command", "yes",
                "--logfile", str(self.dir / "redis.log"), *self.extra]

    def start(self):
        self.proc = subprocess.Popen(self.argv(), stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                c = Resp(self.port, timeout=2)
                ok = c.cmd("PING") == "PONG"
                c.close()
                if ok:
                    self.down = False
                    return
            except (OSError, RespError, ConnectionError):
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise RuntimeError(f"{self.name} did not start: {tail(self.dir / 'redis.log')}")

    def conn(self, timeout=10):
        return Resp(self.port, timeout=timeout)

    def shutdown_save(self, timeout=60):
        """SHUTDOWN SAVE (waits for lagging replicas up to the server's
        shutdown-timeout, then saves the data and its replication history)."""
        self.down = True
        try:
            c = self.conn()
            c.s.sendall(Resp.encode(["SHUTDOWN", "SAVE"]))
            try:
                c._read()
            except (OSError, ConnectionError):
                pass
            c.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            FAILS.add("primary-shutdown", "-", f"{self.name} did not exit {timeout}s after SHUTDOWN SAVE")
            self.proc.kill()
            self.proc.wait()

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class S3Server:
    """s3s-fs on a fixed port and root, restartable."""

    def __init__(self, workdir, bucket):
        self.root = Path(workdir) / "s3root"
        (self.root / bucket).mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.log = Path(workdir) / "s3s-fs.log"
        self.proc = None
        self.down = False

    def start(self):
        self.proc = subprocess.Popen(
            ["s3s-fs", "--host", "127.0.0.1", "--port", str(self.port), "--access-key",
             "SOAKACCESSKEY", "--secret-key", "soak-secret-key", str(self.root)],
            stdout=open(self.log, "a"), stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                self.down = False
                return
            except OSError:
                if self.proc.poll() is not None:
                    break
                time.sleep(0.05)
        raise RuntimeError(f"s3s-fs did not start: {tail(self.log)}")

    def kill(self):
        self.down = True
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def s3_env(port):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("AWS_", "REPLVAULT_"))}
    env.update({"AWS_ACCESS_KEY_ID": "SOAKACCESSKEY", "AWS_SECRET_ACCESS_KEY": "soak-secret-key",
                "AWS_REGION": "us-east-1", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}",
                "REPLVAULT_S3_PATH_STYLE": "true", "AWS_CONFIG_FILE": "/dev/null",
                "AWS_SHARED_CREDENTIALS_FILE": "/dev/null", "AWS_EC2_METADATA_DISABLED": "true"})
    return env


def plain_env():
    return {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "REPLVAULT_"))}


class Daemon:
    """One `replvault run --pitr`, restartable; remembers each process's
    life (pid, start, end, how it ended) and its resource samples."""

    def __init__(self, name, binary, argv, env, logpath):
        self.name = name
        self.binary = binary
        self.argv = argv
        self.env = env
        self.logpath = logpath
        self.proc = None
        self.lives = []
        self.lock = threading.Lock()
        self.expect_down = False
        self.samples = []  # (t, pid, rss_kib, fds)

    def start(self):
        with self.lock:
            with open(self.logpath, "a") as f:
                f.write(f"--- soak: start at {iso_ms(int(time.time() * 1000))}\n")
            self.proc = subprocess.Popen([self.binary, *self.argv], env=self.env,
                                         stdout=open(self.logpath, "a"), stderr=subprocess.STDOUT,
                                         start_new_session=True)
            self.lives.append({"pid": self.proc.pid, "start": time.time(), "end": None,
                               "how": None, "rc": None})
            self.expect_down = False

    def _ended(self, how):
        life = self.lives[-1]
        life["end"] = time.time()
        life["how"] = how
        life["rc"] = self.proc.returncode

    def kill9(self):
        with self.lock:
            self.expect_down = True
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self._ended("kill9")

    def term(self, timeout=60):
        """SIGTERM; a clean stop exits 0 within `timeout`."""
        with self.lock:
            self.expect_down = True
            if self.proc.poll() is not None:
                self._ended("dead before SIGTERM")
                return self.proc.returncode
            t = time.monotonic()
            self.proc.send_signal(signal.SIGTERM)
            try:
                rc = self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                FAILS.add("sigterm", self.name,
                          f"pid {self.proc.pid} still running {timeout}s after SIGTERM; killed")
                self.proc.kill()
                self.proc.wait()
                self._ended("sigterm-timeout")
                return None
            self._ended("sigterm")
            self.lives[-1]["stop_s"] = round(time.monotonic() - t, 3)
            if rc != 0:
                FAILS.add("sigterm", self.name, f"exit status {rc} after SIGTERM: {tail(self.logpath, 8)}")
            return rc

    def check_alive(self):
        """An exit nobody asked for is a failure; the daemon is restarted."""
        with self.lock:
            if self.expect_down or self.proc is None or self.proc.poll() is None:
                return
            self._ended("crashed")
            rc = self.proc.returncode
        FAILS.add("unexpected-exit", self.name, f"exit status {rc}: {tail(self.logpath, 10)}")
        self.start()

    def sample(self):
        with self.lock:
            p = self.proc
            if p is None or p.poll() is not None:
                return
            pid = p.pid
        try:
            rss = None
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss = int(line.split()[1])
            fds = len(os.listdir(f"/proc/{pid}/fd"))
        except OSError:
            return
        if rss is not None:
            self.samples.append((time.time(), pid, rss, fds))

    def metrics(self, port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
                text = r.read().decode()
        except OSError as e:
            return {"error": str(e)}
        out = {}
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            k, _, v = line.rpartition(" ")
            try:
                out[k] = float(v)
            except ValueError:
                pass
        return out


# --- the small filesystem ----------------------------------------------------------------

class SmallFs:
    """A loop-mounted ext4 image for the local vault, so the disk can be
    filled; falls back to a plain directory (no disk-full fault)."""

    def __init__(self, workdir, mib, allow):
        self.img = Path(workdir) / "vault.img"
        self.mnt = Path(workdir) / "vaultfs"
        self.mnt.mkdir()
        self.mounted = False
        self.why_not = None
        if not allow:
            self.why_not = "--no-loop"
            return
        if os.geteuid() != 0:
            self.why_not = "not root (mount -o loop needs root)"
            return
        try:
            with open(self.img, "wb") as f:
                f.truncate(mib << 20)
            subprocess.run(["mkfs.ext4", "-q", "-F", "-m", "0", "-N", "131072", str(self.img)],
                           check=True, capture_output=True, text=True)
            subprocess.run(["mount", "-o", "loop", str(self.img), str(self.mnt)],
                           check=True, capture_output=True, text=True)
            self.mounted = True
        except (OSError, subprocess.CalledProcessError) as e:
            err = getattr(e, "stderr", "") or str(e)
            self.why_not = f"cannot mount a loop filesystem: {err.strip()}"

    def fill(self):
        """Fills the filesystem (a ballast file, then small writes to ENOSPC)."""
        st = os.statvfs(self.mnt)
        free = st.f_bavail * st.f_frsize
        ballast = self.mnt / "soak-ballast"
        if free > 1 << 20:
            subprocess.run(["fallocate", "-l", str(free - (1 << 20)), str(ballast)],
                           capture_output=True)
        fd = os.open(self.mnt / "soak-ballast-2", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
        try:
            block = b"\0" * 4096
            while True:
                os.write(fd, block)
        except OSError:
            pass
        finally:
            os.close(fd)
        st = os.statvfs(self.mnt)
        return st.f_bavail * st.f_frsize

    def empty(self):
        for n in ("soak-ballast", "soak-ballast-2"):
            try:
                (self.mnt / n).unlink()
            except FileNotFoundError:
                pass

    def close(self):
        if self.mounted:
            self.empty()
            for args in (["umount", str(self.mnt)], ["umount", "-l", str(self.mnt)]):
                if subprocess.run(args, capture_output=True).returncode == 0:
                    break
                time.sleep(1)
            self.mounted = False


# --- the fault plan ----------------------------------------------------------------------

def plan_faults(rng, start, end, long_run, kinds):
    """Faults from `start` to `end` seconds into the run, one at a time:
    each round takes every kind once in a shuffled order (kill -9 and
    SIGTERM alternate between rounds, so each process lives long enough
    for its resource trend to mean something)."""
    if long_run:
        durs = {"kill9": (0.2, 10), "sigterm": (0.2, 10), "client_kill": (0, 0),
                "primary_restart": (0.2, 5), "s3_stall": (2, 45), "s3_503": (2, 30),
                "s3_cut": (2, 30), "s3_restart": (1, 20), "net_stall": (1, 30),
                "net_cut": (0.5, 30), "disk_full": (2, 60)}
        gap = (15, 60)
    else:
        durs = {"kill9": (0.2, 3), "sigterm": (0.2, 3), "client_kill": (0, 0),
                "primary_restart": (0.2, 2), "s3_stall": (2, 8), "s3_503": (2, 8),
                "s3_cut": (2, 8), "s3_restart": (1, 5), "net_stall": (1, 9),
                "net_cut": (0.5, 8), "disk_full": (2, 8)}
        gap = (2, 4)
    faults, t, rnd = [], start, 0
    bag = []
    while True:
        if not bag:
            bag = [k for k in kinds if k != ("sigterm" if rnd % 2 else "kill9")]
            if not long_run:
                bag = list(kinds)
            rng.shuffle(bag)
            rnd += 1
        kind = bag.pop()
        d = round(rng.uniform(*durs[kind]), 1)
        if t + d > end:
            break
        if kind in ("kill9", "sigterm"):
            target = rng.choice(VAULTS)
        elif kind in ("net_stall", "net_cut"):
            target = rng.choice(["local", "s3", "both"])
        elif kind.startswith("s3_"):
            target = "s3"
        elif kind == "disk_full":
            target = "local"
        else:
            target = "all"
        faults.append({"at": round(t, 1), "kind": kind, "target": target, "duration": d})
        t += d + rng.uniform(*gap)
    return faults


class Chaos:
    """Applies the fault plan; every fault heals itself before the next."""

    def __init__(self, env, plan):
        self.env = env
        self.plan = plan
        self.done = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="chaos", daemon=True)

    def start(self):
        self.thread.start()

    def _run(self):
        for f in self.plan:
            while not self.stop.is_set() and time.time() - self.env.t_start < f["at"]:
                time.sleep(0.05)
            if self.stop.is_set():
                return
            rec = dict(f)
            rec["start_ms"] = int(time.time() * 1000)
            log(f"fault {f['kind']} target={f['target']} duration={f['duration']}s")
            try:
                rec["note"] = self.apply(f)
            except Exception as e:  # a harness bug must not end the run silently
                rec["note"] = f"harness error: {e}"
                log(traceback.format_exc())
            finally:
                self.env.heal()
            rec["end_ms"] = int(time.time() * 1000)
            self.done.append(rec)

    def _targets(self, target):
        return list(VAULTS) if target == "both" else [target]

    def apply(self, f):
        e, kind, d = self.env, f["kind"], f["duration"]
        if kind == "kill9":
            e.daemons[f["target"]].kill9()
            time.sleep(d)
            e.daemons[f["target"]].start()
            return None
        if kind == "sigterm":
            rc = e.daemons[f["target"]].term()
            stop_s = e.daemons[f["target"]].lives[-1].get("stop_s")
            time.sleep(d)
            e.daemons[f["target"]].start()
            return f"exit {rc} after {stop_s}s"
        if kind == "client_kill":
            c = e.primary.conn()
            n = c.cmd("CLIENT", "KILL", "TYPE", "replica")
            c.close()
            return f"{n} replica connection(s) killed"
        if kind == "primary_restart":
            e.primary.shutdown_save()
            time.sleep(d)
            e.primary.start()
            c = e.primary.conn()
            r = info(c, "replication")
            c.close()
            return f"replid {r.get('master_replid', '')[:8]}, replid2 {r.get('master_replid2', '')[:8]} " \
                   f"from offset {r.get('second_repl_offset')}"
        if kind in ("s3_stall", "s3_503", "s3_cut"):
            e.s3proxy.set_mode(kind[3:])
            time.sleep(d)
            e.s3proxy.set_mode("forward")
            return None
        if kind == "s3_restart":
            e.s3.kill()
            time.sleep(d)
            e.s3.start()
            return None
        if kind == "net_stall":
            for v in self._targets(f["target"]):
                e.redis_proxy[v].stall()
            time.sleep(d)
            for v in self._targets(f["target"]):
                e.redis_proxy[v].unstall()
            return None
        if kind == "net_cut":
            n = 0
            for v in self._targets(f["target"]):
                n += len(e.redis_proxy[v]._pairs)
                e.redis_proxy[v].down()
            time.sleep(d)
            for v in self._targets(f["target"]):
                e.redis_proxy[v].up()
            return f"{n} connection(s) cut, link down {d}s"
        if kind == "disk_full":
            left = e.fs.fill()
            time.sleep(d)
            e.fs.empty()
            return f"{left} bytes left free"
        raise ValueError(kind)


# --- the environment ---------------------------------------------------------------------

class Env:
    def __init__(self, args, work):
        self.args = args
        self.work = Path(work)
        self.t_start = None
        self.daemons = {}
        self.redis_proxy = {}
        self.primary = None
        self.replica = None
        self.s3 = None
        self.s3proxy = None
        self.fs = None
        self.stop_bg = threading.Event()
        self.bucket = "soak"

    def heal(self):
        for p in self.redis_proxy.values():
            p.heal()
        if self.s3proxy:
            self.s3proxy.set_mode("forward")
        if self.fs:
            self.fs.empty()
        if self.s3 and (self.s3.proc is None or self.s3.proc.poll() is not None):
            self.s3.start()
        if self.primary and self.primary.proc.poll() is not None:
            self.primary.start()

    def background(self):
        """Every second: daemons that died by themselves; every 5 s: RSS and fds."""
        n = 0
        while not self.stop_bg.wait(1.0):
            for d in self.daemons.values():
                d.check_alive()
            if self.primary.proc.poll() is not None and not self.primary.down:
                FAILS.add("primary", "-", f"redis-server exited: {tail(self.primary.dir / 'redis.log')}")
                self.primary.start()
            if self.s3.proc.poll() is not None and not self.s3.down:
                FAILS.add("s3s-fs", "-", f"s3s-fs exited: {tail(self.s3.log)}")
                self.s3.start()
            n += 1
            if n % self.args.sample_every == 0:
                for d in self.daemons.values():
                    d.sample()

    def vault(self, name):
        if name == "local":
            return str(self.fs.mnt / "vault"), plain_env()
        return f"s3://{self.bucket}/vault", s3_env(self.s3.port)

    def close(self):
        self.stop_bg.set()
        for d in self.daemons.values():
            try:
                if d.proc and d.proc.poll() is None:
                    d.proc.kill()
                    d.proc.wait()
            except OSError:
                pass
        for p in self.redis_proxy.values():
            p.close()
        if self.s3proxy:
            self.s3proxy.close()
        for r in (self.primary, self.replica):
            if r:
                r.stop()
        if self.s3:
            self.s3.kill()
        if self.fs:
            self.fs.close()


def wait_online(env, timeout):
    deadline = time.monotonic() + timeout
    c = env.primary.conn()
    try:
        while time.monotonic() < deadline:
            acks = replica_acks(info(c, "replication"))
            if all(SOURCE_IP[v] in acks for v in VAULTS):
                return True
            for d in env.daemons.values():
                d.check_alive()
            time.sleep(0.2)
    finally:
        c.close()
    return False


def prefill(primary, rng, mib):
    """db 3: 64 blobs of random bytes (the bulk of the RDB, incompressible,
    so a base is a multipart upload on S3)."""
    c = primary.conn(timeout=60)
    size = max(1, (mib << 20) // 64)
    c.cmd("SELECT", 3)
    for i in range(64):
        c.cmd("SET", f"blob:{i}", rng.randbytes(size))
    c.cmd("SELECT", 0)
    c.close()


# --- checks ------------------------------------------------------------------------------

def rv(env, vault_name, args, timeout=900):
    vault, venv = env.vault(vault_name)
    argv = [env.args.binary, args[0], "--vault", vault, *args[1:]]
    try:
        return subprocess.run(argv, env=venv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        return subprocess.CompletedProcess(argv, 124, e.stdout or "", f"timed out after {timeout}s")


def one_line(p):
    s = (p.stderr or p.stdout or "").strip().splitlines()
    return s[-1] if s else f"exit {p.returncode}"


class Checker:
    """A redis-server that loads restored RDB files (DEBUG RELOAD NOSAVE)."""

    def __init__(self, work, name):
        self.redis = Redis(name, work, [])
        self.redis.start()

    def load(self, rdb):
        shutil.copyfile(rdb, self.redis.dir / "dump.rdb")
        c = self.redis.conn(timeout=300)
        try:
            r = c.cmd("DEBUG", "RELOAD", "NOSAVE")
            if r != "OK":
                raise RespError(str(r))
            digest = c.cmd("DEBUG", "DIGEST")
            keys = int(c.cmd("DBSIZE"))
            return (digest.decode() if isinstance(digest, bytes) else digest), keys
        finally:
            c.close()

    def close(self):
        self.redis.stop()


def in_windows(t_us, windows):
    for w in windows:
        if w["from_us"] <= t_us <= w["to_us"]:
            return w
    return None


def list_json(env, name):
    p = rv(env, name, ["list", "--json"], timeout=300)
    if p.returncode != 0:
        FAILS.add("list", name, one_line(p))
        return None
    doc = json.loads(p.stdout)
    if isinstance(doc, list):
        doc = {"backups": doc, "pitr": {"windows": [], "gaps": [], "timelines": []}}
    for w in doc["pitr"]["windows"]:
        w["from_us"], w["to_us"] = parse_us(w["from"]), parse_us(w["to"])
    return doc


def select_checkpoints(cps, restorable, faults, limit):
    """All restorable checkpoints when there are at most `limit`; else at
    least 24 spread evenly over them, and around every fault the last one
    before it, the first one after it starts and the first two after it
    ends, and the final one."""
    if len(restorable) <= limit:
        return list(restorable), "all"
    ids = {cp["i"] for cp in restorable}
    chosen = set()
    k = 24
    for j in range(k):
        chosen.add(restorable[round(j * (len(restorable) - 1) / (k - 1))]["i"])
    ts = [cp["t_ms"] for cp in cps]
    for f in faults:
        i = bisect.bisect_left(ts, f["start_ms"])
        j = bisect.bisect_left(ts, f["end_ms"])
        for x in (i - 1, i, j, j + 1):
            if 0 <= x < len(cps) and cps[x]["i"] in ids:
                chosen.add(cps[x]["i"])
    final = [cp["i"] for cp in restorable if cp.get("final")]
    chosen.update(final)
    return [cp for cp in restorable if cp["i"] in chosen], "sample"


def check_vault(env, name, cps, faults, result, tmp):
    """verify --all, restore every backup, restore checkpoints, RPO."""
    r = result
    t = time.monotonic()
    p = rv(env, name, ["verify", "--all", "--key-file", str(env.key)], timeout=3600)
    r["verify_all"] = {"ok": p.returncode == 0, "seconds": round(time.monotonic() - t, 1),
                       "last_line": one_line(p)}
    if p.returncode != 0:
        FAILS.add("verify-all", name, one_line(p))
    doc = list_json(env, name)
    if doc is None:
        return
    r["list"] = doc
    backups = doc["backups"]
    windows = doc["pitr"]["windows"]
    r["backups"] = len(backups)
    r["timelines"] = [{k: tl.get(k) for k in ("id", "reason", "segments", "unreachable_segments",
                                              "start_offset", "end_offset")}
                      for tl in doc["pitr"]["timelines"]]
    for tl in doc["pitr"]["timelines"]:
        if tl.get("unreachable_segments"):
            FAILS.add("archive-hole", name, f"timeline {tl['id']}: {tl['unreachable_segments']} "
                                            "segment(s) past a hole")
    checker = Checker(tmp, f"checker-{name}")
    try:
        # Every listed backup restores and loads.
        restored = 0
        r["backup_checks"] = []
        for m in backups:
            out = Path(tmp) / f"{name}-backup.rdb"
            t = time.monotonic()
            p = rv(env, name, ["restore", m["id"], "--key-file", str(env.key), "--out", str(out),
                               "--force"])
            row = {"id": m["id"], "ok": False, "seconds": None}
            if p.returncode != 0:
                FAILS.add("restore-backup", name, f"{m['id']}: {one_line(p)}")
            else:
                try:
                    _, keys = checker.load(out)
                    row.update(ok=True, keys=keys)
                    restored += 1
                except (RespError, OSError, ConnectionError) as e:
                    FAILS.add("load-backup", name, f"{m['id']}: the restored RDB does not load: {e}")
            row["seconds"] = round(time.monotonic() - t, 2)
            r["backup_checks"].append(row)
            out.unlink(missing_ok=True)
        r["backups_restored"] = restored
        # Checkpoints.
        # The final checkpoint follows the last write: nothing arrives after
        # it, so it lies past the last window's end; it is `--at latest`.
        restorable = [cp for cp in cps if in_windows(cp["t_ms"] * 1000, windows)
                      or (cp.get("final") and cp["confirmed"].get(name) and windows)]
        sel, how = select_checkpoints(cps, restorable, faults, env.args.check_all_up_to)
        st = {"total": len(cps), "restorable": len(restorable), "selection": how,
              "checked": 0, "matched": 0, "confirmed_checked": 0, "confirmed_mismatched": 0,
              "unconfirmed_checked": 0, "unconfirmed_mismatched": 0, "restore_failed": 0,
              "confirmed_not_restorable": [], "mismatches": [], "seconds": []}
        span_from = windows[0]["from_us"] if windows else None
        for cp in cps:
            if cp["confirmed"].get(name) and cp not in restorable \
                    and span_from is not None and cp["t_ms"] * 1000 >= span_from:
                st["confirmed_not_restorable"].append(cp["i"])
        for cp in sel:
            out = Path(tmp) / f"{name}-at.rdb"
            t = time.monotonic()
            at = "latest" if cp.get("final") else iso_ms(cp["t_ms"])
            p = rv(env, name, ["restore", "--at", at, "--key-file", str(env.key),
                               "--out", str(out), "--force"])
            st["seconds"].append(round(time.monotonic() - t, 2))
            st["checked"] += 1
            confirmed = cp["confirmed"].get(name, False)
            st["confirmed_checked" if confirmed else "unconfirmed_checked"] += 1
            if p.returncode != 0:
                st["restore_failed"] += 1
                FAILS.add("restore-at", name, f"checkpoint {cp['i']} at {iso_ms(cp['t_ms'])} is in a "
                                              f"window but does not restore: {one_line(p)}")
                continue
            try:
                digest, keys = checker.load(out)
            except (RespError, OSError, ConnectionError) as e:
                FAILS.add("restore-at-load", name, f"checkpoint {cp['i']}: {e}")
                continue
            finally:
                out.unlink(missing_ok=True)
            if digest == cp["digest"]:
                st["matched"] += 1
                continue
            row = {"i": cp["i"], "at": iso_ms(cp["t_ms"]), "confirmed": confirmed,
                   "expected": cp["digest"], "got": digest}
            st["mismatches"].append(row)
            if confirmed:
                st["confirmed_mismatched"] += 1
                FAILS.add("restore-at-digest", name,
                          f"checkpoint {cp['i']} at {iso_ms(cp['t_ms'])} (acknowledged by the archiver "
                          f"at offset {cp['acks'].get(name)} >= {cp['offset']}) restores to digest "
                          f"{digest}, the primary had {cp['digest']}")
            else:
                st["unconfirmed_mismatched"] += 1
        secs = st.pop("seconds")
        st["restore_at_seconds"] = {"mean": round(sum(secs) / len(secs), 2) if secs else None,
                                    "max": max(secs) if secs else None}
        r["checkpoints"] = st
        # RPO: the largest span with no restorable point, between windows.
        gaps = [(w1["to_us"], w2["from_us"]) for w1, w2 in zip(windows, windows[1:])
                if w2["from_us"] > w1["to_us"]]
        r["gaps"] = [{"from": iso_ms(a // 1000), "to": iso_ms(b // 1000),
                      "seconds": round((b - a) / 1e6, 3),
                      # The faults that began shortly before the archive
                      # stopped, or during the gap: its likely causes.
                      "faults": [f"{f['kind']}({f['target']})@{f['at']}s" for f in faults
                                 if a - 15e6 <= f["start_ms"] * 1000 <= b]}
                     for a, b in gaps]
        r["rpo_max_s"] = max((g["seconds"] for g in r["gaps"]), default=0.0)
        r["windows"] = [{"timeline": w["timeline"], "from": w["from"], "to": w["to"]} for w in windows]
    finally:
        checker.close()


def walk_objects(root):
    out = []
    for dirpath, _, files in os.walk(root):
        for f in files:
            out.append(os.path.relpath(os.path.join(dirpath, f), root))
    return sorted(out)


def check_prune(env, name, before, cps, faults, result, tmp):
    """prune with the daemon's rules and no grace; then no orphan object, no
    staged or open upload, verify --all again, windows in the kept span
    unchanged, and a few checkpoints in it still restore."""
    r = result
    # The daemon's rules, stretched by the time since the daemons stopped,
    # so they keep the same span before the run's end as they would have.
    # prune reads its clock after it starts and lists the vault, which this
    # cannot see: 10 s more keeps its cutoff before the span checked below.
    since_end = int(time.time() - env.t_end) + 10
    keep = f"{int(parse_duration(env.keep_pitr[name])) + since_end}s"
    rules = ["--keep-pitr", keep, "--keep-within", keep]
    (env.work / f"list-before-prune-{name}.json").write_text(json.dumps(before, indent=1))
    p = rv(env, name, ["prune", *rules, "--incomplete-grace", "0s", "-v"], timeout=1800)
    (env.work / f"prune-{name}.txt").write_text(f"{' '.join(rules)}\n{p.stdout}\n{p.stderr}")
    r["prune"] = {"ok": p.returncode == 0, "rules": " ".join(rules),
                  "summary": [l for l in p.stdout.splitlines()
                              if l.startswith(("pruned", "stream archive"))],
                  "error": None if p.returncode == 0 else one_line(p)}
    if p.returncode != 0:
        FAILS.add("prune", name, one_line(p))
    doc = list_json(env, name)
    if doc is not None:
        (env.work / f"list-after-prune-{name}.json").write_text(json.dumps(doc, indent=1))
    if doc is None:
        return
    ids = {m["id"] for m in doc["backups"]}
    tls = {tl["id"]: tl for tl in doc["pitr"]["timelines"]}
    if name == "local":
        root = env.fs.mnt / "vault"
    else:
        root = env.s3.root / env.bucket / "vault"
    orphans, segs = [], {}
    for key in walk_objects(root):
        parts = key.split("/")
        base = parts[-1]
        if base.startswith(".") and ".partial-" in base:
            orphans.append(f"{key} (a staged upload left behind)")
        elif parts[0] == "backups" and len(parts) == 3:
            if parts[1] not in ids:
                orphans.append(f"{key} (no listed backup {parts[1]})")
            elif parts[2] not in ("data", "manifest.json") and not parts[2].startswith("shard-"):
                orphans.append(f"{key} (not a backup object)")
        elif parts[0] == "pitr" and len(parts) >= 3:
            if parts[1] not in tls:
                orphans.append(f"{key} (no listed timeline {parts[1]})")
            elif parts[2] == "seg":
                segs[parts[1]] = segs.get(parts[1], 0) + 1
            elif parts[2] not in ("timeline.json", "replid"):
                orphans.append(f"{key} (not a timeline object)")
        else:
            orphans.append(f"{key} (outside backups/ and pitr/)")
    for tid, tl in tls.items():
        if segs.get(tid, 0) != tl["segments"] + tl.get("unreachable_segments", 0):
            orphans.append(f"pitr/{tid}/seg: {segs.get(tid, 0)} object(s), list shows {tl['segments']}")
        if tl.get("unreachable_segments"):
            orphans.append(f"pitr/{tid}: {tl['unreachable_segments']} segment(s) past a hole")
    r["orphans"] = orphans
    for o in orphans:
        FAILS.add("orphan", name, o)
    # Open multipart uploads: s3s-fs keeps one as .upload-<uuid>.json at its
    # root (it has no ListMultipartUploads, so prune cannot see them there).
    if name == "s3":
        opened = []
        for f in env.s3.root.iterdir():
            if f.name.startswith(".upload-") and f.name.endswith(".json") \
                    and ".metadata" not in f.name:
                mtime = f.stat().st_mtime
                killed = [l for l in env.daemons["s3"].lives
                          if l["how"] == "kill9" and l["start"] <= mtime <= (l["end"] or 0)]
                opened.append({"upload": f.name, "created": iso_ms(int(mtime * 1000)),
                               "by_a_killed_process": bool(killed)})
        r["open_uploads"] = opened
        for u in opened:
            if u["by_a_killed_process"]:
                log(f"note [s3]: open upload {u['upload']} was started by a replvault later killed "
                    "with -9; s3s-fs has no ListMultipartUploads, so prune cannot find it")
            else:
                FAILS.add("open-upload", name, f"{u['upload']} created {u['created']} by a process "
                                               "that was not killed -9")
    # verify --all after prune, and the kept span is intact.
    p = rv(env, name, ["verify", "--all", "--key-file", str(env.key)], timeout=3600)
    r["verify_after_prune"] = p.returncode == 0
    if p.returncode != 0:
        FAILS.add("verify-after-prune", name, one_line(p))
    keep_s = parse_duration(env.keep_pitr[name])
    cut_us = int((env.t_end - keep_s) * 1e6)
    lost = []
    for w in before["pitr"]["windows"]:
        a, b = max(w["from_us"], cut_us), w["to_us"]
        if a > b:
            continue
        covered = any(x["from_us"] <= a and b <= x["to_us"] for x in doc["pitr"]["windows"])
        if not covered:
            lost.append(f"{iso_ms(a // 1000)} to {iso_ms(b // 1000)}")
    r["kept_span_lost"] = lost
    for x in lost:
        FAILS.add("prune-kept-span", name, f"{x} was restorable and inside --keep-pitr, "
                                           "and is not after prune")
    kept = [cp for cp in cps if cp["confirmed"].get(name) and cp["t_ms"] * 1000 >= cut_us
            and in_windows(cp["t_ms"] * 1000, doc["pitr"]["windows"])]
    again = [kept[i] for i in sorted({0, len(kept) // 2, len(kept) - 1})] if kept else []
    checker = Checker(tmp, f"checker2-{name}")
    ok = 0
    try:
        for cp in again:
            out = Path(tmp) / f"{name}-again.rdb"
            p = rv(env, name, ["restore", "--at", iso_ms(cp["t_ms"]), "--key-file", str(env.key),
                               "--out", str(out), "--force"])
            if p.returncode != 0:
                FAILS.add("restore-after-prune", name, f"checkpoint {cp['i']}: {one_line(p)}")
                continue
            digest, _ = checker.load(out)
            out.unlink(missing_ok=True)
            if digest != cp["digest"]:
                FAILS.add("restore-after-prune", name, f"checkpoint {cp['i']}: digest {digest}, "
                                                       f"expected {cp['digest']}")
            else:
                ok += 1
    finally:
        checker.close()
    r["after_prune_checked"] = {"checked": len(again), "matched": ok}
    r["after_prune"] = {"backups": len(doc["backups"]), "timelines": len(tls),
                        "segments": sum(t["segments"] for t in tls.values()),
                        "windows": [{"from": w["from"], "to": w["to"]} for w in doc["pitr"]["windows"]]}


def fit_slope(samples, idx):
    """Least-squares slope per hour of samples[.][idx] over time, with one
    intercept per process (a restart starts a new line), leaving out each
    process's first WARMUP_S seconds. Returns (slope/h, hours fitted, n)."""
    groups = {}
    for s in samples:
        groups.setdefault(s[1], []).append(s)
    sxx = sxy = 0.0
    n, hours = 0, 0.0
    for pts in groups.values():
        t0 = pts[0][0]
        pts = [p for p in pts if p[0] - t0 >= WARMUP_S]
        if len(pts) < 3:
            continue
        mt = sum(p[0] for p in pts) / len(pts)
        mv = sum(p[idx] for p in pts) / len(pts)
        for p in pts:
            sxx += (p[0] - mt) ** 2
            sxy += (p[0] - mt) * (p[idx] - mv)
        n += len(pts)
        hours += (pts[-1][0] - pts[0][0]) / 3600
    return ((sxy / sxx) * 3600 if sxx else 0.0), hours, n


def check_resources(env, name, result):
    d = env.daemons[name]
    s = d.samples
    with open(env.work / f"samples-{name}.tsv", "w") as f:
        f.write("unix_time\tpid\trss_kib\tfds\n")
        for x in s:
            f.write("\t".join(str(v) for v in x) + "\n")
    rss_slope, hours, n = fit_slope(s, 2)
    fd_slope, _, _ = fit_slope(s, 3)
    peak_rss = max((x[2] for x in s), default=0) / 1024
    peak_fd = max((x[3] for x in s), default=0)
    enforced = hours >= SLOPE_MIN_HOURS
    longest = max(((l["end"] or time.time()) - l["start"] for l in d.lives), default=0)
    r = {"samples": len(s), "fitted_samples": n, "fitted_hours": round(hours, 3),
         "rss_slope_mib_per_h": round(rss_slope / 1024, 3), "fd_slope_per_h": round(fd_slope, 3),
         "rss_peak_mib": round(peak_rss, 1), "fd_peak": peak_fd,
         "rss_first_last_mib": [round(s[0][2] / 1024, 1), round(s[-1][2] / 1024, 1)] if s else None,
         "processes": len(d.lives), "longest_life_min": round(longest / 60, 1),
         "slope_enforced": enforced}
    result["resources"] = r
    if peak_rss > RSS_PEAK_MIB:
        FAILS.add("rss-peak", name, f"{peak_rss:.0f} MiB > {RSS_PEAK_MIB:.0f} MiB")
    if peak_fd > FD_PEAK:
        FAILS.add("fd-peak", name, f"{peak_fd} open files > {FD_PEAK}")
    if enforced and r["rss_slope_mib_per_h"] > RSS_SLOPE_MIB_H:
        FAILS.add("rss-slope", name, f"RSS grows {r['rss_slope_mib_per_h']} MiB/h "
                                     f"(bound {RSS_SLOPE_MIB_H}) over {hours:.2f} h of samples")
    if enforced and fd_slope > FD_SLOPE_H:
        FAILS.add("fd-slope", name, f"open files grow {fd_slope:.1f}/h (bound {FD_SLOPE_H})")


# --- the report --------------------------------------------------------------------------

def markdown(rep):
    out = []
    ok = rep["result"] == "pass"
    out.append(f"## Soak under faults: {'PASS' if ok else 'FAIL'}")
    out.append("")
    out.append(f"seed {rep['seed']}, {rep['minutes']} min of load ({rep['hours']:.2f} h in all), "
               f"replvault {rep['version']}, redis-server {rep['redis_version']}; "
               f"replay: `{rep['command']}`")
    out.append("")
    w = rep["writer"]
    out.append(f"Writer: {w['ops']:,} commands ({w['rate']:.0f}/s), {w['reconnects']} reconnection(s), "
               f"{w['checkpoints']} checkpoints (confirmed by local {w['confirmed']['local']}, "
               f"s3 {w['confirmed']['s3']}); final checkpoint archived by both: "
               f"{w['final_confirmed']} after {w['catch_up_s']} s.")
    out.append("")
    out.append("| fault | count |")
    out.append("|---|---|")
    for k, n in rep["faults"]["by_kind"].items():
        out.append(f"| {k} | {n} |")
    if rep["faults"]["skipped"]:
        out.append(f"| skipped | {rep['faults']['skipped']} |")
    out.append("")
    out.append("| check | local | s3 |")
    out.append("|---|---|---|")

    def cell(v, f):
        try:
            return f(rep["vaults"][v])
        except (KeyError, TypeError, IndexError, ZeroDivisionError):
            return "-"

    rows = [
        ("verify --all", lambda r: "ok" if r["verify_all"]["ok"] else "FAILED"),
        ("backups restored and loaded", lambda r: f"{r['backups_restored']}/{r['backups']}"),
        ("timelines (gaps)", lambda r: f"{len(r['timelines'])} ({len(r['gaps'])})"),
        ("checkpoints restorable / total",
         lambda r: f"{r['checkpoints']['restorable']}/{r['checkpoints']['total']}"),
        ("restore --at checked (selection)",
         lambda r: f"{r['checkpoints']['checked']} ({r['checkpoints']['selection']})"),
        ("confirmed: matched / checked",
         lambda r: f"{r['checkpoints']['confirmed_checked'] - r['checkpoints']['confirmed_mismatched']}"
                   f"/{r['checkpoints']['confirmed_checked']}"),
        ("unconfirmed: matched / checked",
         lambda r: f"{r['checkpoints']['unconfirmed_checked'] - r['checkpoints']['unconfirmed_mismatched']}"
                   f"/{r['checkpoints']['unconfirmed_checked']}"),
        ("confirmed but not restorable", lambda r: str(len(r['checkpoints']['confirmed_not_restorable']))),
        ("restore --at mean / max s",
         lambda r: f"{r['checkpoints']['restore_at_seconds']['mean']} / "
                   f"{r['checkpoints']['restore_at_seconds']['max']}"),
        ("largest unrestorable span (RPO)", lambda r: f"{r['rpo_max_s']:.1f} s"),
        ("prune", lambda r: "ok" if r["prune"]["ok"] else f"FAILED: {r['prune']['error']}"),
        ("orphans after prune", lambda r: str(len(r["orphans"]))),
        ("open uploads after prune", lambda r: str(len(r.get("open_uploads", [])))),
        ("kept span intact after prune", lambda r: "yes" if not r["kept_span_lost"] else "NO"),
        ("RSS slope (MiB/h), peak", lambda r: f"{r['resources']['rss_slope_mib_per_h']:+.2f}"
                                             f"{'' if r['resources']['slope_enforced'] else ' (not enforced)'}"
                                             f", {r['resources']['rss_peak_mib']} MiB"),
        ("fd slope (/h), peak", lambda r: f"{r['resources']['fd_slope_per_h']:+.2f}, "
                                          f"{r['resources']['fd_peak']}"),
        ("processes (longest life)", lambda r: f"{r['resources']['processes']} "
                                               f"({r['resources']['longest_life_min']} min)"),
    ]
    for label, f in rows:
        out.append(f"| {label} | {cell('local', f)} | {cell('s3', f)} |")
    out.append("")
    if rep["notes"]:
        for n in rep["notes"]:
            out.append(f"- {n}")
        out.append("")
    if rep["failures"]:
        out.append(f"{len(rep['failures'])} failed check(s):")
        out.append("")
        for f in rep["failures"][:40]:
            out.append(f"- {f['check']} [{f['vault']}]: {f['detail'][:400]}")
    else:
        out.append("Every check passed.")
    return "\n".join(out)


# --- main --------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--minutes", type=float, default=3.0, help="minutes of load and faults")
    ap.add_argument("--seed", type=int, default=None, help="replays a run (default: random)")
    default_bin = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release/replvault"
    ap.add_argument("--binary", default=str(default_bin))
    ap.add_argument("--rate", type=int, default=2000, help="write commands per second")
    ap.add_argument("--checkpoint-every", type=float, default=5.0, help="seconds")
    ap.add_argument("--confirm-timeout", type=float, default=2.0,
                    help="how long a checkpoint waits for the archivers' acknowledgements")
    ap.add_argument("--every", default=None, help="replvault run --every (default 1m, or 5m "
                                                   "for runs over 20 minutes)")
    ap.add_argument("--backlog", default="1mb", help="the primary's --repl-backlog-size")
    ap.add_argument("--dataset-mib", type=int, default=10, help="random blobs prefilled in db 3")
    ap.add_argument("--keys-per-type", type=int, default=500)
    ap.add_argument("--fs-mib", type=int, default=512, help="size of the local vault's filesystem")
    ap.add_argument("--no-loop", action="store_true", help="local vault on a plain directory")
    ap.add_argument("--check-all-up-to", type=int, default=80,
                    help="restore every restorable checkpoint when there are at most this many "
                         "per vault; else a sample")
    ap.add_argument("--sample-every", type=int, default=5, help="seconds between RSS/fd samples")
    ap.add_argument("--catch-up-timeout", type=float, default=300)
    ap.add_argument("--workdir", default=None, help="default: a temporary directory")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--report", default=None, help="also write the JSON report here")
    args = ap.parse_args()
    if args.seed is None:
        args.seed = int.from_bytes(os.urandom(4), "big")
    long_run = args.minutes > 20
    args.every = args.every or ("5m" if long_run else "1m")
    cmd = f"python3 bench/soak/soak.py --minutes {args.minutes:g} --seed {args.seed}"
    log(f"soak: seed {args.seed} (replay: {cmd})")
    for tool in ("redis-server", "redis-cli", "s3s-fs"):
        if not shutil.which(tool):
            sys.exit(f"soak: {tool} not found on PATH (scripts/test.sh installs it)")
    if not os.access(args.binary, os.X_OK):
        sys.exit(f"soak: {args.binary} is not built (cargo build --release)")
    work = Path(args.workdir or tempfile.mkdtemp(prefix="replvault-soak-"))
    work.mkdir(parents=True, exist_ok=True)
    global _log_file
    _log_file = open(work / "soak.log", "a")
    log(f"soak: work directory {work}")
    rng = random.Random(args.seed)
    env = Env(args, work)
    notes = []
    interrupted = []

    def on_signal(sig, _):
        interrupted.append(sig)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    rep = {}
    try:
        rep = run(env, args, rng, long_run, cmd, notes)
    except KeyboardInterrupt:
        FAILS.add("interrupted", "-", f"signal {interrupted or 'SIGINT'}")
    except Exception as e:
        FAILS.add("harness", "-", f"{type(e).__name__}: {e}")
        log(traceback.format_exc())
    finally:
        env.close()
    rep.setdefault("seed", args.seed)
    rep["failures"] = FAILS.items
    rep["result"] = "pass" if not FAILS.items else "fail"
    rep["work"] = str(work)
    path = work / "report.json"
    path.write_text(json.dumps(rep, indent=1, default=str))
    if args.report:
        Path(args.report).write_text(json.dumps(rep, indent=1, default=str))
    try:
        print()
        print(markdown(rep))
    except Exception as e:  # a partial report (the run failed early)
        print(f"(no summary: {e}); failures: {json.dumps(FAILS.items, indent=1)}")
    print(f"\nJSON report: {args.report or path}")
    if rep["result"] == "pass" and not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    else:
        print(f"work directory kept: {work}")
    sys.exit(0 if rep["result"] == "pass" else 1)


def run(env, args, rng, long_run, cmd, notes):
    work = env.work
    t_begin = time.time()
    ver = subprocess.run([args.binary, "--version"], capture_output=True, text=True).stdout.strip()
    rver = subprocess.run(["redis-server", "--version"], capture_output=True, text=True).stdout.split()
    rver = next((x[2:] for x in rver if x.startswith("v=")), "?")
    # The primary, its data, a real replica.
    env.primary = Redis("primary", work, ["--repl-backlog-size", args.backlog,
                                          "--repl-diskless-sync", "yes",
                                          "--repl-diskless-sync-delay", "0"])
    env.primary.start()
    prefill(env.primary, rng, args.dataset_mib)
    env.replica = Redis("replica", work, ["--replicaof", "127.0.0.1", str(env.primary.port)])
    env.replica.start()
    # The stores and the proxies.
    env.fs = SmallFs(work, args.fs_mib, not args.no_loop)
    kinds = list(KINDS)
    if not env.fs.mounted:
        kinds.remove("disk_full")
        notes.append(f"disk-full fault skipped: {env.fs.why_not}; the local vault is a plain directory")
        log(f"soak: {notes[-1]}")
    env.s3 = S3Server(work, env.bucket)
    env.s3.start()
    env.s3proxy = HttpFaultProxy(env.s3.port, rng.randrange(1 << 30))
    for v in VAULTS:
        env.redis_proxy[v] = TcpFaultProxy(env.primary.port, SOURCE_IP[v], name=f"redis-{v}")
    env.key = work / "backup.key"
    p = subprocess.run([args.binary, "keygen", "--out", str(env.key)], capture_output=True, text=True)
    if p.returncode != 0:
        raise RuntimeError(f"keygen: {p.stderr}")
    # The archivers. local prunes hard (a small disk; pruning under faults);
    # s3 keeps the whole run restorable, so checkpoints cover all of it.
    total_min = args.minutes
    if long_run:
        env.keep_pitr = {"local": "20m", "s3": f"{int(total_min + 60)}m"}
    else:
        env.keep_pitr = {"local": "90s", "s3": f"{int(total_min + 10)}m"}
    env.retention = {v: ["--keep-pitr", env.keep_pitr[v], "--keep-within", env.keep_pitr[v]]
                     for v in VAULTS}
    grace = "10m" if long_run else "2m"
    env.metrics_port = {}
    for v in VAULTS:
        vault, venv = env.vault(v)
        if v == "s3":
            venv = s3_env(env.s3proxy.port)
        mport = free_port()
        env.metrics_port[v] = mport
        argv = ["run", "--pitr", "--redis", f"redis://127.0.0.1:{env.redis_proxy[v].port}",
                "--vault", vault, "--key-file", str(env.key), "--every", args.every,
                "--pitr-interval", "500ms", *env.retention[v], "--incomplete-grace", grace,
                "--listen", f"127.0.0.1:{mport}"]
        if v == "s3":
            argv += ["--s3-part-size", "5MiB"]
        env.daemons[v] = Daemon(v, args.binary, argv, venv, work / f"replvault-{v}.log")
        env.daemons[v].start()
    if not wait_online(env, 120):
        raise RuntimeError("the archivers did not come online: " +
                           " | ".join(tail(d.logpath, 5) for d in env.daemons.values()))
    log("soak: both archivers online; load and faults start")
    env.t_start = time.time()
    duration = args.minutes * 60
    bg = threading.Thread(target=env.background, daemon=True)
    bg.start()
    writer = Writer(env.primary.port, rng.randrange(1 << 30), args.rate, args.checkpoint_every,
                    SOURCE_IP, args.confirm_timeout, args.keys_per_type, log)
    writer.start()
    warm = 20 if not long_run else 60
    calm = 20 if not long_run else 60
    plan = plan_faults(rng, warm, max(warm, duration - calm), long_run, kinds)
    chaos = Chaos(env, plan)
    chaos.start()
    while time.time() - env.t_start < duration:
        time.sleep(1)
        if writer.thread.is_alive() is False:
            raise RuntimeError("the writer stopped")
    chaos.stop.set()
    chaos.thread.join()
    env.heal()
    for d in env.daemons.values():
        d.check_alive()
    log(f"soak: load done ({writer.ops:,} commands, {len(writer.checkpoints)} checkpoints); "
        "faults stopped, waiting for the archives to catch up")
    t = time.monotonic()
    final = writer.finish(args.catch_up_timeout)
    catch_up = round(time.monotonic() - t, 1)
    final_ok = all(final["confirmed"].values())
    if not final_ok:
        FAILS.add("catch-up", ",".join(v for v, ok in final["confirmed"].items() if not ok),
                  f"the archive did not reach the primary's offset {final['offset']} within "
                  f"{args.catch_up_timeout}s (acks {final['acks']})")
    metrics = {v: env.daemons[v].metrics(env.metrics_port[v]) for v in VAULTS}
    # The real replica agrees with its primary.
    c = env.primary.conn()
    deadline = time.monotonic() + 60
    same = False
    while time.monotonic() < deadline:
        rc = env.replica.conn()
        same = rc.cmd("DEBUG", "DIGEST") == c.cmd("DEBUG", "DIGEST")
        rc.close()
        if same:
            break
        time.sleep(0.5)
    c.close()
    if not same:
        notes.append("the real replica's digest differs from the primary's after 60 s "
                     "(the test bed, not replvault)")
    env.stop_bg.set()
    bg.join()
    for v in VAULTS:
        env.daemons[v].sample()
        env.daemons[v].term()
    env.t_end = time.time()
    load_hours = (env.t_end - env.t_start) / 3600
    log("soak: daemons stopped; checking the vaults")
    cps = writer.checkpoints
    faults = chaos.done
    results = {v: {} for v in VAULTS}
    tmp = work / "check"
    tmp.mkdir(exist_ok=True)

    def check(v):
        try:
            check_vault(env, v, cps, faults, results[v], tmp)
            if "list" in results[v]:
                before = results[v].pop("list")
                check_prune(env, v, before, cps, faults, results[v], tmp)
            check_resources(env, v, results[v])
        except Exception as e:
            FAILS.add("harness", v, f"{type(e).__name__}: {e}")
            log(traceback.format_exc())

    threads = [threading.Thread(target=check, args=(v,)) for v in VAULTS]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    by_kind = {}
    for f in faults:
        k = f["kind"]
        if k in ("kill9", "sigterm", "net_stall", "net_cut"):
            k = f"{k} ({f['target']})"
        by_kind[k] = by_kind.get(k, 0) + 1
    by_kind = dict(sorted(by_kind.items()))
    missing = [k for k in kinds if not any(f["kind"] == k for f in faults)]
    if missing:
        notes.append(f"fault kinds not drawn in this run: {', '.join(missing)}")
    for v in VAULTS:
        lives = env.daemons[v].lives
        notes.append(f"{v}: {len(lives)} replvault process(es); gaps: " +
                     (", ".join(f"{g['seconds']:.1f} s near {' '.join(g['faults'][:3]) or 'no fault'}"
                                for g in results[v].get("gaps", [])) or "none"))
    rep = {
        "seed": args.seed, "minutes": args.minutes, "command": cmd, "version": ver,
        "redis_version": rver, "started": iso_ms(int(t_begin * 1000)),
        "ended": iso_ms(int(time.time() * 1000)), "hours": (time.time() - t_begin) / 3600,
        "load_hours": load_hours,
        "settings": {"rate": args.rate, "checkpoint_every_s": args.checkpoint_every,
                     "every": args.every, "pitr_interval": "500ms", "backlog": args.backlog,
                     "dataset_mib": args.dataset_mib, "keep_pitr": env.keep_pitr,
                     "incomplete_grace": grace, "fs": "loop ext4 %d MiB" % args.fs_mib
                     if env.fs.mounted else f"plain directory ({env.fs.why_not})",
                     "bounds": {"rss_slope_mib_per_h": RSS_SLOPE_MIB_H, "fd_slope_per_h": FD_SLOPE_H,
                                "rss_peak_mib": RSS_PEAK_MIB, "fd_peak": FD_PEAK,
                                "slope_enforced_from_hours": SLOPE_MIN_HOURS}},
        "faults": {"by_kind": by_kind, "total": len(faults), "skipped": None if env.fs.mounted
                   else "disk_full", "done": faults},
        "writer": {"ops": writer.ops, "rate": writer.ops / max(1, duration),
                   "errors": writer.errors, "reconnects": writer.reconnects,
                   "checkpoints": len(cps),
                   "confirmed": {v: sum(1 for cp in cps if cp["confirmed"].get(v)) for v in VAULTS},
                   "final_confirmed": final_ok, "catch_up_s": catch_up},
        "metrics_at_end": {v: {k: x for k, x in m.items() if k.startswith("replvault_pitr")
                               or k.startswith("replvault_backups_total")
                               or k.startswith("replvault_failures_total")}
                           for v, m in metrics.items()},
        "lives": {v: env.daemons[v].lives for v in VAULTS},
        "vaults": results, "notes": notes, "checkpoints": cps,
    }
    return rep


if __name__ == "__main__":
    main()
