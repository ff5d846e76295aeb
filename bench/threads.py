#!/usr/bin/env python3
"""Per thread, under the benchmark's load: CPU time spent running and time spent runnable
but waiting for a core, per event the fake SQS stored.

    bench/threads.py [--seconds 7] [--rounds 2] [--connections 64] [--skip-build] [ENV=VALUE ...]

Starts the same processes as bench/run.py (a fresh fake SQS each round, the bridge with batching, the
load generator), lets the load settle, then reads every thread's `/proc/PID/task/TID/
schedstat` (nanoseconds running, nanoseconds waiting on a run queue) and the fake's
stored-message count over a 3 s window. ENV=VALUE arguments are passed to the bridge
(for example BRIDGE_WORKERS=1), so variants can be compared in alternating rounds.

Which thread is the serial stage shows here: a thread whose running plus waiting time
per event is close to the time between events is never idle.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import run  # noqa: E402  (bench/run.py: the same build, fake, targets and load)

WINDOW = 3.0


def stored():
    with urllib.request.urlopen(f"http://{run.FAKE}/stats") as r:
        return json.load(r)["stored"]


def threads(pids):
    """(process label, thread name) -> (ns running, ns waiting), summed over same names."""
    out = {}
    for label, pid in pids.items():
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/comm") as f:
                    name = f.read().strip()
                with open(f"/proc/{pid}/task/{tid}/schedstat") as f:
                    running, waiting, _ = (int(x) for x in f.read().split())
            except (FileNotFoundError, ProcessLookupError):
                continue  # a thread that ended meanwhile
            key = (label, f"{name}[{tid}]")
            out[key] = (running, waiting)
    return out


def one_round(seconds, connections, extra):
    # A fresh fake per round: it drops repeated deduplication ids, as SQS does, and a
    # fresh bridge can reissue ids an earlier round used; the count here must be events.
    fake = subprocess.Popen([os.path.join(run.RELEASE, "examples", "fake_sqs"), run.FAKE],
                            stdout=subprocess.DEVNULL)
    run.wait_listening(int(run.FAKE.split(":")[1]), time.monotonic())
    bridge, _ = run.start("bridge", {"BRIDGE_BATCH": "true", **extra}, 18080)
    load = None
    try:
        time.sleep(0.3)
        load = subprocess.Popen(
            [os.path.join(run.RELEASE, "examples", "loadgen"), "--url",
             "http://127.0.0.1:18080/webhook", "--seconds", str(seconds), "--connections",
             str(connections), "--secret", run.SECRET],
            stdout=subprocess.PIPE, text=True)
        # The load generator signs its bodies before the clock starts; wait until the
        # fake is receiving, then a little more for the load to settle.
        start, deadline = stored(), time.monotonic() + 30
        while stored() - start < 1000:
            if time.monotonic() > deadline or load.poll() is not None:
                raise RuntimeError("the fake stored no events: is the bridge answering 2xx?")
            time.sleep(0.05)
        time.sleep(0.5)
        pids = {"bridge": bridge.pid, "fake": fake.pid, "loadgen": load.pid}
        s0, t0 = stored(), threads(pids)
        time.sleep(WINDOW)
        s1, t1 = stored(), threads(pids)
        load.wait(timeout=seconds + 30)
        events = s1 - s0
    finally:
        if load and load.poll() is None:
            load.kill()
        bridge.send_signal(signal.SIGTERM)
        bridge.wait(timeout=30)
        fake.send_signal(signal.SIGINT)
        fake.wait(timeout=10)
    rate = events / WINDOW
    print(f"{rate:,.0f} events/s ({1e6 / max(rate, 1):.1f} µs apart); per event: "
          "µs running / µs waiting for a core")
    for key in sorted(t1):
        if key not in t0:
            continue
        running = (t1[key][0] - t0[key][0]) / 1000 / max(events, 1)
        waiting = (t1[key][1] - t0[key][1]) / 1000 / max(events, 1)
        if running + waiting >= 0.05:
            print(f"  {key[0]:8} {key[1]:32} {running:6.1f} {waiting:6.1f}")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=7)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--skip-build", action="store_true")
    parser.add_argument("env", nargs="*", help="ENV=VALUE settings for the bridge")
    args = parser.parse_args()
    extra = dict(kv.split("=", 1) for kv in args.env)
    if not args.skip_build:
        print("building (release)...", file=sys.stderr)
        run.build()
    for _ in range(args.rounds):
        one_round(args.seconds, args.connections, extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
