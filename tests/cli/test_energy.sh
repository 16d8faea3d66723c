#!/usr/bin/env bash
# usage: test_energy.sh WAFERMESH_BINARY SOURCE_DIR MPIEXEC
# The energy model end to end, at 1, 2 and 4 ranks, with unit energies other than the defaults
# (and different for each kind of operation):
#  * bench gemm (MeshGEMM, operands preskewed) and bench gemv (pipeline allreduce along Y) on
#    2 x 2 and 3 x 3 regions, with fp32, fp16 and bf16 on the wafer and with ternary weights: the
#    work (operations by kind, SRAM bytes, NoC byte-hops) counted by hand from the algorithms'
#    steps, times the unit energies, must be the tables' figures. fp16 runs at 4 MACs per cycle,
#    so a streamed add of e elements takes ceil(e / 4) cycles and must still count e operations;
#  * generate: the per-token energy is the mean of the decoded positions', tokens/J its inverse,
#    static energy is the static power of every PE over each position's cycles, and the per-PE
#    energy maps add up to the positions' energy. Needs /usr/bin/python3 with h5py.
set -u
bin=$1 src=$2 mpiexec=$3
. "$(dirname "$0")/harness.sh"
py=/usr/bin/python3
cd "$src" || exit 1
units=(--energy.fp32_mac_pj 3 --energy.fp16_mac_pj 1.25 --energy.bf16_mac_pj 2 --energy.int_add_pj 0.125
       --energy.sram_read_pj_per_byte 0.5 --energy.sram_write_pj_per_byte 0.75 --energy.hop_pj_per_byte 0.25
       --energy.static_mw_per_pe 2 --energy.sram_read_bytes_per_mac 8 --energy.sram_write_bytes_per_mac 4)
fp16=(--wafer.dtype fp16 --pe.fp16_macs_per_cycle 4)

bench() {  # ranks, name, then the bench's arguments
  local n=$1 name=$2
  shift 2
  mpi "$n" "$bin" bench "$@" --config configs/laptop.ini "${units[@]}" --compare_local false \
    --output "$tmp/${name}_$n.h5" >/dev/null 2>"$tmp/err" || bad "bench $name np $n: $(cat "$tmp/err")"
}
for n in 1 2 4; do
  bench "$n" gemm2 gemm --algo meshgemm --preskewed --P 2 --M 4 --K 4 --N 4
  bench "$n" gemm3 gemm --algo meshgemm --preskewed --P 3 --M 6 --K 6 --N 6
  bench "$n" gemm2_fp16 gemm "${fp16[@]}" --algo meshgemm --preskewed --P 2 --M 4 --K 4 --N 4
  bench "$n" gemm2_bf16 gemm --wafer.dtype bf16 --algo meshgemm --preskewed --P 2 --M 4 --K 4 --N 4
  bench "$n" gemm_ternary gemm --dtype ternary --algo meshgemm --preskewed --P 2,3 --M 6 --K 6 --N 6
  bench "$n" gemv gemv --allreduce pipeline --axis Y --dtype fp32 --P 2,3 --M 6 --K 6 --repeats 2
  bench "$n" gemv_fp16 gemv "${fp16[@]}" --allreduce pipeline --axis Y --dtype fp32 --P 2,3 --M 6 --K 6 --repeats 2
  bench "$n" gemv_ternary gemv --allreduce pipeline --axis Y --dtype ternary --P 2,3 --M 6 --K 6 --repeats 2
done

"$py" - "$tmp" <<'EOF'
import sys
import h5py

tmp = sys.argv[1]
fails = 0
# pJ per fp32, fp16, bf16 MAC (or fp element operation), per integer add (a ternary weight applied
# or an integer operation); SRAM, hop, static; SRAM bytes per operation; the clock.
MAC = {"fp32": 3e-12, "fp16": 1.25e-12, "bf16": 2e-12}
INT = 0.125e-12
RD, WR, HOP, STATIC_W, RB, WB, HZ = 0.5e-12, 0.75e-12, 0.25e-12, 2e-3, 8, 4, 1.1e9
KINDS = ("fp_macs", "elem_ops", "ternary_ops", "int_ops")


def check(what, row, ops, dtype, sent, received, byte_hops, pes):
    """The table's figures against hand counts times the unit energies. ops: {kind: count}."""
    global fails
    ops = {k: ops.get(k, 0) for k in KINDS}
    n = sum(ops.values())
    read, write = n * RB + sent, n * WB + received
    e = {"energy_compute_j": (ops["fp_macs"] + ops["elem_ops"]) * MAC[dtype] + (ops["ternary_ops"] + ops["int_ops"]) * INT,
         "energy_sram_j": read * RD + write * WR, "energy_noc_j": byte_hops * HOP,
         "energy_static_j": STATIC_W * pes * int(row["total_cycles"]) / HZ}
    e["energy_j"] = sum(e.values())
    counts = dict(ops, sram_read_bytes=read, sram_write_bytes=write, noc_byte_hops=byte_hops)
    bad = [(k, int(row[k]), v) for k, v in counts.items() if int(row[k]) != v]
    bad += [(k, float(row[k]), v) for k, v in e.items() if abs(float(row[k]) - v) > 1e-12 * abs(v)]
    if bad:
        fails += 1
        print("FAIL - %s: (figure, table, hand) %s" % (what, bad))
    else:
        print("ok - %s: %s, %d/%d SRAM bytes read/written, %d byte-hops, %.6g J as counted by hand"
              % (what, ", ".join("%d %s" % (v, k) for k, v in ops.items() if v), read, write, byte_hops, e["energy_j"]))


def table(name, n, group):
    return h5py.File("%s/%s_%d.h5" % (tmp, name, n), "r")[group + "/table"][()]


def gemm(what, row, P, t, kind, dtype, a, b, hops_per_line):
    """MeshGEMM, C = A B, preskewed, P x P PEs with t x t tiles: P steps of t^3 multiply-accumulates
    (or ternary weights applied) on every PE; between them P - 1 shifts of A along X and of B along
    Y, every PE sending one tile of each (a and b bytes) in each, over hops_per_line links per line
    and shift."""
    sends = (P - 1) * P * P  # tiles of each operand sent (= received)
    check(what, row, {kind: P ** 3 * t ** 3}, dtype, sends * (a + b), sends * (a + b),
          (P - 1) * P * hops_per_line * (a + b), P * P)


for n in (1, 2, 4):
    # The interleaved ring puts logical neighbours 1 hop apart for P = 2 and 2, 1, 1 hops apart for
    # P = 3 (physical order 0 2 1): hops per line and shift 2 and 4. fp tiles are t^2 elements of
    # 4 bytes (fp32) or 2 (fp16, bf16); ternary: A is t^2 int8 activations, B t^2 weights at 2 bits
    # (ceil(t^2 / 4) bytes).
    gemm("bench gemm meshgemm fp32 P=2 np %d" % n, table("gemm2", n, "gemm")[0], 2, 2, "fp_macs", "fp32", 16, 16, 2)
    gemm("bench gemm meshgemm fp32 P=3 np %d" % n, table("gemm3", n, "gemm")[0], 3, 2, "fp_macs", "fp32", 16, 16, 4)
    gemm("bench gemm meshgemm fp16 P=2 np %d" % n, table("gemm2_fp16", n, "gemm")[0], 2, 2, "fp_macs", "fp16", 8, 8, 2)
    gemm("bench gemm meshgemm bf16 P=2 np %d" % n, table("gemm2_bf16", n, "gemm")[0], 2, 2, "fp_macs", "bf16", 8, 8, 2)
    tern = {int(r["P"]): r for r in table("gemm_ternary", n, "gemm")}
    gemm("bench gemm meshgemm ternary P=2 np %d" % n, tern[2], 2, 3, "ternary_ops", "fp32", 9, 3, 2)  # t = 3
    gemm("bench gemm meshgemm ternary P=3 np %d" % n, tern[3], 3, 2, "ternary_ops", "fp32", 4, 1, 4)  # t = 2
    # MeshGEMV y = W x, 6 x 6, reduced along Y by the pipeline into row 0, then broadcast down each
    # column. Per column of P PEs, with mt = 6 / P rows per block of w bytes each (fp32 4, fp16 2,
    # the ternary GEMV's int32 partial sums 4): P - 1 chain messages of 1 hop, P - 1 streamed adds
    # of mt elements (fp element operations, or integer ones), one broadcast stream over P - 1
    # links received by P - 1 PEs; 36 multiply-accumulates (or ternary weights) on the region.
    for name, dtype, product, add, w in (("gemv", "fp32", "fp_macs", "elem_ops", 4),
                                         ("gemv_fp16", "fp16", "fp_macs", "elem_ops", 2),
                                         ("gemv_ternary", "fp32", "ternary_ops", "int_ops", 4)):
        for row in table(name, n, "gemv"):
            P = int(row["P"])
            mt = 6 // P
            b = w * mt
            check("bench %s pipeline P=%d np %d" % (name, P, n), row, {product: 36, add: P * (P - 1) * mt}, dtype,
                  P * P * b, P * 2 * (P - 1) * b, P * 2 * (P - 1) * b, P * P)
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
# Operations by kind: the tokens table's and the per-PE maps' (exact integers), and each position's
# compute energy from them at the unit energies (wafer.dtype fp32: 3 pJ per MAC or element
# operation, 0.125 pJ per ternary or integer operation).
for k in ("fp_macs", "elem_ops", "ternary_ops", "int_ops"):
    expect("per-PE %s maps add up to the positions'" % k, float(maps[k][()].sum()), float(tok[k].sum()), rel=0)
expect("decoding does fp MACs and fp element operations", float(min(tok["fp_macs"][dec].min(), tok["elem_ops"][dec].min()) > 0), 1.0)
hand = (tok["fp_macs"] + tok["elem_ops"]) * 3e-12 + (tok["ternary_ops"] + tok["int_ops"]) * 0.125e-12
expect("each position: compute energy = operations x unit energies (largest relative difference)",
       float((np.abs(tok["energy_compute_j"] - hand) / hand).max()) + 1.0, 1.0, rel=1e-12)
expect("layers: static energy over the per-layer cycles", float(lay["energy_static_j"].sum()),
       2e-3 * pes * float(lay["total_cycles"].sum()) / 1.1e9)
sys.exit(fails)
EOF
rc=$?
[ "$rc" -eq 0 ] && ok "generate's energy figures agree with its positions and per-PE maps" \
  || bad "$rc generate energy checks failed"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
