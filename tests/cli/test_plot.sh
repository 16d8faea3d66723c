#!/usr/bin/env bash
# usage: test_plot.sh WAFERMESH_BINARY SOURCE_DIR MPIEXEC
# launch/plot: (1) the emulator scaling model recovers known parameters from a synthetic results
# file whose wall times were made from them; (2) from real sweeps (a GEMM study, a demo study at 1
# and 2 ranks) it writes the PNGs and the model into the file, with units on every dataset;
# (3) a missing file is a one-line error. Prints "ok - ..." / "FAIL - ..."
set -u
bin=$1 src=$2 mpiexec=$3
py=/usr/bin/python3
plot=$src/launch/plot
. "$(dirname "$0")/harness.sh"
cd "$tmp"
$py -c "import h5py, matplotlib" 2>/dev/null || { bad "$py lacks h5py or matplotlib (python3-h5py, python3-matplotlib)"; exit 1; }

# --- (1) synthetic: wall times made from known parameters
$py - <<'PY'
import h5py, numpy as np
truth = dict(t_0=0.05, t_pe=2e-8, t_pe_byte=3e-11, t_msg=4e-5, t_byte=5e-10)
f = h5py.File("synthetic.h5", "w")
rows = []
i = 0
for W in [64, 128, 256]:
    for b in [256, 1024]:
        for R in [1, 2]:
            steps = np.array([8, 8, 1, 24]); pes = W * 32
            msgs = np.array([8 * pes, 8 * pes, 32, pes - 32])  # a multicast counts once: 32
            M = np.array([0, 8, 1, 1]) * (R > 1) * (1 + W // 128)
            B = np.array([0, 32 * b * 8, W * b, 8 * b]) * (R > 1)
            E = 8 * pes + 8 * pes + pes + pes  # tiles delivered (the multicast reaches every PE)
            T = truth["t_0"] + (truth["t_pe"] + truth["t_pe_byte"] * b) * E / R + truth["t_msg"] * M.sum() + truth["t_byte"] * B.sum()
            g = f.create_group(f"points/{i:06d}")
            g.attrs["ranks"] = R; g.attrs["wall_s"] = T; g.attrs["status"] = "ok"; g.attrs["key"] = f"W={W} b={b} ranks={R}"
            for n, v in [("mesh.width_pes", W), ("mesh.height_pes", 32), ("tile_bytes", b)]:
                g.create_group(f"parameters/{n}").attrs["value"] = str(v)
            t = np.zeros(4, dtype=[("steps", "i8"), ("pes", "i8"), ("pe_messages", "i8"), ("mpi_messages", "i8"),
                                   ("mpi_bytes", "i8"), ("wall_s", "f8")])
            t["steps"], t["pes"], t["pe_messages"], t["mpi_messages"], t["mpi_bytes"] = steps, pes, msgs, M, B
            t["wall_s"] = [T / 4] * 4
            g.create_dataset("demo/table", data=t)
            for k in range(4):
                rows.append((i, R, T, steps[k], pes, M[k], B[k]))
            i += 1
f.create_dataset("sweep/demo/table", data=np.array(rows, dtype=[("point", "i8"), ("ranks", "i8"), ("point_wall_s", "f8"),
                 ("steps", "i8"), ("pes", "i8"), ("mpi_messages", "i8"), ("mpi_bytes", "i8")]))
f.close()
np.save("truth.npy", np.array([truth[k] for k in ["t_0", "t_pe", "t_pe_byte", "t_msg", "t_byte"]]))
PY
if "$plot" synthetic.h5 --out figs_syn >syn.out 2>&1; then ok "plot of the synthetic file"; else bad "plot synthetic: $(cat syn.out)"; fi
$py - <<'PY' || bad "fitted model does not recover the synthetic parameters"
import h5py, numpy as np
truth = np.load("truth.npy")
g = h5py.File("synthetic.h5", "r")["scaling_model"]
got = np.array([g[n][()] for n in ["t_0", "t_pe", "t_pe_byte", "t_msg", "t_byte"]])
rel = np.abs(got / truth - 1)
print("ok - model recovers t_0, t_pe, t_pe_byte, t_msg, t_byte within", f"{rel.max():.1e}" if rel.max() < 1e-6 else rel)
assert rel.max() < 1e-6, (got, truth)
for n in ["t_0", "t_pe", "t_msg", "t_byte", "inputs/T", "inputs/T_predicted"]:
    assert "units" in g[n].attrs, n
PY

# --- (2) real sweeps
cat >g.ini <<'INI'
command = bench gemm
[vary]
algo = meshgemm, cannon, summa
P = 2, 4, 8
[fixed]
M = 32
K = 32
N = 32
compare_local = false
noc.route_fallback = relay
mesh.width_pes = 16
mesh.height_pes = 16
INI
cat >d.ini <<'INI'
command = demo
ranks = 1, 2
[vary]
mesh.width_pes = 64, 128
tile_bytes = 64, 256
[fixed]
mesh.height_pes = 48
INI
mpi 2 "$bin" sweep --study g.ini --output res/g.h5 --heartbeat_s 0 >/dev/null 2>g.err || bad "gemm sweep: $(cat g.err)"
mpi 2 "$bin" sweep --study d.ini --output res/d.h5 --heartbeat_s 0 >/dev/null 2>d.err || bad "demo sweep: $(cat d.err)"
"$plot" res/g.h5 >pg.out 2>&1 && grep -q "results/figures/g/algorithms.png" pg.out || bad "plot g.h5: $(cat pg.out)"
"$plot" res/d.h5 --out figs_d >pd.out 2>&1 || bad "plot d.h5: $(cat pd.out)"
for png in results/figures/g/algorithms.png figs_d/scaling_strong.png figs_d/scaling_weak.png figs_d/pe_maps.png; do
  if [ -f "$png" ] && [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && [ "$(stat -c %s "$png")" -gt 10000 ]; then
    ok "$png is a PNG ($(stat -c %s "$png") bytes)"
  else bad "$png missing or not a PNG"; fi
done
grep -q "scaling model: t_0 = .* s, t_pe = .* s/tile" pd.out && ok "plot prints the fitted model" || bad "model line: $(cat pd.out)"
h5dump -H res/d.h5 >/dev/null 2>&1 && ok "h5dump reads the file after the model was added" || bad "h5dump res/d.h5"
$py - res/d.h5 <<'PY' || bad "scaling_model in res/d.h5"
import sys, h5py
f = h5py.File(sys.argv[1], "r")
g = f["scaling_model"]
err = []
def visit(name, obj):
    if isinstance(obj, h5py.Dataset) and "units" not in obj.attrs: err.append("no units on " + name)
f.visititems(visit)
if len(g["inputs/T"]) != 8: err.append(f"{len(g['inputs/T'])} model inputs, want the 8 points")
if "formula" not in g.attrs: err.append("no formula")
if err: print("\n".join(err)); sys.exit(1)
print("ok - /scaling_model: formula, parameters and 8 inputs, units on every dataset of the file")
PY
# generate: per-layer cycles and energy by phase, per-PE energy maps
(cd "$src" && mpi 1 "$bin" generate --model configs/models/stories260K.ini --config configs/laptop.ini --temperature 0 \
  --steps 4 --output "$tmp/res/gen.h5") >gen.out 2>&1 || bad "generate: $(tail -3 gen.out)"
"$plot" res/gen.h5 --out figs_gen >pgen.out 2>&1 || bad "plot gen.h5: $(cat pgen.out)"
for png in figs_gen/layers.png figs_gen/energy_maps.png figs_gen/pe_maps.png; do
  if [ -f "$png" ] && [ "$(head -c 8 "$png" | od -An -tx1 | tr -d ' \n')" = 89504e470d0a1a0a ] && [ "$(stat -c %s "$png")" -gt 10000 ]; then
    ok "$png is a PNG ($(stat -c %s "$png") bytes)"
  else bad "$png missing or not a PNG"; fi
done
expect="launch/plot: error: cannot read 'nope.h5'"
"$plot" nope.h5 >/dev/null 2>err.txt; rc=$?
[ "$rc" -eq 2 ] && [ "$(wc -l <err.txt)" -eq 1 ] && grep -q "$expect" err.txt && ok "missing file: $(cat err.txt)" \
  || bad "missing file: rc=$rc $(cat err.txt)"
echo "test_plot: $fails failure(s)"
[ "$fails" -eq 0 ]
