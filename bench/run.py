#!/usr/bin/env python3
"""Throughput benchmark: the bridge (batched and not) against a naive forwarder and a
do-nothing ceiling, all measured in the same run on the same machine.

    bench/run.py [--seconds 10] [--connections 64] [--markdown]

Builds in release mode, starts the in-repo FAKE SQS (tests/support/fake_sqs.rs, no
faults) and measures its own rate first, then for each target: time to listen, idle
RSS, requests/s, p50/p99 latency, non-2xx answers, SQS calls per event, and peak RSS
under load, with ratios to the naive forwarder and to the ceiling. Load comes from
examples/loadgen.rs: 64 keep-alive connections posting unique, HMAC-signed 1 KiB events
(wrk and oha can't sign each body).
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
FAKE = "127.0.0.1:19324"
QUEUE_URL = f"http://{FAKE}/000000000000/bench.fifo"
SECRET = "bench-secret"

TARGETS = {
    "bridge (batching)": ("bridge", {"BRIDGE_BATCH": "true"}),
    "bridge (no batching)": ("bridge", {"BRIDGE_BATCH": "false"}),
    "naive forwarder": ("naive", {}),
    "ceiling (200, no forward)": ("ceiling", {}),
}


def build():
    subprocess.run(
        ["cargo", "build", "--release", "--quiet", "--bin", "webhook-sqs-bridge",
         "--example", "fake_sqs", "--example", "ceiling", "--example", "naive_forwarder",
         "--example", "loadgen"],
        cwd=ROOT, check=True)


def wait_listening(port, started, timeout=10.0):
    """Seconds from `started` until the port accepts a connection."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.05):
                return time.monotonic() - started
        except OSError:
            time.sleep(0.001)
    raise RuntimeError(f"nothing listening on {port} after {timeout}s")


def rss_kib(pid, field):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def fake_stats():
    with urllib.request.urlopen(f"http://{FAKE}/stats") as r:
        stats = json.load(r)
    calls = stats["calls"]
    return stats["stored"], calls.get("SendMessage", 0) + calls.get("SendMessageBatch", 0)


def loadgen(url, seconds, connections, mode="webhook"):
    out = subprocess.run(
        [os.path.join(RELEASE, "examples", "loadgen"), "--url", url, "--seconds", str(seconds),
         "--connections", str(connections), "--secret", SECRET, "--mode", mode],
        check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def start(kind, extra_env, port):
    env = dict(os.environ)
    env.update({"AWS_ENDPOINT_URL": f"http://{FAKE}", "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"})
    addr = f"127.0.0.1:{port}"
    if kind == "bridge":
        env.update({"BRIDGE_QUEUE_URL": QUEUE_URL, "BRIDGE_LISTEN": addr,
                    "BRIDGE_EVENT_SETUP_ID": "1", "BRIDGE_SHARED_SECRETS": SECRET,
                    "BRIDGE_LOG_FORMAT": "json"})
        env.update(extra_env)
        cmd = [os.path.join(RELEASE, "webhook-sqs-bridge")]
    elif kind == "naive":
        cmd = [os.path.join(RELEASE, "examples", "naive_forwarder"), addr, QUEUE_URL]
    else:
        cmd = [os.path.join(RELEASE, "examples", "ceiling"), addr]
    started = time.monotonic()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    ready = wait_listening(port, started)
    return proc, ready


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--markdown", action="store_true", help="print a Markdown table too")
    args = parser.parse_args()

    print("building (release)...", file=sys.stderr)
    build()
    fake = subprocess.Popen([os.path.join(RELEASE, "examples", "fake_sqs"), FAKE],
                            stdout=subprocess.DEVNULL)
    try:
        wait_listening(int(FAKE.split(":")[1]), time.monotonic())
        own = loadgen(f"http://{FAKE}/", args.seconds, args.connections, mode="sqs")
        print(f"fake SQS alone: {own['rps']:.0f} SendMessage/s "
              f"(p50 {own['p50_ms']:.2f} ms, p99 {own['p99_ms']:.2f} ms)")

        results = {}
        for port, (name, (kind, extra)) in enumerate(TARGETS.items(), start=18080):
            proc, ready = start(kind, extra, port)
            try:
                time.sleep(0.3)  # let start-up work (readiness probe, workers) settle
                idle = rss_kib(proc.pid, "VmRSS")
                stored0, calls0 = fake_stats()
                load = loadgen(f"http://127.0.0.1:{port}/webhook", args.seconds, args.connections)
                stored1, calls1 = fake_stats()
                peak = rss_kib(proc.pid, "VmHWM")
            finally:
                proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
            events = stored1 - stored0
            load.update({
                "ready_ms": ready * 1000, "idle_rss_mib": idle / 1024, "peak_rss_mib": peak / 1024,
                "calls_per_event": (calls1 - calls0) / events if events else None,
                "stored": events,
            })
            results[name] = load
            print(f"{name}: {load['rps']:.0f} req/s", file=sys.stderr)
    finally:
        fake.send_signal(signal.SIGINT)
        fake.wait(timeout=10)

    naive = results["naive forwarder"]["rps"]
    ceiling = results["ceiling (200, no forward)"]["rps"]
    header = ("target", "req/s", "p50 ms", "p99 ms", "non-2xx", "SQS calls/event",
              "idle RSS MiB", "peak RSS MiB", "listening after ms", "x naive", "x ceiling")
    rows = []
    for name, r in results.items():
        cpe = "-" if r["calls_per_event"] is None else f"{r['calls_per_event']:.3f}"
        rows.append((name, f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}",
                     str(r["non_2xx"] + r["errors"]), cpe, f"{r['idle_rss_mib']:.1f}",
                     f"{r['peak_rss_mib']:.1f}", f"{r['ready_ms']:.0f}",
                     f"{r['rps'] / naive:.2f}", f"{r['rps'] / ceiling:.2f}"))
    widths = [max(len(h), *(len(row[i]) for row in rows)) for i, h in enumerate(header)]
    print("  ".join(h.ljust(w) for h, w in zip(header, widths)))
    for row in rows:
        print("  ".join(c.ljust(w) for c, w in zip(row, widths)))
    if args.markdown:
        print()
        print("| " + " | ".join(header) + " |")
        print("|" + "---|" * len(header))
        for row in rows:
            print("| " + " | ".join(row) + " |")

    b, u = results["bridge (batching)"], results["bridge (no batching)"]
    checks = [
        ("batching >= 3x naive req/s", b["rps"] >= 3 * naive),
        ("batching p99 <= naive p99", b["p99_ms"] <= results["naive forwarder"]["p99_ms"]),
        ("batching <= 0.2 SQS calls/event", (b["calls_per_event"] or 1) <= 0.2),
        ("no batching >= 0.9x naive req/s", u["rps"] >= 0.9 * naive),
        ("bridge idle RSS <= 32 MiB", max(b["idle_rss_mib"], u["idle_rss_mib"]) <= 32),
        ("bridge peak RSS <= 128 MiB", max(b["peak_rss_mib"], u["peak_rss_mib"]) <= 128),
        ("bridge listening within 200 ms", max(b["ready_ms"], u["ready_ms"]) <= 200),
        ("no non-2xx from the bridge", b["non_2xx"] + b["errors"] + u["non_2xx"] + u["errors"] == 0),
    ]
    print()
    for label, ok in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}")
    return 0 if all(ok for _, ok in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
