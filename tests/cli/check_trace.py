#!/usr/bin/python3
"""Checks a trace written by `wafermesh generate --trace` against the run's HDF5 results.

usage: check_trace.py TRACE.json RESULTS.h5

Every check prints one line, "ok - ..." or "FAIL - ...", and the exit code is the number of failures.
  * the file is trace-event JSON: a traceEvents array of M, X and C events, ts and ts + dur in
    microseconds equal to the integer cycles in args at the clock the trace names, rounded to the
    nanosecond;
  * spans nest on every track: a span that starts inside another ends inside it;
  * on the layer-region tracks every layer span holds its phase spans, which tile it with no gap;
  * per position and layer, the leaf spans (phases, and a GEMV's or GEMM's multiply-accumulate and
    reduction) summed by category give the layer span's own compute / allreduce / kv cycles, and
    over the decoded positions their means are exactly the per-layer table's columns;
  * the positions track holds one span per row of the tokens table with its cycles;
  * every traced PE's compute, stall and transfer spans add up to its per-PE map's compute,
    stall and injection cycles, and end at its clock.
"""
import json
import sys
from collections import defaultdict

import h5py

fails = 0


def ok(msg):
    print("ok - " + msg)


def bad(msg):
    global fails
    fails += 1
    print("FAIL - " + msg)


trace_path, h5_path = sys.argv[1], sys.argv[2]
doc = json.load(open(trace_path))
events = doc["traceEvents"]
clock = doc["otherData"]["time"]
cycles_per_us = float(clock.split("pe.clock_ghz = ")[1].split()[0]) * 1e3

# --- format
kinds = defaultdict(int)
for e in events:
    kinds[e["ph"]] += 1
if set(kinds) <= {"M", "X", "C"} and kinds["X"] > 0 and kinds["M"] > 0:
    ok("event kinds %s" % dict(kinds))
else:
    bad("unexpected event kinds %s" % dict(kinds))
spans = [e for e in events if e["ph"] == "X"]
def ns(cycles):
    return round(cycles * 1000 / cycles_per_us)


wrong_time = [e for e in spans
              if round(e["ts"] * 1000) != ns(e["args"]["start_cycle"])
              or round((e["ts"] + e["dur"]) * 1000) != ns(e["args"]["start_cycle"] + e["args"]["cycles"])]
if not wrong_time:
    ok("%d spans: ts and ts + dur are their cycles at %.1f cycles/us, in whole ns" % (len(spans), cycles_per_us))
else:
    bad("%d spans whose ts/dur differ from their cycles, e.g. %s" % (len(wrong_time), wrong_time[0]))

# --- nesting on every track (exact, in cycles)
tracks = defaultdict(list)
for e in spans:
    tracks[(e["pid"], e["tid"])].append(e)
broken = []
for key, evs in tracks.items():
    evs.sort(key=lambda e: (e["args"]["start_cycle"], -e["args"]["cycles"]))
    stack = []
    for e in evs:
        a = e["args"]["start_cycle"]
        b = a + e["args"]["cycles"]
        while stack and stack[-1][1] <= a:
            stack.pop()
        if stack and b > stack[-1][1]:
            broken.append((key, e["name"], a, b, stack[-1]))
        stack.append((a, b, e["name"]))
if not broken:
    ok("spans nest on all %d tracks" % len(tracks))
else:
    bad("%d spans overlap their parent, e.g. %s" % (len(broken), broken[0]))

names = {}
for e in events:
    if e["ph"] == "M" and e["name"] == "process_name":
        names[e["pid"]] = e["args"]["name"]
pid_of = {v: k for k, v in names.items()}
regions_pid, wafer_pid = pid_of.get("layer regions"), pid_of.get("wafer (virtual time)")
if regions_pid is None or wafer_pid is None:
    bad("no 'layer regions' or 'wafer (virtual time)' process: %s" % names)
    sys.exit(fails)

# --- layers: phases tile the layer, categories add up to the layer's figures
region_spans = [e for e in spans if e["pid"] == regions_pid]
layers = [e for e in region_spans if e["cat"] == "layer"]
leaf_cats = {"compute", "allreduce", "kv"}
phase_cats = {"compute", "allreduce", "kv", "gemv"}
per = defaultdict(lambda: defaultdict(int))      # (position, layer) -> category -> cycles of leaves
phases = defaultdict(list)                       # (position, layer) -> [(start, end)] of phases
for e in region_spans:
    key = (e["args"]["position"], e["args"].get("layer", -1))
    if e["cat"] in leaf_cats:
        per[key][e["cat"]] += e["args"]["cycles"]
    if e["cat"] in phase_cats and e["name"] not in ("multiply-accumulate", "reduction"):
        phases[key].append((e["args"]["start_cycle"], e["args"]["start_cycle"] + e["args"]["cycles"]))
mismatch, gaps = [], []
for e in layers:
    key = (e["args"]["position"], e["args"]["layer"])
    got = per[key]
    want = {"compute": e["args"]["compute_cycles"], "allreduce": e["args"]["allreduce_cycles"],
            "kv": e["args"]["kv_cycles"]}
    if any(got[c] != want[c] for c in want) or sum(want.values()) != e["args"]["cycles"]:
        mismatch.append((key, dict(got), want, e["args"]["cycles"]))
    ph = sorted(phases[key])
    a = e["args"]["start_cycle"]
    for s, t in ph:
        if s != a:
            gaps.append((key, a, s))
        a = t
    if a != e["args"]["start_cycle"] + e["args"]["cycles"]:
        gaps.append((key, a, "end"))
if layers and not mismatch:
    ok("%d layer spans: leaves by category add up to the layer's compute/allreduce/kv and its cycles" % len(layers))
else:
    bad("%d layer spans disagree with their leaves, e.g. %s" % (len(mismatch), mismatch[:1]))
if layers and not gaps:
    ok("the phases of every layer tile it without gaps")
else:
    bad("phases leave gaps: %s" % gaps[:3])

# --- against the results file
h5 = h5py.File(h5_path, "r")
tok = h5["generate/tokens/table"][()]
lay = h5["generate/layers/table"][()]
phase = [p.decode() if isinstance(p, bytes) else str(p) for p in tok["phase"]]
pos_spans = sorted((e for e in spans if e["pid"] == wafer_pid and e["cat"] == "position"),
                   key=lambda e: e["args"]["position"])
if [e["args"]["cycles"] for e in pos_spans] == [int(c) for c in tok["cycles"]]:
    ok("%d position spans carry the tokens table's cycles" % len(pos_spans))
else:
    bad("position spans %s vs tokens table %s" % ([e["args"]["cycles"] for e in pos_spans], list(tok["cycles"])))
decode = [i for i, p in enumerate(phase) if p == "decode"]
n = len(decode) if decode else 1
chosen = decode if decode else [len(phase) - 1]
table_bad = []
for row in lay:
    l = int(row["layer"])
    for cat, col in (("compute", "compute_cycles"), ("allreduce", "allreduce_cycles"), ("kv", "kv_cycles")):
        total = sum(per[(p, l)][cat] for p in chosen)
        if total / n != float(row[col]):  # the table divides the same integer sum the same way
            table_bad.append((l, cat, total / n, float(row[col])))
    if sum(sum(per[(p, l)].values()) for p in chosen) / n != float(row["total_cycles"]):
        table_bad.append((l, "total", float(row["total_cycles"])))
if not table_bad:
    ok("per layer, the spans of the %d decoded positions give the per-layer table exactly (%d layers)" % (n, len(lay)))
else:
    bad("per-layer table differs from the spans: %s" % table_bad[:4])

# --- traced PEs against the per-PE maps
pe_pids = [p for p, nm in names.items() if nm.startswith("PEs ")]
if pe_pids:
    maps = h5["generate/pe_maps"]
    threads = {}
    for e in events:
        if e["ph"] == "M" and e["name"] == "thread_name" and e["pid"] in pe_pids:
            threads[(e["pid"], e["tid"])] = e["args"]["name"]
    pe_bad, checked = [], 0
    for (pid, tid), nm in threads.items():
        x, y = [int(v) for v in nm[len("PE ("):-1].split(", ")]
        mine = tracks.get((pid, tid), [])
        sums = defaultdict(int)
        for e in mine:
            sums[e["cat"]] += e["args"]["cycles"]
        end = max((e["args"]["start_cycle"] + e["args"]["cycles"] for e in mine), default=0)
        want = (int(maps["compute_cycles"][y, x]), int(maps["stall_cycles"][y, x]), int(maps["inject_cycles"][y, x]),
                int(maps["clock_cycles"][y, x]))
        got = (sums["compute"], sums["stall"], sums["transfer"], end)
        checked += 1
        if got != want:
            pe_bad.append((x, y, got, want))
    if checked and not pe_bad:
        ok("%d traced PEs: compute, stall, transfer spans equal their per-PE maps and end at their clocks" % checked)
    else:
        bad("traced PEs differ from the maps (got compute, stall, transfer, end; want ...): %s" % pe_bad[:3])
sys.exit(fails)
