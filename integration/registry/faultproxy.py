#!/usr/bin/env python3
"""A fault-injecting TCP/HTTP proxy to put in front of a registry (stdlib only).

    faultproxy.py --upstream HOST:PORT [--listen 127.0.0.1:0]
                  [--ignore-range]
                  [--cut-after BYTES [--down-after-cut] [--cut-rst]]
                  [--corrupt-blob] [--blob-filter TEXT]
                  [--fail-first N] [--delay-ms N] [--rate-mbit N]
                  [--log FILE]

The first line on stdout is the port it listens on (then it runs until
killed).  Modes combine:

  --ignore-range   drop the Range (and If-Range) request header, so the
                   registry answers 200 with the whole blob
  --cut-after N    on a connection, once N response-body bytes of GET
                   /blobs/ requests have been forwarded (counted across the
                   connection's requests), close it in the middle of the
                   body: FIN after exactly N bytes, so the client sees a
                   premature end of the body (--cut-rst: RST instead; the
                   client then may lose bytes still in its receive buffer)
  --down-after-cut after the first cut, behave like a stopped registry:
                   close the listening socket (new connections are refused)
                   and abort every open connection
  --corrupt-blob   flip one byte (XOR 0xff) in the middle of every GET
                   /blobs/ response body (whatever its status: a 206 gets
                   its own middle byte flipped); manifests are untouched
  --blob-filter T  --cut-after and --corrupt-blob apply only to /blobs/
                   paths containing T (e.g. a layer digest)
  --fail-first N   answer the first N requests with 503 (and a JSON error
                   body), then forward normally
  --delay-ms N     hold every chunk N ms in each direction (a delay line:
                   adds 2N ms to a round trip without limiting bandwidth)
  --rate-mbit N    token-bucket limit per direction, shared by all
                   connections (like one link)
  --log FILE       one line per HTTP request:
                   METHOD PATH RANGE STATUS BODY_BYTES ms=ELAPSED at=START [note]
                   RANGE is the client's Range header ("-" if none); note
                   is one of fail-first, range-stripped, corrupt@OFFSET,
                   cut@BYTES

Without --ignore-range, --cut-after, --corrupt-blob, --fail-first and
--log it forwards plain bytes (any protocol).  Otherwise it parses HTTP/1.1
(keep-alive; Content-Length, chunked, or close-delimited bodies; 1xx
responses; HEAD/204/304 without a body; "Expect: 100-continue" is answered
by the proxy itself) with one upstream connection per client connection.
"""

import argparse
import json
import queue
import socket
import sys
import threading
import time

CHUNK = 65536
MAX_HEAD = 256 * 1024


class Closed(Exception):
    """The peer closed the connection (or it broke)."""


# --------------------------------------------------------------------------
# sending: delay line + token bucket


class Bucket:
    """Token bucket shared by every connection, one per direction."""

    def __init__(self, mbit):
        self.rate = mbit * 1e6 / 8.0
        self.cap = max(65536.0, self.rate * 0.002)
        self.tokens = self.cap
        self.last = time.monotonic()
        self.lock = threading.Lock()

    def take(self, n):
        with self.lock:
            now = time.monotonic()
            self.tokens = min(self.cap, self.tokens + (now - self.last) * self.rate)
            self.last = now
            self.tokens -= n
            wait = -self.tokens / self.rate if self.tokens < 0 else 0.0
        if wait > 0:
            time.sleep(wait)


_CLOSE, _RESET, _SHUT_WR = object(), object(), object()


class Writer:
    """Writes to one socket.  With a delay or a bucket, bytes go through a
    bounded queue and a thread that releases each chunk DELAY after it was
    queued; otherwise send() writes at once.  The Writer owns the socket's
    close: close() (FIN) and reset() (RST) take effect after queued data."""

    def __init__(self, sock, delay, bucket):
        self.sock = sock
        self.delay = delay
        self.bucket = bucket
        self.broken = False
        self.done = threading.Event()
        self.q = None
        if delay > 0 or bucket is not None:
            self.q = queue.Queue(maxsize=512)
            threading.Thread(target=self._run, daemon=True).start()

    def _do(self, item):
        if item is _CLOSE:
            _close(self.sock)
            return False
        if item is _RESET:
            _reset(self.sock)
            return False
        if item is _SHUT_WR:
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            return True
        if self.broken:
            return True
        if self.bucket is not None:
            self.bucket.take(len(item))
        try:
            self.sock.sendall(item)
        except OSError:
            self.broken = True
        return True

    def _run(self):
        while True:
            due, item = self.q.get()
            wait = due - time.monotonic()
            if wait > 0:
                time.sleep(wait)
            if not self._do(item):
                break
        self.done.set()

    def _put(self, item):
        if self.q is None:
            if not self._do(item):
                self.done.set()
        else:
            self.q.put((time.monotonic() + self.delay, item))

    def send(self, data):
        if self.broken:
            raise Closed("peer gone")
        for i in range(0, len(data), CHUNK):
            self._put(bytes(data[i:i + CHUNK]))

    def shutdown_write(self):
        self._put(_SHUT_WR)

    def close(self):
        self._put(_CLOSE)

    def reset(self):
        self._put(_RESET)


def _close(sock):
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


def _reset(sock):
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                        b"\x01\x00\x00\x00\x00\x00\x00\x00")
    except OSError:
        pass
    try:
        sock.close()
    except OSError:
        pass


# --------------------------------------------------------------------------
# reading


class Reader:
    def __init__(self, sock):
        self.sock = sock
        self.buf = bytearray()

    def _fill(self):
        try:
            data = self.sock.recv(CHUNK)
        except OSError as e:
            raise Closed(str(e))
        if not data:
            raise Closed("eof")
        self.buf += data

    def head(self):
        """Bytes up to and including the blank line; None on EOF before the
        first byte."""
        while True:
            i = self.buf.find(b"\r\n\r\n")
            if i >= 0:
                out = bytes(self.buf[:i + 4])
                del self.buf[:i + 4]
                return out
            if len(self.buf) > MAX_HEAD:
                raise Closed("header too large")
            try:
                self._fill()
            except Closed:
                if not self.buf:
                    return None
                raise

    def line(self):
        while True:
            i = self.buf.find(b"\n")
            if i >= 0:
                out = bytes(self.buf[:i + 1])
                del self.buf[:i + 1]
                return out
            if len(self.buf) > MAX_HEAD:
                raise Closed("line too long")
            self._fill()

    def some(self, limit):
        """Up to `limit` bytes (at least 1); raises Closed at EOF."""
        if not self.buf:
            self._fill()
        n = min(limit, len(self.buf))
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    def some_or_eof(self, limit):
        try:
            return self.some(limit)
        except Closed:
            return b""


# --------------------------------------------------------------------------
# HTTP


class Head:
    def __init__(self, raw):
        lines = raw.decode("latin-1").split("\r\n")
        self.first = lines[0]
        self.headers = []
        for ln in lines[1:]:
            if not ln:
                continue
            k, _, v = ln.partition(":")
            self.headers.append((k.strip(), v.strip()))

    def get(self, name):
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return None

    def drop(self, name):
        name = name.lower()
        before = len(self.headers)
        self.headers = [(k, v) for k, v in self.headers if k.lower() != name]
        return len(self.headers) != before

    def encode(self):
        out = self.first + "\r\n"
        for k, v in self.headers:
            out += "%s: %s\r\n" % (k, v)
        return (out + "\r\n").encode("latin-1")

    def chunked(self):
        te = self.get("Transfer-Encoding")
        return te is not None and "chunked" in te.lower()

    def length(self):
        cl = self.get("Content-Length")
        if cl is None:
            return None
        try:
            return int(cl.split(",")[0].strip())
        except ValueError:
            return None

    def conn_tokens(self):
        v = self.get("Connection") or ""
        return {t.strip().lower() for t in v.split(",") if t.strip()}


class Proxy:
    def __init__(self, args):
        self.a = args
        host, port = args.upstream.rsplit(":", 1)
        self.upstream = (host.strip("[]"), int(port))
        self.http = bool(args.ignore_range or args.cut_after is not None
                         or args.corrupt_blob or args.fail_first or args.log)
        self.delay = args.delay_ms / 1000.0
        self.up_bucket = Bucket(args.rate_mbit) if args.rate_mbit else None
        self.down_bucket = Bucket(args.rate_mbit) if args.rate_mbit else None
        self.lock = threading.Lock()
        self.nreq = 0
        self.down = False
        self.active = set()
        self.logf = open(args.log, "a", buffering=1) if args.log else None
        host, port = args.listen.rsplit(":", 1)
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind((host, int(port)))
        self.lsock.listen(128)

    # ---- bookkeeping
    def log(self, method, path, rng, status, nbytes, t0, note=""):
        if not self.logf:
            return
        now = time.monotonic()
        line = "%s %s %s %s %d ms=%.1f at=%.3f%s\n" % (
            method, path, rng or "-", status, nbytes, (now - t0) * 1000.0,
            time.time() - (now - t0), (" " + note) if note else "")
        with self.lock:
            self.logf.write(line)

    def go_down(self):
        with self.lock:
            if self.down:
                return
            self.down = True
            socks = list(self.active)
        _close(self.lsock)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def serve(self):
        print(self.lsock.getsockname()[1], flush=True)
        while True:
            try:
                c, _ = self.lsock.accept()
            except OSError:
                if self.down:
                    # a stopped registry: stay alive (so the harness can
                    # read the log and kill us) but refuse everything
                    while True:
                        time.sleep(3600)
                raise
            if self.down:
                _reset(c)
                continue
            c.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self.handle, args=(c,), daemon=True).start()

    def connect_upstream(self):
        u = socket.create_connection(self.upstream, timeout=10)
        u.settimeout(None)
        u.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return u

    def handle(self, c):
        with self.lock:
            self.active.add(c)
        st = {"u": None, "uw": None}
        cw = Writer(c, self.delay, self.down_bucket)
        try:
            if self.http:
                self.handle_http(c, cw, st)
            else:
                st["u"] = self.connect_upstream()
                with self.lock:
                    self.active.add(st["u"])
                st["uw"] = Writer(st["u"], self.delay, self.up_bucket)
                self.pump_both(c, cw, st["u"], st["uw"])
        except Exception as e:  # never let one connection kill the proxy
            if not isinstance(e, (Closed, OSError)):
                sys.stderr.write("faultproxy: %r\n" % e)
            cw.close()
            if st["uw"] is not None:
                st["uw"].close()
            elif st["u"] is not None:
                _close(st["u"])
        finally:
            with self.lock:
                self.active.discard(c)
                if st["u"] is not None:
                    self.active.discard(st["u"])

    # ---- plain byte forwarding
    def pump_both(self, c, cw, u, uw):
        def pump(src, dst_writer):
            r = Reader(src)
            while True:
                data = r.some_or_eof(CHUNK)
                if not data:
                    break
                try:
                    dst_writer.send(data)
                except Closed:
                    break
            dst_writer.shutdown_write()

        t = threading.Thread(target=pump, args=(u, cw), daemon=True)
        t.start()
        pump(c, uw)
        t.join()
        uw.close()
        cw.close()

    # ---- HTTP
    def relay_body(self, reader, writer, head, is_response, method="",
                   status=0, transform=None):
        """Forward one message body.  Returns (bytes, ended_by_close).
        transform(data, offset, total) -> (data, stop) may alter or stop."""
        if is_response and (method == "HEAD" or status in (204, 304)
                            or 100 <= status < 200):
            return 0, False
        total = 0
        if head.chunked():
            while True:
                line = reader.line()
                size = int(line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    writer.send(line)
                    while True:  # trailers up to the blank line
                        t = reader.line()
                        writer.send(t)
                        if t in (b"\r\n", b"\n"):
                            break
                    return total, False
                writer.send(line)
                left = size
                while left:
                    data = reader.some(min(left, CHUNK))
                    left -= len(data)
                    if transform:
                        data, stop = transform(data, total, None)
                        if stop:
                            writer.send(data)
                            return total + len(data), True
                    writer.send(data)
                    total += len(data)
                crlf = reader.line()
                writer.send(crlf)
        n = head.length()
        if n is None and not is_response:
            return 0, False
        if n is None:  # delimited by close
            while True:
                data = reader.some_or_eof(CHUNK)
                if not data:
                    return total, True
                if transform:
                    data, stop = transform(data, total, None)
                    if stop:
                        writer.send(data)
                        return total + len(data), True
                writer.send(data)
                total += len(data)
        left = n
        while left:
            data = reader.some(min(left, CHUNK))
            left -= len(data)
            if transform:
                data, stop = transform(data, total, n)
                if stop:
                    writer.send(data)
                    return total + len(data), True
            writer.send(data)
            total += len(data)
        return total, False

    def answer(self, cw, status, reason, obj):
        body = json.dumps(obj).encode()
        cw.send(("HTTP/1.1 %d %s\r\nContent-Type: application/json\r\n"
                 "Content-Length: %d\r\n\r\n" % (status, reason, len(body))
                 ).encode() + body)
        return len(body)

    def handle_http(self, c, cw, st):
        a = self.a
        cr = Reader(c)
        u = uw = ur = None
        conn_blob_bytes = 0
        while True:
            raw = cr.head()
            if raw is None:
                break
            t0 = time.monotonic()
            req = Head(raw)
            parts = req.first.split(" ")
            if len(parts) != 3:
                raise Closed("bad request line")
            method, path, version = parts
            rng = req.get("Range")
            client_close = ("close" in req.conn_tokens()
                            or version == "HTTP/1.0"
                            and "keep-alive" not in req.conn_tokens())
            with self.lock:
                self.nreq += 1
                nreq = self.nreq
            expect = req.get("Expect")
            if expect is not None:
                req.drop("Expect")
                if expect.lower() == "100-continue":
                    cw.send(b"HTTP/1.1 100 Continue\r\n\r\n")

            if nreq <= a.fail_first:
                self.relay_body(cr, _Sink(), req, False)
                n = self.answer(cw, 503, "Service Unavailable", {"errors": [{
                    "code": "UNAVAILABLE",
                    "message": "faultproxy: request %d of the first %d fails"
                               % (nreq, a.fail_first)}]})
                self.log(method, path, rng, 503, n, t0, "fail-first")
                if client_close:
                    break
                continue

            note = ""
            if a.ignore_range:
                dropped = req.drop("Range")
                req.drop("If-Range")
                if dropped:
                    note = "range-stripped"
            if u is None:
                u = st["u"] = self.connect_upstream()
                with self.lock:
                    self.active.add(u)
                uw = st["uw"] = Writer(u, self.delay, self.up_bucket)
                ur = Reader(u)
            uw.send(req.encode())
            self.relay_body(cr, uw, req, False)

            while True:
                rraw = ur.head()
                if rraw is None:
                    raise Closed("upstream closed before answering")
                resp = Head(rraw)
                try:
                    status = int(resp.first.split(" ")[1])
                except (IndexError, ValueError):
                    raise Closed("bad status line")
                if 100 <= status < 200 and status != 101:
                    continue  # Expect was handled by us; drop interim replies
                break
            cw.send(resp.encode())

            blob = (method == "GET" and "/blobs/" in path
                    and "/blobs/uploads" not in path
                    and (a.blob_filter is None or a.blob_filter in path))
            state = {"cut": False, "corrupt": None}
            transform = None
            if blob and status in (200, 206) and (a.cut_after is not None
                                                  or a.corrupt_blob):
                base = conn_blob_bytes

                def transform(data, off, total, base=base, state=state):
                    data = bytearray(data)
                    if a.corrupt_blob and state["corrupt"] is None:
                        mid = (total // 2) if total else 0
                        if off <= mid < off + len(data):
                            data[mid - off] ^= 0xFF
                            state["corrupt"] = mid
                    if a.cut_after is not None:
                        room = a.cut_after - (base + off)
                        if room < len(data):
                            state["cut"] = True
                            return bytes(data[:max(room, 0)]), True
                    return bytes(data), False

            nbytes, closed = self.relay_body(ur, cw, resp, True, method,
                                             status, transform)
            if blob:
                conn_blob_bytes += nbytes
            if state["corrupt"] is not None:
                note = (note + " " if note else "") + "corrupt@%d" % state["corrupt"]
            if state["cut"]:
                note = (note + " " if note else "") + "cut@%d" % conn_blob_bytes
                self.log(method, path, rng, status, nbytes, t0, note)
                if a.cut_rst:
                    cw.reset()
                else:
                    cw.close()
                uw.reset()
                if a.down_after_cut:
                    self.go_down()
                return
            self.log(method, path, rng, status, nbytes, t0, note)
            if closed or client_close or "close" in resp.conn_tokens():
                break
        cw.close()
        if uw:
            uw.close()


class _Sink:
    def send(self, data):
        pass


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--upstream", required=True, metavar="HOST:PORT")
    ap.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT")
    ap.add_argument("--ignore-range", action="store_true")
    ap.add_argument("--cut-after", type=int, metavar="BYTES")
    ap.add_argument("--down-after-cut", action="store_true")
    ap.add_argument("--cut-rst", action="store_true")
    ap.add_argument("--corrupt-blob", action="store_true")
    ap.add_argument("--blob-filter", metavar="TEXT")
    ap.add_argument("--fail-first", type=int, default=0, metavar="N")
    ap.add_argument("--delay-ms", type=float, default=0.0, metavar="N")
    ap.add_argument("--rate-mbit", type=float, default=0.0, metavar="N")
    ap.add_argument("--log", metavar="FILE")
    args = ap.parse_args()
    try:
        p = Proxy(args)
    except OSError as e:
        sys.stderr.write("faultproxy: %s\n" % e)
        return 2
    try:
        p.serve()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
