#!/usr/bin/env bash
# usage: test_slurm.sh WAFERMESH_BINARY SOURCE_DIR
# Brings up a real single-node SLURM on this machine (slurm-wlm + munge, configured for
# localhost in a temporary directory; needs root), submits launch/slurm/sweep.sbatch with
# `sbatch --wait` (2 tasks started by srun --mpi=pmix), then as a 2-task job array, and checks the
# HDF5 files they wrote. The daemons are always torn down. Fails (never skips) when something is
# missing. Prints "ok - ..." / "FAIL - ..."
set -u
bin=$1 src=$2
py=/usr/bin/python3
here=$(cd "$(dirname "$0")" && pwd)
tmp=$(mktemp -d)
fails=0
ok() { echo "ok - $*"; }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
# shellcheck source=local_slurm.sh
source "$here/local_slurm.sh"
cleanup() { slurm_down; rm -rf "$tmp"; }
trap cleanup EXIT
trap 'exit 1' INT TERM

$py -c "import h5py" 2>/dev/null || { bad "$py cannot import h5py (python3-h5py)"; exit 1; }
t0=$(date +%s.%N)
# A second attempt (fresh directory, fresh ports) when the first cluster does not come up: the
# first attempt's reason is printed either way; two failures fail the test.
up=no
for attempt in 1 2; do
  # not in a subshell: slurm_up exports SLURM_CONF
  if slurm_up "$tmp/slurm$attempt" >"$tmp/up$attempt.txt" 2>&1; then up=yes; break; fi
  echo "# attempt $attempt: $(cat "$tmp/up$attempt.txt")"
  slurm_down
done
if [ $up = yes ]; then
  ok "single-node SLURM up ($(timeout 10 sinfo -h -N -o '%N %c CPUs %t'), attempt $attempt, $(awk "BEGIN{printf \"%.1f\", $(date +%s.%N) - $t0}") s)"
else
  bad "single-node SLURM did not come up in two attempts"; exit 1
fi
mpis=$(timeout 20 srun --mpi=list 2>&1)
grep -q pmix <<<"$mpis" && ok "srun offers the pmix MPI plugin" || bad "srun --mpi=list lacks pmix: $mpis"

work=$tmp/work
mkdir -p "$work" && cd "$work"
cat >study.ini <<'INI'
command = bench gemm
ranks = 1, 2
[vary]
algo = meshgemm, cannon
P = 4, 5
[fixed]
M = 40
K = 40
N = 20
compare_local = false
mesh.width_pes = 10
mesh.height_pes = 12
INI

# --- one batch job, 2 tasks
if timeout 120 sbatch --wait --quiet --ntasks=2 --time=5 -o job.out \
     --export=ALL,STUDY=study.ini,OUTPUT=res/study.h5,WAFERMESH="$bin",SWEEP_ARGS="--heartbeat_s 0" \
     "$src/launch/slurm/sweep.sbatch"; then
  ok "sbatch --wait: job finished with exit code 0"
else
  bad "sbatch --wait failed: $(tail -5 job.out 2>/dev/null)$(slurm_logs "$tmp/slurm$attempt")"
fi
grep -q "2 task(s)" job.out && [ "$(grep -c '^\[[0-9]/8\] .*: ok' job.out)" -eq 8 ] \
  && ok "job output: 2 tasks, 8 progress lines" || bad "job output: $(cat job.out)"
[ -f res/study.h5 ] && [ ! -e res/study.h5.partial ] && ok "res/study.h5 written complete" || bad "files: $(ls res 2>&1)"
h5dump -H res/study.h5 >/dev/null 2>&1 && ok "h5dump reads res/study.h5" || bad "h5dump cannot read res/study.h5"
$py - res/study.h5 <<'PY' || bad "contents of res/study.h5"
import sys, h5py
def s(v): return v.decode() if isinstance(v, bytes) else str(v)
f = h5py.File(sys.argv[1], "r")
err = []
if int(f.attrs["mpi_ranks"]) != 2: err.append(f"mpi_ranks {f.attrs['mpi_ranks']}, want 2 (srun started one rank?)")
if s(f.attrs["complete"]) != "yes": err.append("not complete")
def visit(name, obj):
    if isinstance(obj, h5py.Dataset) and "units" not in obj.attrs: err.append("no units on " + name)
f.visititems(visit)
keys = sorted(s(g.attrs["key"]) for g in f["points"].values())
want = sorted(f"algo={a} P={p} ranks={r}" for a in ["meshgemm", "cannon"] for p in [4, 5] for r in [1, 2])
if keys != want: err.append(f"keys {keys}")
for g in f["points"].values():
    if s(g.attrs["status"]) != "ok": err.append(f"{s(g.attrs['key'])}: {s(g.attrs['status'])}")
    if int(g.attrs["rank_grid_x"]) * int(g.attrs["rank_grid_y"]) != int(g.attrs["ranks"]): err.append("rank grid")
t = f["sweep/gemm/table"][:]
for a in [b"meshgemm", b"cannon"]:
    for P in [4, 5]:
        r = t[(t["algo"] == a) & (t["P"] == P)]
        if len(r) != 2 or r["total_cycles"][0] != r["total_cycles"][1] or r["total_cycles"][0] <= 0:
            err.append(f"{a} P={P}: cycles {r['total_cycles']} at ranks {r['ranks']}")
if err:
    print("\n".join(err)); sys.exit(1)
print("ok - res/study.h5: 8 points at 1 and 2 ranks under srun, units on every dataset, same cycles at both")
PY

# --- the job-array form: 2 array tasks of 1 task each, one shard of the study each
grep -v '^ranks' study.ini >arr.ini
if timeout 120 sbatch --wait --quiet --array=0-1 --ntasks=1 --time=5 -o array-%a.out \
     --export=ALL,STUDY=arr.ini,WAFERMESH="$bin",SWEEP_ARGS="--heartbeat_s 0" \
     "$src/launch/slurm/sweep.sbatch" 2>array.err; then
  ok "sbatch --wait --array=0-1 finished"
else
  bad "array job failed: $(cat array.err array-*.out 2>/dev/null | tail -5)$(slurm_logs "$tmp/slurm$attempt")"
fi
$py - results/arr.shard0of2.h5 results/arr.shard1of2.h5 <<'PY' || bad "array shards: $(ls results 2>&1)"
import sys, h5py
def s(v): return v.decode() if isinstance(v, bytes) else str(v)
k = [sorted(s(g.attrs["key"]) for g in h5py.File(p, "r")["points"].values()) for p in sys.argv[1:]]
want = sorted(f"algo={a} P={p} ranks=1" for a in ["meshgemm", "cannon"] for p in [4, 5])
if sorted(k[0] + k[1]) != want or not k[0] or not k[1]:
    print(f"shards {k}, want a split of {want}"); sys.exit(1)
print(f"ok - job array: shard 0 {k[0]}, shard 1 {k[1]}")
PY

slurm_down
left=$(for p in $(pgrep -x slurmctld; pgrep -x slurmd; pgrep -x munged; pgrep slurmstepd); do
         { tr '\0' '\n' </proc/$p/environ; } 2>/dev/null | grep -q "$tmp" && echo "$p"; done)
[ -z "$left" ] && ok "daemons torn down" || bad "daemons left running: $left"
echo "test_slurm: $fails failure(s), $(awk "BEGIN{printf \"%.0f\", $(date +%s.%N) - $t0}") s"
[ "$fails" -eq 0 ]
