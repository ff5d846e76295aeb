#!/usr/bin/env python3
"""Attack shapes from the security review, against the real binary: does a legitimate,
signed event from another address still get 200 within 2 s, and does the bridge's memory
stay bounded?

    bench/attack.py                  # full size, release build: the figures in docs/SECURITY.md
    bench/attack.py --small --debug  # small size, debug build (scripts/test runs this)

Shapes, each from 127.0.0.2 while the legitimate sender posts from 127.0.0.1 (two source
addresses on loopback):
  heads   N connections, each sending ~126 KiB of a request head that never ends;
  idle    N keep-alive connections left idle after one GET /healthz;
  bodies  64 POSTs with an HMAC-shaped signature (of another secret), declaring 512 KiB
          and sending nothing.
The bridge runs on the in-repo FAKE SQS (examples/fake_sqs.rs). Full size: 8,000 head
connections, 9,000 idle ones, default settings. Small: 600 connections against
BRIDGE_MAX_CONNECTIONS_PER_SOURCE=256, so the per-source cap is exercised in seconds.
Exits 1 if a check fails.
"""

import argparse
import hashlib
import hmac
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FAKE = "127.0.0.1:19424"
SECRET = "attack-shared-secret-0001"
ATTACKER = "127.0.0.2"


def build(profile):
    args = ["cargo", "build", "--quiet", "--bin", "webhook-sqs-bridge", "--example", "fake_sqs"]
    if profile == "release":
        args.append("--release")
    subprocess.run(args, cwd=ROOT, check=True)


def wait_listening(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listening on {port}")


def rss_mib(pid, field="VmRSS"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


def start_bridge(target, port, extra):
    env = dict(os.environ)
    env.update({
        "BRIDGE_QUEUE_URL": f"http://{FAKE}/000000000000/attack.fifo",
        "BRIDGE_LISTEN": f"127.0.0.1:{port}", "BRIDGE_EVENT_SETUP_ID": "1",
        "BRIDGE_SHARED_SECRETS": SECRET, "BRIDGE_LOG_FORMAT": "json", "RUST_LOG": "warn",
        "AWS_ENDPOINT_URL": f"http://{FAKE}", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "attack", "AWS_SECRET_ACCESS_KEY": "attack",
    })
    env.update(extra)
    proc = subprocess.Popen([os.path.join(target, "webhook-sqs-bridge")], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_listening(port)
    return proc


def signed_event(port, label):
    """One signed event from 127.0.0.1: (status, seconds)."""
    body = json.dumps({"msg_id": f"{label}-{time.time_ns()}", "event_type": 5,
                       "event_datetime": "2025-02-12T14:30:45"}).encode()
    signature = hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhook", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-Payload-Signature": signature})
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=10) as r:
            return r.status, time.monotonic() - started
    except urllib.error.HTTPError as e:
        return e.code, time.monotonic() - started
    except OSError:
        return 0, time.monotonic() - started


def attacker_socket(port):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind((ATTACKER, 0))
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    return s


def open_many(port, count, first_bytes, read_answer=False):
    """`count` attacker connections, each sending `first_bytes`; (kept, closed)."""
    kept, closed = [], 0
    for _ in range(count):
        try:
            s = attacker_socket(port)
            s.sendall(first_bytes)
            if read_answer:
                if not s.recv(4096):
                    raise ConnectionError("closed")
            kept.append(s)
        except OSError:
            closed += 1
    return kept, closed


def alive(sockets):
    """How many of `sockets` the bridge still holds open."""
    count = 0
    for s in sockets:
        s.setblocking(False)
        try:
            data = s.recv(1, socket.MSG_PEEK)
            if data:
                count += 1
        except BlockingIOError:
            count += 1
        except OSError:
            pass
    return count


def run_shape(name, target, port, extra, attack, checks):
    proc = start_bridge(target, port, extra)
    try:
        baseline = rss_mib(proc.pid)
        started = time.monotonic()
        sockets, closed = attack(port)
        took = time.monotonic() - started
        status, latency = signed_event(port, name)
        rss, peak = rss_mib(proc.pid), rss_mib(proc.pid, "VmHWM")
        held = alive(sockets)
        print(f"{name}: {len(sockets) + closed} attacker connections in {took:.1f} s, "
              f"{closed} closed at once, {held} held by the bridge; signed event from "
              f"another address: {status} in {latency:.2f} s; RSS {baseline:.0f} -> "
              f"{rss:.0f} MiB (peak {peak:.0f})")
        checks.append((f"{name}: signed event 200 within 2 s", status == 200 and latency <= 2))
        checks.append((f"{name}: bridge under 256 MiB", peak < 256))
        for s in sockets:
            s.close()
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--small", action="store_true", help="a few seconds, for scripts/test")
    parser.add_argument("--debug", action="store_true", help="use the debug build")
    args = parser.parse_args()
    profile = "debug" if args.debug else "release"
    target = os.path.join(ROOT, "target", profile)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    print(f"building ({profile})...", file=sys.stderr)
    build(profile)
    fake = subprocess.Popen([os.path.join(target, "examples", "fake_sqs"), FAKE],
                            stdout=subprocess.DEVNULL)
    checks = []
    heads, idles = (600, 600) if args.small else (8000, 9000)
    extra = {"BRIDGE_MAX_CONNECTIONS_PER_SOURCE": "256"} if args.small else {}
    head = b"POST /webhook HTTP/1.1\r\nHost: x\r\nX-Padding: " + b"a" * (126 * 1024)
    idle = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    signature = hmac.new(b"not-the-secret", b"{}", hashlib.sha256).hexdigest().encode()
    declared = (b"POST /webhook HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"X-Payload-Signature: " + signature + b"\r\nContent-Length: 524288\r\n\r\n")
    try:
        wait_listening(int(FAKE.split(":")[1]))
        run_shape("heads", target, 18481, extra,
                  lambda port: open_many(port, heads, head), checks)
        run_shape("idle", target, 18482, extra,
                  lambda port: open_many(port, idles, idle, read_answer=True), checks)
        run_shape("bodies", target, 18483, extra,
                  lambda port: open_many(port, 64, declared), checks)
    finally:
        fake.send_signal(signal.SIGINT)
        fake.wait(timeout=10)
    print()
    for label, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
