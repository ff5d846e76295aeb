#!/usr/bin/env python3
"""Memory per body held while SQS is slow: what the README's sizing of
BRIDGE_MAX_BUFFERED_BYTES rests on.

    bench/held.py [--events 48] [--kib 512] [--batch true|false]

Starts the in-repo FAKE SQS answering every call after 60 s, and the bridge (release
build) in front of it; posts N events of the given size at once (API key, so they are
known before their bodies) and waits until the bridge holds all of them
(bridge_buffered_body_bytes). Prints the bridge's RSS growth per byte held.
"""

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RELEASE = os.path.join(ROOT, "target", "release")
FAKE = "127.0.0.1:19524"
KEY = "held-bench-api-key-0001"


def wait_listening(port, timeout=20.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.1):
                return
        except OSError:
            time.sleep(0.01)
    raise RuntimeError(f"nothing listening on {port}")


def rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def metric(port, name):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics") as r:
        text = r.read().decode()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"))


def post(port, body):
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhook", data=body, method="POST",
        headers={"Content-Type": "application/json", "X-api-key": KEY})
    try:
        urllib.request.urlopen(request, timeout=120).read()
    except OSError:
        pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=48)
    parser.add_argument("--kib", type=int, default=512)
    parser.add_argument("--batch", default="true")
    args = parser.parse_args()
    subprocess.run(["cargo", "build", "--release", "--quiet", "--bin", "webhook-sqs-bridge",
                    "--example", "fake_sqs"], cwd=ROOT, check=True)
    fake = subprocess.Popen([os.path.join(RELEASE, "examples", "fake_sqs"), FAKE,
                             "--hang-ms", "60000"], stdout=subprocess.DEVNULL)
    port = 18581
    env = dict(os.environ)
    env.update({
        "BRIDGE_QUEUE_URL": f"http://{FAKE}/000000000000/held.fifo",
        "BRIDGE_LISTEN": f"127.0.0.1:{port}", "BRIDGE_EVENT_SETUP_ID": "1",
        "BRIDGE_API_KEYS": KEY, "BRIDGE_FORWARD_TIMEOUT_MS": "90000",
        "BRIDGE_BATCH": args.batch, "BRIDGE_MAX_BUFFERED_BYTES": str(256 << 20),
        "BRIDGE_SHUTDOWN_TIMEOUT_S": "1", "RUST_LOG": "warn",
        "AWS_ENDPOINT_URL": f"http://{FAKE}", "AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "held", "AWS_SECRET_ACCESS_KEY": "held",
    })
    bridge = subprocess.Popen([os.path.join(RELEASE, "webhook-sqs-bridge")], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_listening(int(FAKE.split(":")[1]))
        wait_listening(port)
        time.sleep(1)  # start-up work (readiness probe) settles before the baseline
        baseline = rss_mib(bridge.pid)
        size = args.kib * 1024
        bodies = []
        for i in range(args.events):
            head = json.dumps({"msg_id": f"held-{i}", "event_type": 5})[:-1]
            bodies.append((head + ', "pad": "' + "x" * (size - len(head) - 12) + '"}').encode())
        held_bytes = sum(len(b) for b in bodies)
        for body in bodies:
            threading.Thread(target=post, args=(port, body), daemon=True).start()
        deadline = time.monotonic() + 60
        while metric(port, "bridge_buffered_body_bytes") < held_bytes:
            if time.monotonic() > deadline:
                raise RuntimeError("the bridge never held every body")
            time.sleep(0.1)
        time.sleep(1)  # batch calls built and sent
        rss = rss_mib(bridge.pid)
        grown = (rss - baseline) * 1024 * 1024
        print(f"batching {args.batch}: {args.events} bodies of {args.kib} KiB held "
              f"({held_bytes / 2**20:.1f} MiB): RSS {baseline:.0f} -> {rss:.0f} MiB, "
              f"{grown / held_bytes:.2f} bytes of memory per byte held")
    finally:
        bridge.send_signal(signal.SIGKILL)
        bridge.wait()
        fake.send_signal(signal.SIGINT)
        fake.wait(timeout=10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
