"""Fault proxies for the soak harness: a TCP proxy between replvault and
Redis (stall, cut, link down) and an HTTP/1.1 proxy in front of the S3
server (stall, 503 SlowDown, cut connections). Standard library only.

Both are thread-per-connection, which is plenty for one archiver each."""

import random
import socket
import threading
import time


class Gate:
    """Open unless a stall is in force; `wait()` blocks while it is closed."""

    def __init__(self):
        self._open = threading.Event()
        self._open.set()

    def close(self):
        self._open.clear()

    def open(self):
        self._open.set()

    def wait(self, stop):
        while not self._open.wait(0.05):
            if stop.is_set():
                return


def _close(*socks):
    for s in socks:
        try:
            s.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass


class TcpFaultProxy:
    """Forwards 127.0.0.1:<port> to upstream, connecting from `source_ip`
    (a loopback address of its own, so the primary's INFO replication tells
    this archiver's acknowledged offset from the others').

    stall(): holds every byte in both directions, connections stay open.
    cut(): closes every connection now. down(): refuses (accepts and closes
    at once) new connections until up()."""

    def __init__(self, upstream_port, source_ip="127.0.0.1", name="proxy"):
        self.upstream = ("127.0.0.1", upstream_port)
        self.source_ip = source_ip
        self.name = name
        self.gate = Gate()
        self.stop = threading.Event()
        self._down = threading.Event()
        self._lock = threading.Lock()
        self._pairs = []
        self.accepted = 0
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(16)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name=f"{name}-accept", daemon=True).start()

    def _accept(self):
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            if self._down.is_set():
                _close(client)
                continue
            try:
                server = socket.create_connection(self.upstream, timeout=5,
                                                  source_address=(self.source_ip, 0))
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            client.settimeout(None)
            self.accepted += 1
            with self._lock:
                self._pairs.append((client, server))
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True,
                                 name=f"{self.name}-pump").start()

    def _pump(self, src, dst):
        try:
            while not self.stop.is_set():
                data = src.recv(65536)
                if not data:
                    break
                self.gate.wait(self.stop)
                dst.sendall(data)
        except OSError:
            pass
        _close(src, dst)
        with self._lock:
            self._pairs = [p for p in self._pairs if src not in p]

    def stall(self):
        self.gate.close()

    def unstall(self):
        self.gate.open()

    def cut(self):
        with self._lock:
            pairs, self._pairs = self._pairs, []
        for c, s in pairs:
            _close(c, s)
        return len(pairs)

    def down(self):
        self._down.set()
        self.cut()

    def up(self):
        self._down.clear()

    def heal(self):
        self.up()
        self.unstall()

    def close(self):
        self.stop.set()
        self.gate.open()
        self.cut()
        _close(self.listener)


SLOWDOWN = (b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
            b'<Message>Please reduce your request rate. (injected by the soak proxy)</Message>'
            b'</Error>')


def _read_head(sock, buf):
    """Reads an HTTP head; returns (head bytes without the blank line, rest)
    or (None, b"") if the peer closed first."""
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None, b""
        buf += data
        if len(buf) > 1 << 20:
            return None, b""
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def _header(head, name):
    for line in head.split(b"\r\n")[1:]:
        k, _, v = line.partition(b":")
        if k.strip().lower() == name:
            return v.strip()
    return None


def _with_close(head):
    """The head with its Connection header replaced by `Connection: close`."""
    lines = [l for l in head.split(b"\r\n") if not l.lower().startswith(b"connection:")]
    return b"\r\n".join(lines) + b"\r\nConnection: close\r\n\r\n"


class HttpFaultProxy:
    """An HTTP/1.1 proxy in front of the S3 server, one request per client
    connection (it answers `Connection: close`). Modes, set by the harness:

      forward  relay the request and the answer
      stall    hold new requests, and the bytes of those in flight, until
               the mode changes
      503      read the request, answer 503 SlowDown without forwarding
      cut      close the connection: before answering, or (half of the
               time) after part of the upstream's answer
    A refused upstream connection (the S3 server is down) is a cut too."""

    def __init__(self, upstream_port, seed):
        self.upstream = ("127.0.0.1", upstream_port)
        self.rng = random.Random(seed)
        self.rng_lock = threading.Lock()
        self.mode = "forward"
        self.gate = Gate()
        self.stop = threading.Event()
        self.counts = {}
        self.counts_lock = threading.Lock()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.listener.settimeout(0.2)
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, name="s3proxy-accept", daemon=True).start()

    def set_mode(self, mode):
        self.mode = mode
        if mode == "stall":
            self.gate.close()
        else:
            self.gate.open()

    def _count(self, what):
        with self.counts_lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def _accept(self):
        while not self.stop.is_set():
            try:
                client, _ = self.listener.accept()
            except (socket.timeout, OSError):
                continue
            client.settimeout(None)
            threading.Thread(target=self._handle, args=(client,), daemon=True,
                             name="s3proxy-conn").start()

    def _handle(self, client):
        server = None
        try:
            head, rest = _read_head(client, b"")
            if head is None:
                return
            self.gate.wait(self.stop)
            mode = self.mode
            if mode == "503":
                n = int(_header(head, b"content-length") or 0)
                while len(rest) < n:
                    data = client.recv(min(65536, n - len(rest)))
                    if not data:
                        return
                    rest += data
                client.sendall(b"HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\n"
                               b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(SLOWDOWN)
                               + SLOWDOWN)
                self._count("503")
                return
            with self.rng_lock:
                cut_after = None
                if mode == "cut":
                    if self.rng.random() < 0.5:
                        self._count("cut")
                        return
                    cut_after = self.rng.randint(0, 4096)
            try:
                server = socket.create_connection(self.upstream, timeout=5)
                server.settimeout(None)
            except OSError:
                self._count("refused")
                return
            server.sendall(_with_close(head) + rest)
            up = threading.Thread(target=self._relay_raw, args=(client, server), daemon=True)
            up.start()
            self._relay_answer(server, client, cut_after)
            self._count("cut-mid-answer" if cut_after is not None else "forward")
        except OSError:
            pass
        finally:
            _close(client)
            if server is not None:
                _close(server)

    def _relay_raw(self, src, dst):
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                self.gate.wait(self.stop)
                dst.sendall(data)
        except OSError:
            pass

    def _relay_answer(self, server, client, cut_after):
        buf = b""
        while True:
            head, buf = _read_head(server, buf)
            if head is None:
                return
            out = _with_close(head)
            status = head.split(b" ", 2)[1] if b" " in head else b""
            interim = status.startswith(b"1")
            if interim:
                out = head + b"\r\n\r\n"
            if cut_after is not None:
                client.sendall((out + buf)[:cut_after])
                return
            self.gate.wait(self.stop)
            client.sendall(out)
            if not interim:
                break
        if buf:
            client.sendall(buf)
        while True:
            data = server.recv(65536)
            if not data:
                return
            self.gate.wait(self.stop)
            client.sendall(data)

    def close(self):
        self.stop.set()
        self.gate.open()
        _close(self.listener)
