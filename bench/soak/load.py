"""The soak harness's Redis client and writer: a steady, rate-limited,
mixed write load (every type, MULTI/EXEC, TTLs, four databases) with
checkpoints (time, DEBUG DIGEST) taken between its own writes.

The checkpoint rule (see README.md next to this file):

  1. The writer stops sending and waits for the replies to everything it
     sent: those writes are acknowledged. Short-TTL keys (the only keys
     that expire during a run) are no longer created in the last
     SHORT_TTL_QUIET seconds before a checkpoint, so by now every one of
     them has expired; an EXISTS on each makes the primary delete it (and
     send the DEL to its replicas) if its expiry cycle has not yet.
  2. DEBUG DIGEST and master_repl_offset O are read on the same
     connection: nothing else writes, so the digest is the state after the
     last acknowledged write, and O the stream offset that ends it.
  3. The writer polls INFO replication until each archiver (told apart by
     the loopback address its proxy connects from) has acknowledged O,
     for at most confirm_timeout. An archiver acknowledges only what is
     written to its vault (WAIT 1 semantics), so an archiver that did has
     every byte up to O in its vault, received before now.
  4. t = now (ms); the writer sleeps 3 ms before its next write, so every
     later command arrives after t.

  For a vault that confirmed, `restore --at t` must give the digest
  exactly. A vault whose archiver had not confirmed (its link or store was
  down) may receive the last writes after t: `restore --at t` then
  legitimately gives an earlier state, and the check is reported, not
  enforced. Long TTLs (days) are in the digest as absolute times, which
  the archive keeps."""

import random
import socket
import threading
import time


class RespError(Exception):
    pass


class Resp:
    """A small blocking RESP2 client."""

    def __init__(self, port, timeout=10.0):
        self.port = port
        self.s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0

    def close(self):
        try:
            self.s.close()
        except OSError:
            pass

    @staticmethod
    def encode(args):
        out = [b"*%d\r\n" % len(args)]
        for a in args:
            if not isinstance(a, bytes):
                a = str(a).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(a), a))
        return b"".join(out)

    def _fill(self):
        data = self.s.recv(1 << 16)
        if not data:
            raise ConnectionError("connection closed by the server")
        if self.pos > 1 << 16:
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    def _line(self):
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i >= 0:
                line = bytes(self.buf[self.pos:i])
                self.pos = i + 2
                return line
            self._fill()

    def _read(self):
        line = self._line()
        t, rest = line[:1], line[1:]
        if t == b"+":
            return rest.decode()
        if t == b"-":
            return RespError(rest.decode())
        if t == b":":
            return int(rest)
        if t == b"$":
            n = int(rest)
            if n < 0:
                return None
            while len(self.buf) - self.pos < n + 2:
                self._fill()
            v = bytes(self.buf[self.pos:self.pos + n])
            self.pos += n + 2
            return v
        if t == b"*":
            n = int(rest)
            if n < 0:
                return None
            return [self._read() for _ in range(n)]
        raise ConnectionError(f"bad RESP line {line[:40]!r}")

    def cmd(self, *args):
        self.s.sendall(self.encode(args))
        r = self._read()
        if isinstance(r, RespError):
            raise r
        return r

    def pipeline(self, cmds):
        self.s.sendall(b"".join(self.encode(c) for c in cmds))
        return [self._read() for _ in cmds]


def info(conn, section):
    text = conn.cmd("INFO", section)
    if isinstance(text, bytes):
        text = text.decode()
    out = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


def replica_acks(fields):
    """{ip: acknowledged offset} of the online replicas in INFO replication."""
    acks = {}
    for k, v in fields.items():
        if k.startswith("slave") and k[5:].isdigit():
            kv = dict(x.split("=", 1) for x in v.split(",") if "=" in x)
            if kv.get("state") == "online":
                ip = kv.get("ip", "")
                acks[ip] = max(acks.get(ip, -1), int(kv.get("offset", -1)))
    return acks


# Short-TTL keys live at most this long; none is created this close to a
# checkpoint, so all are gone by then.
SHORT_TTL_MAX_MS = 1500
SHORT_TTL_QUIET = 2.0
LONG_TTL = (3 * 86400, 9 * 86400)


class Writer:
    """The load and the checkpoints, on one connection to the primary."""

    def __init__(self, port, seed, rate, checkpoint_every, archivers, confirm_timeout,
                 keys_per_type, log):
        self.port = port
        self.rng = random.Random(seed)
        self.rate = rate
        self.checkpoint_every = checkpoint_every
        # {vault name: the loopback ip its proxy connects from}
        self.archivers = archivers
        self.confirm_timeout = confirm_timeout
        self.n = keys_per_type
        self.log = log
        self.stop = threading.Event()
        self.paused = threading.Event()
        self.checkpoints = []
        self.ops = 0
        self.batches = 0
        self.errors = 0
        self.reconnects = 0
        self.short_keys = {}  # (db, key) -> expiry (monotonic)
        self.conn = None
        self.db = 0
        self.next_checkpoint = time.monotonic() + checkpoint_every
        self.final = None
        self.thread = threading.Thread(target=self._run, name="writer", daemon=True)

    def start(self):
        self.thread.start()

    # --- connection ---

    def _connect(self):
        while not self.stop.is_set():
            try:
                c = Resp(self.port, timeout=30)
                c.cmd("PING")
                self.conn = c
                self.db = 0
                return True
            except (OSError, RespError, ConnectionError):
                time.sleep(0.1)
        return False

    def _drop(self):
        if self.conn is not None:
            self.conn.close()
        self.conn = None
        self.reconnects += 1

    # --- the load ---

    def _key(self, kind):
        return f"{kind}:{self.rng.randrange(self.n)}"

    def _val(self, lo=4, hi=120):
        n = self.rng.randint(lo, hi)
        return self.rng.randbytes(n // 2).hex()[:n] if self.rng.random() < 0.3 else \
            ("v" * n + str(self.rng.random()))[:n]

    def _one(self, short_ok):
        r = self.rng.random()
        k = self.rng.randrange(24)
        if k == 0:
            return [("SET", self._key("s"), self._val())]
        if k == 1:
            return [("SET", self._key("s"), self._val(), "EX", self.rng.randint(*LONG_TTL))]
        if k == 2:
            return [("INCRBY", self._key("n"), self.rng.randint(-1000, 1000))]
        if k == 3:
            return [("APPEND", self._key("a"), self._val(1, 16))]
        if k == 4:
            key = self._key("a")
            return [("SET", key, "")] if r < 0.05 else [("SETRANGE", key, self.rng.randint(0, 64), "x")]
        if k == 5:
            key = self._key("h")
            args = []
            for _ in range(self.rng.randint(1, 6)):
                args += [f"f{self.rng.randrange(40)}", self._val(1, 40)]
            return [("HSET", key, *args)]
        if k == 6:
            return [("HDEL", self._key("h"), f"f{self.rng.randrange(40)}")]
        if k == 7:
            return [("HINCRBY", self._key("h"), f"c{self.rng.randrange(4)}", self.rng.randint(1, 9))]
        if k == 8:
            key = self._key("l")
            return [("RPUSH", key, *[self._val(1, 30) for _ in range(self.rng.randint(1, 5))]),
                    ("LTRIM", key, -60, -1)]
        if k == 9:
            return [("LPOP", self._key("l"))]
        if k == 10:
            return [("SADD", self._key("set"), *[str(self.rng.randrange(500))
                                                  for _ in range(self.rng.randint(1, 8))])]
        if k == 11:
            return [("SREM", self._key("set"), str(self.rng.randrange(500)))]
        if k == 12:
            key = self._key("z")
            args = []
            for _ in range(self.rng.randint(1, 5)):
                args += [str(round(self.rng.uniform(-1e3, 1e3), 3)), f"m{self.rng.randrange(200)}"]
            return [("ZADD", key, *args)]
        if k == 13:
            return [("ZINCRBY", self._key("z"), self.rng.randint(1, 5), f"m{self.rng.randrange(200)}")]
        if k == 14:
            return [("ZREMRANGEBYRANK", self._key("z"), 0, 0)] if r < 0.3 else \
                [("ZREM", self._key("z"), f"m{self.rng.randrange(200)}")]
        if k == 15:
            # Explicit ids: replicas get the same ids either way, and the
            # digest does not depend on the arrival clock.
            return [("XADD", self._key("x"), "MAXLEN", "~", 100, "*",
                     "f", self._val(1, 40), "g", str(self.rng.randrange(1000)))]
        if k == 16:
            return [("EXPIRE", self._key("s"), self.rng.randint(*LONG_TTL))]
        if k == 17:
            at = int(time.time() * 1000) + self.rng.randint(*LONG_TTL) * 1000
            return [("PEXPIREAT", self._key("h"), at)]
        if k == 18:
            return [("PERSIST", self._key("s"))]
        if k == 19:
            return [("DEL", self._key(self.rng.choice(["s", "h", "l", "set", "z", "n", "a"])))]
        if k == 20:
            # A transaction over several types.
            key = self.rng.randrange(self.n)
            return [("MULTI",), ("INCR", f"n:{key}"), ("HSET", f"h:{key}", "tx", self._val(1, 20)),
                    ("RPUSH", f"l:{key}", self._val(1, 20)), ("SET", f"s:{key}", self._val(), "KEEPTTL"),
                    ("EXEC",)]
        if k == 21 and short_ok:
            key = f"tmp:{self.rng.randrange(self.n)}"
            ttl = self.rng.randint(200, SHORT_TTL_MAX_MS)
            self.short_keys[(self.db, key)] = time.monotonic() + ttl / 1000
            return [("SET", key, self._val(1, 20), "PX", ttl)]
        if k == 22:
            src, dst = self._key("s"), self._key("s")
            return [("RENAME", src, dst)] if r < 0.2 else [("GETDEL", src)]
        # A blob rewritten now and then: the large values of db 3.
        if self.db == 3 and r < 0.02:
            return [("SETRANGE", f"blob:{self.rng.randrange(64)}", self.rng.randrange(60000),
                     self.rng.randbytes(64))]
        return [("SET", self._key("s"), self._val())]

    def _batch(self, size, short_ok):
        cmds = []
        if self.rng.random() < 0.1:
            self.db = self.rng.randrange(4)
            cmds.append(("SELECT", self.db))
        while len(cmds) < size:
            cmds += self._one(short_ok)
        return cmds

    def _send(self, cmds):
        replies = self.conn.pipeline(cmds)
        for r in replies:
            if isinstance(r, RespError) and "no such key" not in str(r).lower():
                self.errors += 1
                if self.errors <= 5:
                    self.log(f"writer: command error {r}")
        self.ops += len(cmds)
        self.batches += 1

    # --- checkpoints ---

    def _purge_short(self):
        if not self.short_keys:
            return
        by_db = {}
        for (db, key), exp in self.short_keys.items():
            by_db.setdefault(db, []).append(key)
        cmds = []
        for db, keys in by_db.items():
            cmds.append(("SELECT", db))
            cmds += [("EXISTS", k) for k in keys]
        cmds.append(("SELECT", self.db))
        self.conn.pipeline(cmds)
        self.short_keys.clear()

    def checkpoint(self, confirm_timeout=None, final=False):
        """Takes a checkpoint (see the module's doc); returns it."""
        confirm_timeout = self.confirm_timeout if confirm_timeout is None else confirm_timeout
        t_w = time.time()
        wait = max((exp for exp in self.short_keys.values()), default=0) - time.monotonic()
        if wait > 0:
            time.sleep(wait + 0.005)
        self._purge_short()
        digest = self.conn.cmd("DEBUG", "DIGEST")
        digest = digest.decode() if isinstance(digest, bytes) else digest
        offset = int(info(self.conn, "replication")["master_repl_offset"])
        deadline = time.monotonic() + confirm_timeout
        acks = {}
        while True:
            acks = replica_acks(info(self.conn, "replication"))
            done = {v: acks.get(ip, -1) >= offset for v, ip in self.archivers.items()}
            if all(done.values()) or time.monotonic() >= deadline:
                break
            time.sleep(0.01 if not final else 0.2)
        t = time.time()
        cp = {"i": len(self.checkpoints), "t_ms": int(t * 1000), "wrote_ms": int(t_w * 1000),
              "digest": digest, "offset": offset, "confirmed": done,
              "acks": {v: acks.get(ip, -1) for v, ip in self.archivers.items()},
              "final": final}
        self.checkpoints.append(cp)
        time.sleep(0.003)
        return cp

    # --- the loop ---

    def _run(self):
        batch = 20
        period = batch / self.rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            if self.conn is None and not self._connect():
                break
            if self.paused.is_set():
                time.sleep(0.05)
                next_at = time.monotonic()
                continue
            try:
                now = time.monotonic()
                if now >= self.next_checkpoint:
                    self.checkpoint()
                    self.next_checkpoint = time.monotonic() + self.checkpoint_every
                    next_at = time.monotonic()
                    continue
                short_ok = self.next_checkpoint - now > SHORT_TTL_QUIET
                self._send(self._batch(batch, short_ok))
            except (OSError, ConnectionError, RespError) as e:
                # The primary restarting, or a reply we could not read:
                # what those writes did is in the next checkpoint's digest.
                self.log(f"writer: {type(e).__name__}: {e}; reconnecting")
                self._drop()
                time.sleep(0.1)
                next_at = time.monotonic()
                # A checkpoint right after a reconnection would be fine, but
                # the short-TTL bookkeeping is for this connection's writes.
                continue
            next_at += period
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            elif delay < -1:
                next_at = time.monotonic()
        if self.conn is not None:
            self.conn.close()

    def finish(self, confirm_timeout):
        """Stops the load and takes the final checkpoint, waiting up to
        confirm_timeout for every archiver to have the last write."""
        self.stop.set()
        self.thread.join()
        while True:
            try:
                c = Resp(self.port, timeout=30)
                self.conn = c
                self.final = self.checkpoint(confirm_timeout=confirm_timeout, final=True)
                c.close()
                return self.final
            except (OSError, ConnectionError, RespError) as e:
                self.log(f"writer: final checkpoint: {e}; retrying")
                time.sleep(0.5)
