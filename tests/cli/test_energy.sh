#!/usr/bin/env bash
# usage: test_energy.sh WAFERMESH_BINARY SOURCE_DIR MPIEXEC
# The energy model end to end, at 1, 2 and 4 ranks, with unit energies other than the defaults:
#  * bench gemm (MeshGEMM, operands preskewed) and bench gemv (pipeline allreduce along Y) on
#    2 x 2 and 3 x 3 regions: the work (MACs, SRAM bytes, NoC byte-hops) counted by hand from the
#    algorithms' steps, times the unit energies, must be the tables' figures;
#  * generate: the per-token energy is the mean of the decoded positions', tokens/J its inverse,
#    static energy is the static power of every PE over each position's cycles, and the per-PE
#    energy maps add up to the positions' energy. Needs /usr/bin/python3 with h5py.
set -u
bin=$1 src=$2 mpiexec=$3
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0 passes=0
ok() { echo "ok - $*"; passes=$((passes + 1)); }
bad() { echo "FAIL - $*"; fails=$((fails + 1)); }
mpi() { local n=$1; shift; timeout 300 "$mpiexec" --quiet --oversubscribe -np "$n" "$@"; }
py=/usr/bin/python3
cd "$src" || exit 1
units=(--energy.mac_pj 3 --energy.sram_read_pj_per_byte 0.5 --energy.sram_write_pj_per_byte 0.75
       --energy.hop_pj_per_byte 0.25 --energy.static_mw_per_pe 2 --energy.sram_read_bytes_per_mac 8
       --energy.sram_write_bytes_per_mac 4)

for n in 1 2 4; do
  mpi "$n" "$bin" bench gemm --config configs/laptop.ini "${units[@]}" --algo meshgemm --preskewed --P 2 --M 4 --K 4 \
    --N 4 --compare_local false --output "$tmp/gemm2_$n.h5" >/dev/null 2>"$tmp/err" || bad "bench gemm P=2 np $n: $(cat "$tmp/err")"
  mpi "$n" "$bin" bench gemm --config configs/laptop.ini "${units[@]}" --algo meshgemm --preskewed --P 3 --M 6 --K 6 \
    --N 6 --compare_local false --output "$tmp/gemm3_$n.h5" >/dev/null 2>"$tmp/err" || bad "bench gemm P=3 np $n: $(cat "$tmp/err")"
  mpi "$n" "$bin" bench gemv --config configs/laptop.ini "${units[@]}" --allreduce pipeline --axis Y --dtype fp32 \
    --P 2,3 --M 6 --K 6 --repeats 2 --compare_local false --output "$tmp/gemv_$n.h5" >/dev/null 2>"$tmp/err" \
    || bad "bench gemv np $n: $(cat "$tmp/err")"
done

"$py" - "$tmp" <<'EOF'
import sys
import h5py

tmp = sys.argv[1]
fails = 0
MAC, RD, WR, HOP, STATIC_W, RB, WB, HZ = 3e-12, 0.5e-12, 0.75e-12, 0.25e-12, 2e-3, 8, 4, 1.1e9


def check(what, row, macs, sent, received, byte_hops, pes):
    """The table's figures against hand counts times the unit energies."""
    global fails
    read, write = macs * RB + sent, macs * WB + received
    e = {"energy_compute_j": macs * MAC, "energy_sram_j": read * RD + write * WR, "energy_noc_j": byte_hops * HOP,
         "energy_static_j": STATIC_W * pes * int(row["total_cycles"]) / HZ}
    e["energy_j"] = sum(e.values())
    counts = {"macs": macs, "sram_read_bytes": read, "sram_write_bytes": write, "noc_byte_hops": byte_hops}
    bad = [(k, int(row[k]), v) for k, v in counts.items() if int(row[k]) != v]
    bad += [(k, float(row[k]), v) for k, v in e.items() if abs(float(row[k]) - v) > 1e-12 * abs(v)]
    if bad:
        fails += 1
        print("FAIL - %s: (figure, table, hand) %s" % (what, bad))
    else:
        print("ok - %s: %d MACs, %d/%d SRAM bytes read/written, %d byte-hops, %.6g J as counted by hand"
              % (what, macs, read, write, byte_hops, e["energy_j"]))


for n in (1, 2, 4):
    # MeshGEMM, C = A B, preskewed, P x P PEs with t x t tiles (t = 2): P steps of t^3 MACs on every
    # PE; between them P - 1 shifts of A along X and of B along Y, every PE sending one tile of
    # 4 t^2 bytes in each. The interleaved ring puts logical neighbours 1 hop apart for P = 2 and
    # 2, 1, 1 hops apart for P = 3 (physical order 0 2 1): hops per line and shift 2 and 4.
    for P, hops_per_line in ((2, 2), (3, 4)):
        row = h5py.File("%s/gemm%d_%d.h5" % (tmp, P, n), "r")["gemm/table"][()][0]
        t, tile = 2, 4 * 2 * 2
        sends = 2 * (P - 1) * P * P  # tiles sent (= received)
        check("bench gemm meshgemm P=%d np %d" % (P, n), row, P * P * P * t ** 3, sends * tile, sends * tile,
              2 * (P - 1) * P * hops_per_line * tile, P * P)
    # MeshGEMV y = W x, 6 x 6 fp32, reduced along Y by the pipeline into row 0, then broadcast down
    # each column. Per column of P PEs, with b = 4 mt bytes (mt = 6 / P rows per block): P - 1 chain
    # messages of 1 hop, P - 1 streamed adds of mt elements, one broadcast stream over P - 1 links
    # received by P - 1 PEs.
    rows = h5py.File("%s/gemv_%d.h5" % (tmp, n), "r")["gemv/table"][()]
    for row in rows:
        P = int(row["P"])
        mt = 6 // P
        b = 4 * mt
        check("bench gemv pipeline P=%d np %d" % (P, n), row, 36 + P * (P - 1) * mt, P * P * b,
              P * 2 * (P - 1) * b, P * 2 * (P - 1) * b, P * P)
sys.exit(fails)
EOF
rc=$?
[ "$rc" -eq 0 ] && ok "bench gemm and gemv energy equal the hand counts at 1, 2 and 4 ranks" \
  || bad "$rc bench points differ from the hand counts"

# --- generate: the run's figures against its own positions and per-PE maps
for n in 1 2; do
  mpi "$n" "$bin" generate --model configs/models/stories260K.ini --config configs/laptop.ini "${units[@]}" \
    --temperature 0 --steps 8 --prompt "Once upon a time" --output "$tmp/g$n.h5" >"$tmp/g$n.out" 2>"$tmp/err" \
    || bad "generate np $n: $(cat "$tmp/err")"
done
grep -q "per decoded token .* tokens/J" "$tmp/g1.out" && grep -q "wafer power .*average .* W, peak" "$tmp/g1.out" \
  && ok "generate prints energy per token, tokens/J and wafer power" || bad "no energy lines: $(tail -6 "$tmp/g1.out")"
grep -q "^energy" "$tmp/g1.out" && cmp -s <(grep -A4 "^energy" "$tmp/g1.out") <(grep -A4 "^energy" "$tmp/g2.out") \
  && ok "energy lines identical at 1 and 2 ranks" || bad "energy lines differ between 1 and 2 ranks"
"$py" - "$tmp/g1.h5" <<'EOF'
import sys
import h5py
import numpy as np

f = h5py.File(sys.argv[1], "r")
s = f["generate/table"][()][0]
tok = f["generate/tokens/table"][()]
lay = f["generate/layers/table"][()]
maps = f["generate/pe_maps"]
fails = 0


def expect(what, got, want, rel=1e-9):
    global fails
    if abs(got - want) <= rel * abs(want):
        print("ok - %s: %.9g" % (what, got))
    else:
        fails += 1
        print("FAIL - %s: %.12g, want %.12g" % (what, got, want))


pes = maps["clock_cycles"].shape[0] * maps["clock_cycles"].shape[1]
dec = np.array([p.decode() == "decode" if isinstance(p, bytes) else p == "decode" for p in tok["phase"]])
expect("per-token energy = mean of the decoded positions'", float(s["energy_per_token_j"]), tok["energy_j"][dec].mean())
expect("tokens/J = 1 / energy per token", float(s["tokens_per_j"]), 1.0 / float(s["energy_per_token_j"]))
expect("prompt energy = the prompt positions'", float(s["energy_prompt_j"]), tok["energy_j"][~dec].sum())
expect("static energy = 2 mW x %d PEs x each position's cycles" % pes, tok["energy_static_j"].sum(),
       2e-3 * pes * tok["cycles"].sum() / 1.1e9)
expect("each position: split adds up", float(np.abs(tok["energy_compute_j"] + tok["energy_sram_j"] + tok["energy_noc_j"]
                                                    + tok["energy_static_j"] - tok["energy_j"]).max()) + 1.0, 1.0)
expect("peak power = the largest position's", float(s["peak_power_w"]), float(tok["power_w"].max()))
expect("average power = energy / time", float(s["average_power_w"]), tok["energy_j"].sum() / (tok["cycles"].sum() / 1.1e9))
# The maps: each PE's own work plus static power over the run, in whole picojoules; the run is the
# positions and, when the prompt ran on another placement than the decode, the switch between them
# (its work, and static power over its cycles).
total_pj = float(maps["energy_pj"][()].sum())
switch_j = float(s["switch_energy_j"])
switch_static_j = 2e-3 * pes * float(s["switch_cycles"]) / 1.1e9
print("# the switch: %d cycles, %.9g J" % (int(s["switch_cycles"]), switch_j))
expect("per-PE energy maps add up to the positions' and the switch's energy (within rounding)", total_pj * 1e-12,
       tok["energy_j"].sum() + switch_j, rel=pes * 0.5e-12 / tok["energy_j"].sum() + 1e-12)
dyn = float(maps["energy_compute_pj"][()].sum() + maps["energy_sram_pj"][()].sum() + maps["energy_noc_pj"][()].sum())
expect("per-PE dynamic energy maps add up to the positions' and the switch's (within rounding)", dyn * 1e-12,
       (tok["energy_compute_j"] + tok["energy_sram_j"] + tok["energy_noc_j"]).sum() + switch_j - switch_static_j,
       rel=3 * pes * 0.5e-12 / (tok["energy_compute_j"] + tok["energy_sram_j"] + tok["energy_noc_j"]).sum() + 1e-12)
expect("layers: static energy over the per-layer cycles", float(lay["energy_static_j"].sum()),
       2e-3 * pes * float(lay["total_cycles"].sum()) / 1.1e9)
sys.exit(fails)
EOF
rc=$?
[ "$rc" -eq 0 ] && ok "generate's energy figures agree with its positions and per-PE maps" \
  || bad "$rc generate energy checks failed"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
