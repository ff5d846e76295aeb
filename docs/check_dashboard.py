#!/usr/bin/env python3
"""Check docs/grafana-dashboard.json against the bridge's metrics.

    python3 docs/check_dashboard.py [--promtool]

Checks that every query (panels and template variables) uses only the bridge's metric
names, documented label names and label values; that counters and histogram series are
only read through rate(), gauges never; that every range is $__rate_interval; that
histogram_quantile aggregates by `le`; that every metric is shown somewhere; that panel
ids are unique; and that docs/DASHBOARD.md has a section for every panel. With
--promtool (and promtool on PATH) it also has promtool parse every expression.
Exits 1 on any problem.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))

COUNTERS = {
    "bridge_webhook_requests_total",
    "bridge_auth_failures_total",
    "bridge_sqs_errors_total",
    "bridge_sqs_entry_retries_total",
    "bridge_dedup_conflicts_total",
    "bridge_spooled_events_total",
    "bridge_spool_drained_events_total",
    "bridge_spool_corrupt_records_total",
    "bridge_spool_refused_events_total",
    "bridge_connections_refused_total",
    "bridge_sqs_throttled_total",
    "bridge_event_memory_hits_total",
    "bridge_event_memory_errors_total",
    "bridge_event_memory_unavailable_events_total",
    "bridge_event_memory_evictions_total",
}
GAUGES = {
    "bridge_forwards_in_flight",
    "bridge_max_in_flight",
    "bridge_buffered_body_bytes",
    "bridge_max_buffered_body_bytes",
    "bridge_ready",
    "bridge_dedup_remembered_events",
    "bridge_build_info",
    "bridge_spool_events",
    "bridge_spool_bytes",
    "bridge_spool_oldest_event_age_seconds",
    "bridge_open_connections",
    "bridge_sqs_concurrency_limit",
    "bridge_event_memory_records",
}
HISTOGRAMS = {
    "bridge_webhook_request_duration_seconds",
    "bridge_sqs_call_duration_seconds",
    "bridge_sqs_batch_size",
    "bridge_event_memory_call_duration_seconds",
}
RATED = COUNTERS | {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")}
METRICS = RATED | GAUGES

LABEL_VALUES = {
    "outcome": {"accepted", "spooled", "unauthorized", "forbidden", "invalid", "too_large", "timeout",
                "overloaded", "shutting_down", "rejected", "unavailable"},
    "reason": {"missing", "duplicate_header", "empty_header", "wrong_api_key", "wrong_signature",
               "raw_secret_refused", "not_allowed", "per_source_limit"},
    "action": {"SendMessage", "SendMessageBatch", "GetQueueAttributes", "refused", "forwarded"},
    "result": {"duplicate", "conflict", "takeover"},
    "operation": {"claim", "take_over", "sent", "spooled", "probe"},
}
LABELS = set(LABEL_VALUES) | {"code", "version", "le", "job", "instance"}

FUNCTIONS = {"sum", "max", "min", "avg", "count", "rate", "increase", "histogram_quantile",
             "vector", "label_values", "clamp_min", "clamp_max", "abs", "topk", "bottomk"}
KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
            "unless", "bool", "offset"}

MATCHER = re.compile(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"')
GROUPING = re.compile(r'\b(by|without|on|ignoring|group_left|group_right)\s*\(([^)]*)\)')
IDENT = re.compile(r'[A-Za-z_:][\w:]*')


def check_expr(where, expr, used, problems):
    def bad(msg):
        problems.append(f"{where}: {msg}\n    {expr!r}")

    for label, op, value in MATCHER.findall(expr):
        if label not in LABELS:
            bad(f"unknown label {label!r}")
        elif label in LABEL_VALUES and "$" not in value:
            alternatives = value.split("|") if op in ("=~", "!~") else [value]
            for v in alternatives:
                if v not in LABEL_VALUES[label]:
                    bad(f"unknown {label} value {v!r}")
    for _, labels in GROUPING.findall(expr):
        for label in filter(None, (l.strip() for l in labels.split(","))):
            if label not in LABELS:
                bad(f"unknown label {label!r} in grouping")

    for rng in re.findall(r'\[([^\]]*)\]', expr):
        if rng != "$__rate_interval":
            bad(f"range [{rng}] is not [$__rate_interval]")
    for grouping in re.findall(r'histogram_quantile\s*\(\s*[\d.]+\s*,\s*sum\s+by\s*\(([^)]*)\)', expr):
        if "le" not in (l.strip() for l in grouping.split(",")):
            bad("histogram_quantile over a sum that drops `le`")
    if "histogram_quantile" in expr and "_bucket" not in expr:
        bad("histogram_quantile without _bucket series")

    # What is left once matchers, ranges and groupings are gone: functions, keywords,
    # numbers and metric names.
    bare = re.sub(r'\{[^}]*\}', ' ', expr)
    bare = re.sub(r'\[[^\]]*\]', ' ', bare)
    bare = GROUPING.sub(' ', bare)
    for m in IDENT.finditer(bare):
        name = m.group(0)
        following = bare[m.end():].lstrip()
        if following.startswith("(") and name not in KEYWORDS:
            if name not in FUNCTIONS:
                bad(f"unexpected function {name!r}")
            continue
        if name in KEYWORDS or re.fullmatch(r'[\d.e]+', name):
            continue
        if name not in METRICS:
            bad(f"{name!r} is not a bridge metric")
            continue
        used.add(name)
        inside_rate = re.search(r'\b(rate|increase)\s*\(\s*$', bare[:m.start()]) is not None
        if name in RATED and not inside_rate and not where.startswith("variable"):
            bad(f"{name} read without rate()")
        if name in GAUGES and inside_rate:
            bad(f"rate() of gauge {name}")


def promtool_check(exprs, problems):
    promtool = shutil.which("promtool")
    if not promtool:
        problems.append("--promtool: promtool is not on PATH")
        return
    rules = []
    for i, (where, expr) in enumerate(exprs):
        if where.startswith("variable"):
            continue
        concrete = (expr.replace("$__rate_interval", "1m")
                    .replace("$job", ".*").replace("$instance", ".*"))
        rules.append({"record": f"check:expr_{i}", "expr": concrete})
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as f:
        # JSON is valid YAML.
        json.dump({"groups": [{"name": "dashboard", "rules": rules}]}, f)
    try:
        run = subprocess.run([promtool, "check", "rules", f.name], capture_output=True, text=True)
        if run.returncode != 0:
            problems.append("promtool:\n" + run.stdout + run.stderr)
    finally:
        os.unlink(f.name)


def main():
    with open(os.path.join(HERE, "grafana-dashboard.json")) as f:
        dashboard = json.load(f)
    with open(os.path.join(HERE, "DASHBOARD.md")) as f:
        doc_headings = {l[4:].strip() for l in f if l.startswith("### ")}

    problems, used, exprs, ids = [], set(), [], set()
    # The names above must be the ones the code registers (src/telemetry.rs `metric`).
    with open(os.path.join(HERE, "..", "src", "telemetry.rs")) as f:
        in_code = set(re.findall(r'pub const \w+: &str = "(bridge_\w+)";', f.read()))
    declared = COUNTERS | GAUGES | HISTOGRAMS
    if in_code != declared:
        problems.append(f"metric names differ from src/telemetry.rs: only in code {sorted(in_code - declared)}, "
                        f"only here {sorted(declared - in_code)}")
    panels = []
    for p in dashboard["panels"]:
        panels.append(p)
        panels.extend(p.get("panels", []))
    for p in panels:
        if p["id"] in ids:
            problems.append(f"duplicate panel id {p['id']}")
        ids.add(p["id"])
        if p["type"] == "row":
            continue
        where = f"panel {p['title']!r}"
        if p.get("datasource", {}).get("uid") != "${datasource}":
            problems.append(f"{where}: datasource is not ${{datasource}}")
        if p["title"] not in doc_headings:
            problems.append(f"{where}: no '### {p['title']}' section in DASHBOARD.md")
        if not p.get("targets"):
            problems.append(f"{where}: no query")
        for t in p.get("targets", []):
            exprs.append((f"{where} {t['refId']}", t["expr"]))
    for v in dashboard["templating"]["list"]:
        if v["type"] == "query":
            q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
            exprs.append((f"variable {v['name']}", q))

    for where, expr in exprs:
        label_values = re.fullmatch(r'label_values\((.*),\s*(\w+)\s*\)', expr)
        if label_values:
            expr, label = label_values.groups()
            if label not in LABELS:
                problems.append(f"{where}: unknown label {label!r}")
        check_expr(where, expr, used, problems)
    unused = {m for m in METRICS if m not in used}
    # A histogram counts as shown when any of its series is.
    unused -= {h + s for h in HISTOGRAMS for s in ("_bucket", "_sum", "_count")
               if any(h + x in used for x in ("_bucket", "_sum", "_count"))}
    for m in sorted(unused):
        problems.append(f"metric {m} is on no panel")
    if "--promtool" in sys.argv[1:]:
        promtool_check(exprs, problems)

    for p in problems:
        print("FAIL", p)
    print(f"{len(panels)} panels, {len(exprs)} queries, {len(used)} metric series used: "
          f"{'FAILED' if problems else 'ok'}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
