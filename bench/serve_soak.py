#!/usr/bin/env python3
"""The hostile half of bench/serve_soak.sh (Python 3 standard library only).

While wrk drives good and bad bodies, this keeps slow and idle connections open, sends oversized
chunked and gzip bodies, bodies without a length and image bombs, probes GET /ping every 200 ms and
samples the server's RSS; then prints what each kind of client got, the /ping latencies and the RSS.

  serve_soak.py --port P --pid PID --seconds S [--slow 300] [--idle 100]
"""
import argparse
import socket
import struct
import threading
import time
import zlib
from collections import Counter

A = argparse.ArgumentParser()
A.add_argument("--port", type=int, required=True)
A.add_argument("--pid", type=int, required=True)
A.add_argument("--seconds", type=float, required=True)
A.add_argument("--slow", type=int, default=300)
A.add_argument("--idle", type=int, default=100)
args = A.parse_args()
END = time.time() + args.seconds
lock = threading.Lock()
outcomes = Counter()  # (kind, status) -> count


def note(kind, status):
    with lock:
        outcomes[(kind, status)] += 1


def connect(timeout=10.0):
    s = socket.create_connection(("127.0.0.1", args.port), timeout=timeout)
    return s


def status_of(answer):
    if answer.startswith(b"HTTP/1.1 "):
        return answer[9:12].decode()
    return "none"


def exchange(data, kind, timeout=30.0):
    """Sends data (as much as the server takes), then reads the answer's status line."""
    try:
        s = connect(timeout)
        try:
            s.sendall(data)
        except OSError:
            pass  # refused early: the answer is already there
        try:
            s.shutdown(socket.SHUT_WR)
        except OSError:
            pass
        answer = b""
        while len(answer) < 16:
            chunk = s.recv(4096)
            if not chunk:
                break
            answer += chunk
        s.close()
        note(kind, status_of(answer))
    except OSError as e:
        note(kind, "error:" + type(e).__name__)


def png(width, height, claimed=None):
    """A black RGB PNG; `claimed` overrides the size in IHDR (a header-only bomb)."""
    w, h = claimed or (width, height)
    def chunk(tag, data):
        return struct.pack(">I", len(data)) + tag + data + struct.pack(">I", zlib.crc32(tag + data))
    raw = (b"\x00" + b"\x00" * (width * 3)) * height
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))


def slow_client(i):
    """Headers and a body dripped one byte a second: each read is quick, the request never is."""
    while time.time() < END:
        try:
            s = connect()
            s.sendall(b"POST /invocations HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100000\r\n\r\n")
            answer = b""
            while time.time() < END:
                s.sendall(b"x")
                s.settimeout(1.0)
                try:
                    answer = s.recv(4096)
                    break  # the server answered (408) and closed
                except socket.timeout:
                    continue
            s.close()
            if answer:
                note("slow drip", status_of(answer))
        except OSError as e:
            note("slow drip", "error:" + type(e).__name__)
            time.sleep(0.5)


def idle_client(i):
    while time.time() < END:
        try:
            s = connect()
            s.settimeout(max(0.1, END - time.time()))
            data = s.recv(1)  # the server closes an idle connection after --idle-timeout-s
            note("idle", "closed by server" if not data else "data")
            s.close()
        except socket.timeout:
            note("idle", "open at end")
        except OSError as e:
            note("idle", "error:" + type(e).__name__)
            time.sleep(0.5)


def hostile():
    big_png = png(7000, 7000)
    header_bomb = png(1, 1, claimed=(30000, 30000))
    gzip_bomb = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = gzip_bomb.compress(b"\x00" * (200 << 20)) + gzip_bomb.flush()
    chunk = b"10000\r\n" + b"x" * 0x10000 + b"\r\n"
    cases = [
        ("chunked 48 MiB", b"POST /invocations HTTP/1.1\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n" +
         chunk * 768 + b"0\r\n\r\n"),
        ("gzip 200 MiB inflated", b"POST /invocations HTTP/1.1\r\nContent-Type: application/json\r\n"
         b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n" % len(bomb) + bomb),
        ("no length", b"POST /invocations HTTP/1.1\r\nContent-Type: image/png\r\n\r\n" + b"x" * 100000),
        ("PNG 7000x7000 (%d KB)" % (len(big_png) // 1024), b"POST /invocations HTTP/1.1\r\nContent-Type: image/png\r\n"
         b"Content-Length: %d\r\n\r\n" % len(big_png) + big_png),
        ("PNG header 30000x30000", b"POST /invocations HTTP/1.1\r\nContent-Type: image/png\r\n"
         b"Content-Length: %d\r\n\r\n" % len(header_bomb) + header_bomb),
    ]
    while time.time() < END:
        for kind, data in cases:
            if time.time() >= END:
                break
            exchange(data, kind)


pings = []
ping_failures = Counter()


def ping_probe():
    while time.time() < END:
        t0 = time.time()
        try:
            s = connect(5.0)
            s.sendall(b"GET /ping HTTP/1.1\r\nConnection: close\r\n\r\n")
            answer = s.recv(4096)
            s.close()
            if status_of(answer) == "200":
                pings.append(time.time() - t0)
            else:
                ping_failures[status_of(answer)] += 1
        except OSError as e:
            ping_failures[type(e).__name__] += 1
        time.sleep(0.2)


rss = []


def rss_sampler():
    while time.time() < END:
        try:
            with open("/proc/%d/status" % args.pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        rss.append(int(line.split()[1]) // 1024)
        except OSError:
            pass
        time.sleep(0.5)


threads = [threading.Thread(target=ping_probe), threading.Thread(target=rss_sampler), threading.Thread(target=hostile),
           threading.Thread(target=hostile)]
threads += [threading.Thread(target=slow_client, args=(i,)) for i in range(args.slow)]
threads += [threading.Thread(target=idle_client, args=(i,)) for i in range(args.idle)]
for t in threads:
    t.daemon = True
    t.start()
for t in threads:
    t.join(timeout=max(0.0, END - time.time()) + 60)

print("hostile clients (python): kind -> status: count")
for (kind, status), n in sorted(outcomes.items()):
    print("  %-28s %-18s %d" % (kind, status, n))
pings.sort()
if pings:
    pct = lambda p: pings[min(len(pings) - 1, int(p * len(pings)))] * 1000
    print("/ping: %d answered, p50 %.1f ms, p99 %.1f ms, max %.1f ms; failed: %s" %
          (len(pings), pct(0.5), pct(0.99), pings[-1] * 1000, dict(ping_failures) or "none"))
else:
    print("/ping: none answered; failed: %s" % dict(ping_failures))
if rss:
    print("server RSS: start %d MB, peak %d MB, end %d MB" % (rss[0], max(rss), rss[-1]))
