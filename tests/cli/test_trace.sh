#!/usr/bin/env bash
# usage: test_trace.sh WAFERMESH_BINARY SOURCE_DIR MPIEXEC
# `--trace FILE.json` of generate, demo and the benches: the same file byte for byte at 1, 2 and 4
# ranks; generate's trace checked by tests/cli/check_trace.py against the run's HDF5 file (nesting,
# every layer's spans summing to the per-layer table, traced PEs equal to the per-PE maps); the
# benches' spans carry their tables' cycles; bad --trace / --trace_pes values are one line with
# exit code 2 (a model that does not fit: 3) and leave no file. Needs /usr/bin/python3 with h5py.
set -u
bin=$1 src=$2 mpiexec=$3
. "$(dirname "$0")/harness.sh"
py=/usr/bin/python3
cd "$src" || exit 1

# --- generate: a 5-token prompt (MeshGEMM prefill), then decoded tokens; PEs around a rank boundary
gen=(generate --model configs/models/stories260K.ini --config configs/laptop.ini --temperature 0 --steps 9
     --prompt "Once upon a time" --trace_pes 22,10,4,2)
for n in 1 2 4; do
  mpi "$n" "$bin" "${gen[@]}" --output "$tmp/g$n.h5" --trace "$tmp/g$n.json" >"$tmp/g$n.out" 2>"$tmp/g$n.err" \
    || bad "generate np $n failed: $(tail -3 "$tmp/g$n.err")"
done
grep -q "wrote $tmp/g1.json (trace:" "$tmp/g1.out" && ok "generate says it wrote the trace" \
  || bad "no 'wrote ... (trace' line: $(tail -3 "$tmp/g1.out")"
for n in 2 4; do
  cmp -s "$tmp/g1.json" "$tmp/g$n.json" && ok "generate trace identical byte for byte at 1 and $n ranks" \
    || bad "generate traces differ between 1 and $n ranks"
done
"$py" tests/cli/check_trace.py "$tmp/g1.json" "$tmp/g1.h5" > "$tmp/check.txt" 2>&1
rc=$?
sed 's/^/  /' "$tmp/check.txt"
[ "$rc" -eq 0 ] && ok "check_trace.py: the trace agrees with the results" || bad "check_trace.py: $rc failures"
# The trace changes no figure: the same run without it prints the same wafer figures.
mpi 2 "$bin" "${gen[@]:0:${#gen[@]}-2}" --output "" >"$tmp/plain.out" 2>/dev/null || bad "generate without trace failed"
fig() { grep -vE 'wall|placed in|^wrote|^$' "$1"; }
if cmp -s <(fig "$tmp/plain.out") <(fig "$tmp/g2.out"); then ok "tracing changes no printed figure"
else bad "figures differ with --trace: $(diff <(fig "$tmp/plain.out") <(fig "$tmp/g2.out") | head -5)"; fi

# --- demo and the benches: identical at 1 and 2 ranks, spans with the tables' cycles
runs=("demo --output ''"
      "bench gemm --P 4,8 --M 40 --K 24 --N 36 --algo meshgemm,summa --compare_local false --output '' --trace_pes 20,12,6,4"
      "bench gemv --P 5,8 --M 50 --K 40 --compare_local false --output ''"
      "bench kv --P 8 --model configs/models/stories260K.ini --prompt_tokens 4 --max_decode 20 --output '' --trace_pes 6,6,3,3")
k=0
for r in "${runs[@]}"; do
  k=$((k + 1))
  for n in 1 2; do
    eval mpi "$n" "$bin" "$r" --config configs/laptop.ini --trace "$tmp/r${k}_$n.json" >"$tmp/r${k}_$n.out" 2>&1 \
      || bad "np $n $r failed: $(tail -3 "$tmp/r${k}_$n.out")"
  done
  cmp -s "$tmp/r${k}_1.json" "$tmp/r${k}_2.json" && ok "${r%% --*}: trace identical at 1 and 2 ranks" \
    || bad "${r%% --*}: traces differ between 1 and 2 ranks"
  "$py" -c "import json,sys; d=json.load(open(sys.argv[1])); assert any(e['ph']=='X' for e in d['traceEvents'])" \
    "$tmp/r${k}_1.json" && ok "${r%% --*}: the trace loads as JSON with spans" || bad "${r%% --*}: not a trace"
done
# bench gemm's spans: the total cycles of its table rows (meshgemm P=4, P=8, summa P=4, P=8).
want=$(awk '$1 ~ /^(meshgemm|summa)$/ {print $3}' "$tmp/r2_1.out" | tr '\n' ' ')
got=$("$py" -c "
import json,sys
d=json.load(open(sys.argv[1]))
print(' '.join(str(e['args']['cycles']) for e in d['traceEvents'] if e['ph']=='X' and e['cat']=='point'))" "$tmp/r2_1.json")
[ -n "$want" ] && [ "$got " = "$want" ] && ok "bench gemm: point spans carry the table's total cycles ($got)" \
  || bad "bench gemm spans '$got' vs table '$want'"

# --- errors: one line, exit 2, no file left behind
expect_error() {  # NAME CODE PATTERN -- command...
  local name=$1 code=$2 pat=$3; shift 4
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines; lines=$(grep -vc '^$' "$tmp/err")
  if [ "$rc" -ne "$code" ] || [ "$lines" -ne 1 ] || ! grep -qE "$pat" "$tmp/err"; then
    bad "$name: exit $rc, $lines lines: $(head -c 300 "$tmp/err")"
  elif [ -n "$(ls "$tmp"/bad* 2>/dev/null)" ]; then bad "$name left $(ls "$tmp"/bad*)"
  else ok "$name: $(cat "$tmp/err")"; fi
}
d=(demo --config configs/laptop.ini --output "")
expect_error "--trace_pes without --trace" 2 "needs --trace" -- mpi 2 "$bin" "${d[@]}" --trace_pes 0,0,2,2
expect_error "--trace_pes outside the mesh" 2 "inside the 48 x 32 mesh" -- \
  mpi 2 "$bin" "${d[@]}" --trace "$tmp/bad.json" --trace_pes 47,0,2,2
expect_error "--trace_pes with three values" 2 "expected x0,y0,w,h" -- mpi 2 "$bin" "${d[@]}" --trace "$tmp/bad.json" --trace_pes 1,2,3
expect_error "--trace_pes too many PEs" 2 "more than the 64" -- mpi 2 "$bin" "${d[@]}" --trace "$tmp/bad.json" --trace_pes 0,0,9,8
mkdir -p "$tmp/dir.json"
expect_error "--trace naming a directory" 2 "not a regular file" -- mpi 2 "$bin" "${d[@]}" --trace "$tmp/dir.json"
rmdir "$tmp/dir.json"
expect_error "--trace with a model that does not fit" 3 "no region side" -- \
  mpi 2 "$bin" generate --model configs/models/bitnet_2b4t.ini --config configs/laptop.ini --weights none \
  --output "" --trace "$tmp/bad.json"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
