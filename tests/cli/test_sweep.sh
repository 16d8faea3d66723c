#!/usr/bin/env bash
# usage: test_sweep.sh WAFERMESH_BINARY SOURCE_DIR MPIEXEC
# End-to-end checks of `wafermesh sweep`: one-line errors for bad studies, the HDF5 file (every
# point, units on every dataset, provenance), rank-count invariance of the swept figures, the same
# figures as the command run on its own, resume after a kill -9, progress and heartbeat lines, the
# lock against two sweeps on one file. Prints "ok - ..." / "FAIL - ..."; fails if any check failed.
set -u
bin=$1 src=$2 mpiexec=$3
py=/usr/bin/python3   # Debian's python3-h5py lives there
. "$(dirname "$0")/harness.sh"
cd "$tmp"
$py -c "import h5py, numpy" 2>/dev/null || { bad "$py cannot import h5py (Debian package python3-h5py)"; exit 1; }
command -v h5dump >/dev/null || { bad "h5dump missing (Debian package hdf5-tools)"; exit 1; }

expect_error() {  # NAME PATTERN -- command...: exit 2, one stderr line matching PATTERN
  local name=$1 pat=$2; shift 3
  "$@" >out.txt 2>err.txt
  local rc=$? lines; lines=$(grep -vc '^$' err.txt)
  if [ "$rc" -ne 2 ]; then bad "$name: exit $rc, want 2 ($(head -c 300 err.txt))"
  elif [ "$lines" -ne 1 ]; then bad "$name: $lines stderr lines: $(head -c 400 err.txt)"
  elif ! grep -qE "$pat" err.txt; then bad "$name: '$(cat err.txt)' lacks /$pat/"
  else ok "$name: $(cat err.txt)"; fi
}

# --- bad studies: one line, exit 2, no results file
printf 'command = bench gemm\n[vary]\nP =\n' >empty.ini
printf 'command = bench gemm\n[vary]\nbogus_option = 1,2\n' >unknown_opt.ini
printf 'command = frobnicate\n' >unknown_cmd.ini
printf 'command = bench gemm\nspeed = 3\n' >unknown_key.ini
printf 'command = bench gemm\n[sweeep]\nP = 4\n' >unknown_section.ini
printf "command = bench gemm\nranks = 1,3\n" >too_many_ranks.ini
printf 'command = info\n' >info.ini
printf '[vary]\nP = 4\n' >no_command.ini
printf 'command = bench gemm\n[vary]\nP = 4,8\n[fixed]\nP = 4\n' >twice.ini
printf 'command = bench gemm\n[vary]\nP = 4\n[fixed]\noutput = x.h5\n' >output.ini
printf 'command = bench gemm\n[vary]\nP = 4, 8000\n[fixed]\nmesh.width_pes = 16\nmesh.height_pes = 16\ncompare_local = false\n' >toolarge.ini
expect_error "empty list" "empty.ini.*line 3.*P has an empty list" -- mpi 1 "$bin" sweep --study empty.ini
expect_error "unknown option" "point 1 .*bogus_option" -- mpi 1 "$bin" sweep --study unknown_opt.ini
expect_error "unknown command" "unknown command 'frobnicate'" -- mpi 1 "$bin" sweep --study unknown_cmd.ini
expect_error "unknown top key" "unknown_key.ini.*line 2.*unknown key 'speed'" -- mpi 1 "$bin" sweep --study unknown_key.ini
expect_error "unknown section" "unknown section \[sweeep\]" -- mpi 1 "$bin" sweep --study unknown_section.ini
expect_error "ranks above the job" "ranks = 3 exceeds the job's 2 rank" -- mpi 2 "$bin" sweep --study too_many_ranks.ini
expect_error "unsweepable command" "command 'info' writes no results table" -- mpi 1 "$bin" sweep --study info.ini
expect_error "no command" "no 'command = \.\.\.'" -- mpi 1 "$bin" sweep --study no_command.ini
expect_error "key twice" "key 'P' given twice" -- mpi 1 "$bin" sweep --study twice.ini
expect_error "output in study" "option 'output' cannot be set by a study" -- mpi 1 "$bin" sweep --study output.ini
expect_error "missing study" "cannot read study file 'nope.ini'" -- mpi 1 "$bin" sweep --study nope.ini
expect_error "no --study" "option --study is required" -- "$bin" sweep
expect_error "region too large at run time" "point 2 \(P=8000 ranks=2\).*8000 x 8000.*16 x 16 mesh" -- \
  mpi 2 "$bin" sweep --study toolarge.ini --output bad/toolarge.h5
[ -e bad/toolarge.h5 ] && bad "failed sweep left bad/toolarge.h5 looking finished" \
  || ok "failed sweep left no finished-looking file ($(ls bad 2>/dev/null | tr '\n' ' '))"
ls ./*.h5 results 2>/dev/null | grep -q . && bad "a bad study wrote files: $(ls ./*.h5 results 2>/dev/null)" \
  || ok "bad studies wrote no results file"

# --- a small GEMM study on 1 and 2 ranks
cat >gemm.ini <<'INI'
command = bench gemm
description = test study
ranks = 1, 2
[vary]
algo = meshgemm, cannon   # two algorithms
P = 3, 4
[fixed]
M = 24
K = 36
N = 12
compare_local = false
mesh.width_pes = 12
mesh.height_pes = 10
INI
if mpi 2 "$bin" sweep --study gemm.ini --output res/gemm.h5 --heartbeat_s 0 >gemm.out 2>gemm.err; then
  ok "gemm study ran"
else bad "gemm study: $(cat gemm.err)"; fi
n=$(grep -cE '^\[[0-9]+/8\] algo=(meshgemm|cannon) P=[34] ranks=[12]: ok, .* \| elapsed [0-9:]+, ~[0-9:]+ left' gemm.out)
[ "$n" -eq 8 ] && ok "8 progress lines with elapsed and remaining" || bad "progress lines: $n of 8: $(cat gemm.out)"
[ -f res/gemm.h5 ] && [ ! -e res/gemm.h5.partial ] && [ ! -e res/gemm.h5.lock ] \
  && ok "complete file under its final name, no .partial or .lock left" || bad "files: $(ls res)"
h5dump -H res/gemm.h5 >/dev/null 2>&1 && ok "h5dump reads the file" || bad "h5dump cannot read res/gemm.h5"
# A point's figures, computed by the command on its own (not by the sweep), at 1 rank.
mpi 1 "$bin" bench gemm --algo cannon --P 4 --M 24 --K 36 --N 12 --compare_local=false --mesh.width_pes 12 \
  --mesh.height_pes 10 --output direct.h5 >/dev/null 2>&1 || bad "direct bench gemm failed"
$py - res/gemm.h5 direct.h5 <<'PY' || bad "gemm.h5 contents (see above)"
import sys, h5py, numpy as np
f = h5py.File(sys.argv[1], "r"); d = h5py.File(sys.argv[2], "r")
err = []
def s(v): return v.decode() if isinstance(v, bytes) else str(v)
def need(c, what):
    if not c: err.append(what)
need(s(f.attrs["complete"]) == "yes", "complete attribute")
for a in ["wafermesh_version", "git_commit", "command_line", "host", "start_time", "mpi_ranks", "study_text", "study_signature"]:
    need(a in f.attrs, "root attribute " + a)
need(len(f["points"]) == 8 and f.attrs["points_done"] == 8, "8 points")
# units on every dataset
def visit(name, obj):
    if isinstance(obj, h5py.Dataset) and "units" not in obj.attrs: err.append("no units on " + name)
f.visititems(visit)
keys = sorted(s(f["points"][p].attrs["key"]) for p in f["points"])
want = sorted(f"algo={a} P={p} ranks={r}" for a in ["meshgemm", "cannon"] for p in [3, 4] for r in [1, 2])
need(keys == want, f"point keys {keys}")
for p in f["points"]:
    g = f["points"][p]
    need(s(g.attrs["status"]) == "ok", p + " status")
    need(g.attrs["rank_grid_x"] * g.attrs["rank_grid_y"] == g.attrs["ranks"], p + " rank grid")
    need(s(g["parameters/M"].attrs["value"]) == "24" and s(g["parameters/M"].attrs["units"]) == "rows", p + " parameters")
    need(g["gemm/table"].shape == (1,), p + " one table row")
t = f["sweep/gemm/table"][:]
need(len(t) == 8, "summary rows")
# The wafer's figures do not depend on the rank count.
for a in [b"meshgemm", b"cannon"]:
    for P in [3, 4]:
        rows = t[(t["algo"] == a) & (t["P"] == P)]
        need(len(rows) == 2 and sorted(rows["ranks"]) == [1, 2], f"{a} {P} both rank counts")
        for col in ["total_cycles", "compute_cycles", "comm_cycles", "max_hops", "peak_sram_bytes", "noc_bytes"]:
            need(rows[col][0] == rows[col][1], f"{a} P={P} {col} differs between 1 and 2 ranks: {rows[col]}")
        need(rows["total_cycles"][0] > 0, "cycles > 0")
# ... and are what the command writes when run on its own.
dt = d["gemm/table"][:]
row = t[(t["algo"] == b"cannon") & (t["P"] == 4) & (t["ranks"] == 1)]
for col in ["total_cycles", "compute_cycles", "comm_cycles", "max_route_entries", "noc_bytes"]:
    need(row[col][0] == dt[col][0], f"{col}: sweep {row[col][0]} vs direct {dt[col][0]}")
pts = f["sweep/points/table"][:]
need(len(pts) == 8 and all(pts["point_wall_s"] > 0), "sweep/points wall times")
need(s(f["sweep/points/point_wall_s"].attrs["units"]) == "s", "wall units")
if err:
    print("\n".join(err)); sys.exit(1)
print("ok - gemm.h5: 8 points, units on every dataset, provenance, rank-invariant figures equal to the direct command's")
PY
# Running it again runs nothing.
mpi 2 "$bin" sweep --study gemm.ini --output res/gemm.h5 >again.out 2>&1
grep -q "8 already in res/gemm.h5" again.out && grep -q "nothing to run" again.out && ! grep -q '^\[' again.out \
  && ok "second run of a complete study runs nothing" || bad "second run: $(cat again.out)"
# A different [fixed] set must not be mixed into the same file.
sed 's/^M = 24/M = 48/' gemm.ini >gemm2.ini
expect_error "different study, same file" "holds study 'bench gemm --M=24.*not 'bench gemm --M=48" -- \
  mpi 2 "$bin" sweep --study gemm2.ini --output res/gemm.h5
# A live lock (this shell's pid on this host) stops a second writer.
echo "$(hostname) $$" >res/gemm2.h5.lock
expect_error "lock held" "another sweep .* is writing" -- mpi 2 "$bin" sweep --study gemm2.ini --output res/gemm2.h5
rm -f res/gemm2.h5.lock

# --- resume after kill -9, heartbeat, per-PE maps
cat >demo.ini <<'INI'
command = demo
ranks = 1, 2
[vary]
mesh.width_pes = 256, 320, 384
[fixed]
mesh.height_pes = 192
tile_bytes = 2048
shifts = 6
INI
mpi 2 "$bin" sweep --study demo.ini --output res/demo.h5 --heartbeat_s 0.05 >demo1.out 2>&1 &
pid=$!
# Kill the job once two points are in the file.
for _ in $(seq 600); do
  [ -f res/demo.h5.partial ] && [ "$($py -c "import h5py; print(h5py.File('res/demo.h5.partial','r').attrs['points_done'])" 2>/dev/null)" -ge 2 ] 2>/dev/null && break
  sleep 0.05
done
# A crash: every process this background job started (subshell, timeout, mpirun, the ranks) is
# killed with -9 by its id, the ranks first.
descendants() { local c; for c in $(pgrep -P "$1"); do descendants "$c"; echo "$c"; done; }
procs=$(descendants $pid)
for k in $procs; do kill -KILL "$k" 2>/dev/null; done
kill -KILL $pid 2>/dev/null; wait $pid 2>/dev/null
for k in $procs; do
  for _ in $(seq 100); do kill -0 "$k" 2>/dev/null && [ "$(awk '{print $3}' /proc/$k/stat 2>/dev/null)" != Z ] || break; sleep 0.05; done
done
[ ! -e res/demo.h5 ] && [ -f res/demo.h5.partial ] && ok "killed sweep left only res/demo.h5.partial" \
  || bad "after kill: $(ls res)"
grep -q "still running" demo1.out && ok "heartbeat lines while a point runs" || bad "no heartbeat: $(cat demo1.out)"
before=$($py -c "import h5py; f=h5py.File('res/demo.h5.partial','r'); print(len(f['points']))")
$py -c "import h5py; f=h5py.File('res/demo.h5.partial','r'); print(sorted((f['points'][p].attrs['key'], f['points'][p].attrs['start_time']) for p in f['points']))" >kept.txt \
  && ok "partial file readable after kill -9: $before point(s)" || bad "partial file unreadable after kill -9"
mpi 2 "$bin" sweep --study demo.ini --output res/demo.h5 --heartbeat_s 0 >demo2.out 2>&1 || bad "resume failed: $(cat demo2.out)"
ran=$(grep -c '^\[[0-9]/6\]' demo2.out)
grep -q "$before already in res/demo.h5.partial" demo2.out && [ "$ran" -eq $((6 - before)) ] \
  && ok "resume ran only the $ran missing point(s)" || bad "resume: before=$before ran=$ran: $(cat demo2.out)"
$py - res/demo.h5 kept.txt <<'PY' || bad "demo.h5 after resume"
import sys, h5py, ast
f = h5py.File(sys.argv[1], "r")
def s(v): return v.decode() if isinstance(v, bytes) else str(v)
kept = [(s(k), s(t)) for k, t in ast.literal_eval(open(sys.argv[2]).read())]
now = {s(f["points"][p].attrs["key"]): s(f["points"][p].attrs["start_time"]) for p in f["points"]}
err = []
if len(now) != 6 or s(f.attrs["complete"]) != "yes": err.append(f"{len(now)} points, complete={f.attrs['complete']}")
for k, t in kept:
    if now.get(k) != t: err.append(f"point {k} was run again ({t} -> {now.get(k)})")
t = f["sweep/demo/table"][:]
for w in [256, 320, 384]:
    for op in set(t["operation"]):
        r = t[(t["mesh.width_pes"] == w) & (t["operation"] == op)]
        if len(r) != 2 or r["virtual_cycles"][0] != r["virtual_cycles"][1]: err.append(f"W={w} {op}: {r['virtual_cycles']}")
for p in f["points"]:
    g = f["points"][p]
    w = int(g.attrs["mesh.width_pes"])
    m = g["demo/pe_maps/clock_cycles"]
    if m.shape != (192, w) or s(m.attrs["units"]) != "cycles" or m[:].max() == 0: err.append(f"{p} clock map {m.shape}")
    if g["demo/pe_maps/sram_peak_bytes"][:].min() < 2048: err.append(f"{p} SRAM map below the tile size")
# Maps written by 2 ranks equal those written by 1.
for w in [256, 320, 384]:
    ms = [f["points"][p]["demo/pe_maps/clock_cycles"][:] for p in f["points"] if int(f["points"][p].attrs["mesh.width_pes"]) == w]
    if len(ms) != 2 or not (ms[0] == ms[1]).all(): err.append(f"W={w}: per-PE clock maps differ between 1 and 2 ranks")
if err:
    print("\n".join(err)); sys.exit(1)
print("ok - demo.h5 after resume: 6 points, earlier points kept, maps H x W with units, identical at 1 and 2 ranks")
PY
[ ! -e res/demo.h5.partial ] && [ -z "$(ls res | grep tmp)" ] && ok "no .partial or temporary copies left" || bad "left: $(ls res)"

# --- SIGTERM (a SLURM time limit): the ranks die, the lock goes with them, the points stay
mpi 2 "$bin" sweep --study demo.ini --output res/term.h5 --heartbeat_s 0 >term.out 2>&1 &
pid=$!
for _ in $(seq 600); do
  [ -f res/term.h5.partial ] && [ "$($py -c "import h5py; print(h5py.File('res/term.h5.partial','r').attrs['points_done'])" 2>/dev/null)" -ge 1 ] 2>/dev/null && break
  sleep 0.05
done
ranks=$(for p in $(descendants $pid); do grep -q "sweep" /proc/$p/cmdline 2>/dev/null && [ "$(basename "$(readlink /proc/$p/exe)")" = wafermesh ] && echo "$p"; done)
[ -n "$ranks" ] || bad "no rank processes found to send SIGTERM to"
for k in $ranks; do kill -TERM "$k" 2>/dev/null; done
wait $pid 2>/dev/null
for k in $(descendants $pid) $ranks; do kill -KILL "$k" 2>/dev/null; done
[ -f res/term.h5.partial ] && [ ! -e res/term.h5.lock ] && [ ! -e res/term.h5 ] \
  && ok "SIGTERM to the ranks: lock removed, finished points kept in res/term.h5.partial" \
  || bad "after SIGTERM: $(ls res | tr '\n' ' ')"

echo "test_sweep: $fails failure(s)"
[ "$fails" -eq 0 ]
