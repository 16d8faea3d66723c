#!/usr/bin/env bash
# usage: test_cli.sh WAFERMESH_BINARY SOURCE_DIR MPIEXEC
# Each check prints "ok - ..." or "FAIL - ..."; the script fails if any check failed.
set -u
bin=$1 src=$2 mpiexec=$3
mpi_timeout=120
. "$(dirname "$0")/harness.sh"

# expect_error NAME CODE PATTERN -- command...: exit code CODE, exactly one line on stderr
# matching PATTERN, and nothing on stdout.
expect_error() {
  local name=$1 code=$2 pat=$3; shift 4
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines; lines=$(grep -vc '^$' "$tmp/err")
  if [ "$rc" -ne "$code" ]; then bad "$name: exit $rc, want $code ($(head -c 300 "$tmp/err"))"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$name: $lines stderr lines, want 1: $(head -c 500 "$tmp/err")"; return; fi
  if ! grep -qE "$pat" "$tmp/err"; then bad "$name: stderr '$(cat "$tmp/err")' lacks /$pat/"; return; fi
  if [ -s "$tmp/out" ]; then bad "$name: printed on stdout: $(head -c 200 "$tmp/out")"; return; fi
  ok "$name: $(cat "$tmp/err")"
}

# --- help lists every option with default and unit
"$bin" --help >"$tmp/h" 2>&1 && grep -q "info" "$tmp/h" && grep -q "demo" "$tmp/h" && grep -q "default 994 \[PEs\]" "$tmp/h" \
  && ok "--help lists commands and machine options" || bad "--help: $(cat "$tmp/h")"
"$bin" info --help >"$tmp/h" 2>&1 || bad "info --help exit code"
for opt in mesh.width_pes mesh.height_pes pe.clock_ghz pe.sram_bytes pe.macs_per_cycle pe.task_overhead_cycles \
           pe.fp16_macs_per_cycle pe.ternary_ops_per_cycle wafer.dtype wafer.ternary_format \
           noc.alpha_cycles noc.beta_cycles noc.link_bytes_per_cycle noc.route_entries noc.route_fallback \
           emu.inject_ns_per_cycle emu.replay_timing emu.ranks_x emu.ranks_y; do
  grep -q -- "--$opt" "$tmp/h" || bad "info --help lacks --$opt"
done
grep -q "default 750 \[PEs\]" "$tmp/h" && grep -q "default 2 \[cycles/hop\]" "$tmp/h" \
  && ok "info --help shows units and defaults" || bad "info --help units/defaults: $(head -20 "$tmp/h")"
"$bin" demo --help >"$tmp/h" 2>&1 && grep -q -- "--tile_bytes" "$tmp/h" && grep -q "\[bytes\]" "$tmp/h" \
  && ok "demo --help" || bad "demo --help"

# --- bad input: one line, exit code 2
printf 'this line is not ini\n' >"$tmp/malformed.ini"
printf '[mesh]\nwidth_pes = 10\nbogus_key = 3\n' >"$tmp/unknown.ini"
printf '[mesh]\nwidth_pes = -4\n' >"$tmp/negative.ini"
printf '[pe]\nclock_ghz = fast\n' >"$tmp/nonnum.ini"
expect_error "unknown option" 2 "unrecognised option '--bogus'" -- "$bin" info --bogus 1
expect_error "unknown command" 2 "unknown command 'frobnicate'" -- "$bin" frobnicate
expect_error "malformed INI" 2 "malformed.ini" -- "$bin" info --config "$tmp/malformed.ini"
expect_error "unknown INI key" 2 "unknown.ini.*bogus_key" -- "$bin" info --config "$tmp/unknown.ini"
expect_error "missing config file" 2 "cannot read config file" -- "$bin" info --config "$tmp/nope.ini"
expect_error "negative size in INI" 2 "mesh.width_pes = '-4' \(from .*negative.ini\): must be >= 1" -- "$bin" info --config "$tmp/negative.ini"
expect_error "negative size on CLI" 2 "mesh.width_pes = '-3'.*must be >= 1" -- "$bin" info --mesh.width_pes=-3
expect_error "zero size" 2 "mesh.height_pes = '0'.*must be >= 1" -- "$bin" info --mesh.height_pes 0
expect_error "non-numeric in INI" 2 "pe.clock_ghz = 'fast'.*not a number" -- "$bin" info --config "$tmp/nonnum.ini"
expect_error "non-numeric integer" 2 "pe.sram_bytes = '12kb'.*not an integer" -- "$bin" info --pe.sram_bytes 12kb
expect_error "zero clock" 2 "pe.clock_ghz = '0'.*must be >= 0.001" -- "$bin" info --pe.clock_ghz 0
expect_error "absurd clock" 2 "pe.clock_ghz = '1e-300'.*must be >= 0.001" -- "$bin" info --pe.clock_ghz 1e-300
expect_error "stray argument" 2 "unexpected argument 'laptop.ini'" -- "$bin" info --config "$src/configs/wse2.ini" laptop.ini
expect_error "directory as config" 2 "config file '.*configs' is a directory" -- "$bin" info --config "$src/configs"
expect_error "bad choice" 2 "noc.route_fallback = 'maybe'.*strict, relay" -- "$bin" info --noc.route_fallback maybe
expect_error "bad wafer dtype" 2 "wafer.dtype = 'fp8'.*fp32, fp16, bf16" -- "$bin" info --wafer.dtype fp8
expect_error "bad wafer dtype in generate" 2 "wafer.dtype = 'int4'.*fp32, fp16, bf16" -- "$bin" generate --wafer.dtype int4
expect_error "bad ternary format" 2 "wafer.ternary_format = '3bit'.*2bit, base3" -- "$bin" info --wafer.ternary_format 3bit
expect_error "negative fp16 rate" 2 "pe.fp16_macs_per_cycle = '-1'.*must be >= 0" -- "$bin" info --pe.fp16_macs_per_cycle -1
expect_error "bad WM_KERNEL_ISA" 2 "WM_KERNEL_ISA: .*'foo'" -- env WM_KERNEL_ISA=foo "$bin" info
expect_error "no prefix guessing" 2 "unrecognised option '--mesh.width'" -- "$bin" info --mesh.width 5

# --- several ranks: only rank 0 prints, all exit, no hang
expect_error "bad option at 4 ranks" 2 "unrecognised option" -- mpi 4 "$bin" info --bogus 1
expect_error "more ranks than PEs" 2 "4 MPI ranks do not fit a 3 x 1 mesh" -- mpi 4 "$bin" info --mesh.width_pes 3 --mesh.height_pes 1
expect_error "forced layout too wide" 2 "emu.ranks_x = 4 exceeds the mesh width 2" -- mpi 4 "$bin" info --mesh.width_pes 2 --emu.ranks_x 4
expect_error "SRAM overflow at 2 ranks" 3 "PE \(0, 0\) needs 256 bytes of SRAM.*pe.sram_bytes = 100" -- \
  mpi 2 "$bin" demo --config "$src/configs/laptop.ini" --pe.sram_bytes 100 --tile_bytes 256

# --- info shows the rank layout
mpi 4 "$bin" info --config "$src/configs/wse2.ini" >"$tmp/i4" 2>&1
if grep -q "750 x 994 PEs" "$tmp/i4" && grep -q "2 x 2 Cartesian grid" "$tmp/i4" && [ "$(grep -cE '^ +[0-3] +\([01],[01]\)' "$tmp/i4")" -eq 4 ] \
   && grep -q "pe.sram_bytes *= 49152 *\[bytes\] *(.*wse2.ini)" "$tmp/i4"; then
  ok "info at 4 ranks: 750 x 994 in 4 blocks, sources shown"
else bad "info at 4 ranks: $(cat "$tmp/i4")"; fi
mpi 3 "$bin" info --config "$src/configs/wse2.ini" >"$tmp/i3" 2>&1
grep -q "blocks uneven" "$tmp/i3" && grep -q "332/331/331" "$tmp/i3" && ok "info at 3 ranks: uneven blocks" || bad "info at 3 ranks: $(cat "$tmp/i3")"

# --- demo: same virtual figures at 1, 2 and 4 ranks (wall columns removed), and the same per-PE
# maps, written in parallel by each rank count
for n in 1 2 4; do
  mpi $n "$bin" demo --config "$src/configs/laptop.ini" --output "$tmp/d$n.h5" >"$tmp/d$n" 2>&1 || bad "demo at $n ranks failed: $(tail -3 "$tmp/d$n")"
  # drop the wall-time column of the table, the wall line and the rank line
  grep -E '^  (ring|broadcast|chain)|^wafer|^checks' "$tmp/d$n" | awk '{ $NF=""; print }' >"$tmp/v$n"
done
if [ -s "$tmp/v1" ] && cmp -s "$tmp/v1" "$tmp/v2" && cmp -s "$tmp/v1" "$tmp/v4" && grep -q "every operation produced the expected tiles" "$tmp/d4"; then
  ok "demo virtual figures identical at 1, 2, 4 ranks"
else
  bad "demo differs across rank counts:"; diff "$tmp/v1" "$tmp/v2"; diff "$tmp/v1" "$tmp/v4"
fi

if command -v h5diff >/dev/null; then
  h5diff "$tmp/d1.h5" "$tmp/d2.h5" /demo/pe_maps /demo/pe_maps >"$tmp/hd" 2>&1 && h5diff "$tmp/d1.h5" "$tmp/d4.h5" /demo/pe_maps /demo/pe_maps >>"$tmp/hd" 2>&1 \
    && ok "demo per-PE maps (parallel HDF5) identical at 1, 2, 4 ranks" || bad "demo per-PE maps differ: $(head -20 "$tmp/hd")"
  # h5diff does see differences: two different maps of one file must differ
  h5diff "$tmp/d1.h5" "$tmp/d1.h5" /demo/pe_maps/clock_cycles /demo/pe_maps/compute_cycles >/dev/null 2>&1 \
    && bad "h5diff found no difference between two different maps" || ok "h5diff detects differing maps"
  h5dump -H "$tmp/d4.h5" | grep -A2 '"clock_cycles"' | grep -q "( 32, 48 )" && h5dump -a /demo/pe_maps/sram_peak_bytes/units "$tmp/d4.h5" | grep -q '"bytes"' \
    && ok "demo per-PE maps are H x W with units" || bad "demo maps layout: $(h5dump -H "$tmp/d4.h5" | head -30)"
else bad "h5diff missing (launch/setup installs hdf5-tools)"; fi

# --- bench gemm: table, HDF5 file readable by h5dump with units, same virtual figures at 1 and 2 ranks
for n in 1 2; do
  mpi $n "$bin" bench gemm --config "$src/configs/laptop.ini" --P 2,3,5 --M 37 --K 29 --N 31 \
    --compare_local false --output "$tmp/g$n.h5" >"$tmp/bg$n" 2>&1 || bad "bench gemm at $n ranks: $(tail -3 "$tmp/bg$n")"
  # virtual columns only: drop wall s and wall/local
  grep -E '^(meshgemm|cannon|summa) ' "$tmp/bg$n" | awk '{ $(NF-1)=""; $NF=""; print }' >"$tmp/bv$n"
done
if [ "$(wc -l <"$tmp/bv1")" -eq 9 ] && cmp -s "$tmp/bv1" "$tmp/bv2"; then ok "bench gemm: 9 rows, identical virtual figures at 1 and 2 ranks"
else bad "bench gemm rows differ: $(diff "$tmp/bv1" "$tmp/bv2" | head; cat "$tmp/bg1")"; fi
if command -v h5dump >/dev/null; then
  h5dump -a /gemm/total_cycles/units "$tmp/g2.h5" 2>&1 | grep -q '"cycles"' \
    && h5dump -d /gemm/table "$tmp/g2.h5" 2>&1 | grep -q '"meshgemm"' \
    && h5dump -a /parameters/noc.alpha_cycles/units "$tmp/g2.h5" 2>&1 | grep -q '"cycles/hop"' \
    && ok "bench gemm HDF5: table, units, parameters readable by h5dump" || bad "bench gemm HDF5: $(h5dump -H "$tmp/g2.h5" | head -30)"
  ls "$tmp"/g2.h5.tmp* >/dev/null 2>&1 && bad "temporary results file left behind" || ok "no temporary results file left"
else bad "h5dump missing (launch/setup installs hdf5-tools)"; fi
expect_error "bench gemm bad algorithm" 2 "option --algo = 'strassen'.*meshgemm, cannon, summa" -- "$bin" bench gemm --algo strassen
expect_error "bench gemm region too big" 2 "gemm region 64 x 64 at \(0, 0\) does not fit the 48 x 32 mesh" -- \
  "$bin" bench gemm --config "$src/configs/laptop.ini" --P 64 --compare_local false --output "$tmp/never.h5"
[ -e "$tmp/never.h5" ] && bad "a failed bench left a results file" || ok "a failed bench leaves no results file"

# --- bench gemv and bench kv: run, identical virtual figures at 1 and 2 ranks, HDF5 with units
for n in 1 2; do
  mpi $n "$bin" bench gemv --config "$src/configs/laptop.ini" --P 3,8 --M 100 --K 77 --repeats 1 \
    --output "$tmp/v$n.h5" >"$tmp/gv$n" 2>&1 || bad "bench gemv at $n ranks: $(tail -3 "$tmp/gv$n")"
  grep -E '^(pipeline|ring|ktree) ' "$tmp/gv$n" | awk '{ $(NF-1)=""; $NF=""; print }' >"$tmp/gvv$n"
  mpi $n "$bin" bench kv --config "$src/configs/laptop.ini" --model "$src/configs/models/stories260K.ini" --P 4,8 \
    --prompt_tokens 16 --output "$tmp/k$n.h5" >"$tmp/kv$n" 2>&1 || bad "bench kv at $n ranks: $(tail -3 "$tmp/kv$n")"
  grep -E '^(concat|shift) ' "$tmp/kv$n" | awk '{ $7=""; print }' >"$tmp/kvv$n"
done
[ "$(wc -l <"$tmp/gvv1")" -eq 6 ] && cmp -s "$tmp/gvv1" "$tmp/gvv2" && ok "bench gemv: 6 rows, identical virtual figures at 1 and 2 ranks" \
  || bad "bench gemv: $(diff "$tmp/gvv1" "$tmp/gvv2"; cat "$tmp/gv1")"
[ "$(wc -l <"$tmp/kvv1")" -eq 4 ] && cmp -s "$tmp/kvv1" "$tmp/kvv2" && ok "bench kv: 4 rows, identical at 1 and 2 ranks" \
  || bad "bench kv: $(diff "$tmp/kvv1" "$tmp/kvv2"; cat "$tmp/kv1")"
# a prompt shorter than the region has rows: the empty rows fill before anything shifts
mpi 2 "$bin" bench kv --config "$src/configs/laptop.ini" --model "$src/configs/models/stories260K.ini" --P 8 \
  --policy shift --prompt_tokens 3 --max_decode 40 --output "$tmp/k3.h5" >"$tmp/kv3" 2>&1 \
  && grep -qE '^shift +8 .* 40 +43 .*kv.max_decode reached' "$tmp/kv3" \
  && ok "bench kv: 3 prompt tokens on 8 rows, 40 decoded" || bad "bench kv, short prompt: $(cat "$tmp/kv3")"
# shift reaches a longer decode than concat on the same region (column 4 = max decode)
awk '$1=="concat" && $2==8 {c=$4} $1=="shift" && $2==8 {s=$4} END {exit !(s > c)}' "$tmp/kv2" \
  && ok "bench kv: shift decodes longer than concat" || bad "bench kv: shift not longer than concat: $(cat "$tmp/kv2")"
h5dump -a /gemv/critical_stages/units "$tmp/v2.h5" 2>&1 | grep -q '"relay stages"' && h5dump -a /kv/max_decode_tokens/units "$tmp/k2.h5" 2>&1 | grep -q '"tokens"' \
  && ok "bench gemv/kv HDF5 units" || bad "bench gemv/kv HDF5: $(h5dump -H "$tmp/k2.h5" | head -20)"
# --P 0: generate's tuned decode side, the layers a region holds there and the SRAM their weights leave
mpi 2 "$bin" bench kv --config "$src/configs/laptop.ini" --model "$src/configs/models/stories260K.ini" --P 0 \
  --prompt_tokens 8 --max_decode 4000 --output "$tmp/k0.h5" >"$tmp/kv0" 2>&1 \
  && grep -qE '^bench kv: tuned decode grid for stories260K: side [0-9]+, 5 layers per region' "$tmp/kv0" \
  && [ "$(grep -cE '^(concat|shift) +[0-9]+ ' "$tmp/kv0")" -eq 2 ] \
  && h5dump -d /kv/tuned_grid "$tmp/k0.h5" 2>/dev/null | grep -qE '\(0\): 1, 1' \
  && ok "bench kv --P 0: $(grep 'tuned decode grid' "$tmp/kv0")" || bad "bench kv --P 0: $(cat "$tmp/kv0")"
expect_error "bench kv bad model file" 2 "cannot read config file 'nope.ini'" -- "$bin" bench kv --model nope.ini

# --- bench shift and calibrate: identical figures at 1 and 2 ranks, the fit's files, one-line errors
for n in 1 2; do
  mpi $n "$bin" bench shift --P 12 --L 1,3,6 --tile_bytes 16,64 --output "$tmp/sh$n.h5" >"$tmp/sh$n" 2>&1 \
    || bad "bench shift at $n ranks: $(tail -3 "$tmp/sh$n")"
  grep -E '^ +[0-9]+ +[0-9]+ +[0-9]+ ' "$tmp/sh$n" >"$tmp/shv$n"
done
[ "$(wc -l <"$tmp/shv1")" -eq 6 ] && cmp -s "$tmp/shv1" "$tmp/shv2" && ok "bench shift: 6 rows, identical at 1 and 2 ranks" \
  || bad "bench shift: $(diff "$tmp/shv1" "$tmp/shv2"; cat "$tmp/sh1")"
expect_error "bench shift L too long" 2 "option --L = 12: must be below the region side P = 12" -- "$bin" bench shift --P 12 --L 12
# P = 60, L = 25: 35 tiles stay in the region and 25 of their streams cross the links after X = 24
"$bin" bench shift --P 60 --L 23,25 --output "$tmp/sh3.h5" >"$tmp/sh3" 2>&1 \
  && grep -qE '^ +23 +256 +[0-9]+ +[0-9.]+ +24$' "$tmp/sh3" \
  && grep -qE '^ +25 +256  infeasible: PE .* needs 25 route entries.*noc.route_entries = 24' "$tmp/sh3" \
  && ok "bench shift: a point beyond the route limit is reported infeasible" || bad "bench shift routes: $(cat "$tmp/sh3")"
printf 'kind,P,n,groups,L,tile_bytes,cycles_lo,cycles_hi,source\ngemm,4,8,,,,3000,3000,x\ngemv,8,8,2,,,400,420,x\nshift,12,,,2,64,150,150,x\nshift,12,,,4,64,260,260,x\n' >"$tmp/m.csv"
for n in 1 2; do
  mpi $n "$bin" calibrate --measurements "$tmp/m.csv" --fit noc.receive_cycles,noc.beta_cycles --noc.stream_reductions \
    --output "$tmp/cal$n.h5" --write_config "$tmp/cal$n.ini" >"$tmp/cal$n" 2>&1 || bad "calibrate at $n ranks: $(tail -3 "$tmp/cal$n")"
done
diff <(grep -v '^#' "$tmp/cal1.ini") <(grep -v '^#' "$tmp/cal2.ini") >/dev/null \
  && grep -q '^receive_cycles = ' "$tmp/cal1.ini" && grep -q '^\[noc\]' "$tmp/cal1.ini" \
  && ok "calibrate: the same fitted INI at 1 and 2 ranks" || bad "calibrate INI: $(cat "$tmp/cal1.ini" "$tmp/cal2.ini" "$tmp/cal1")"
h5dump -d /calibration/rel_error "$tmp/cal2.h5" >/dev/null 2>&1 && h5dump -d /calibration/parameters/fitted "$tmp/cal2.h5" >/dev/null 2>&1 \
  && ok "calibrate: points and parameters in the results file" || bad "calibrate HDF5: $(h5dump -H "$tmp/cal2.h5" | head -30)"
expect_error "calibrate bad --fit" 2 "option --fit: 'mesh.width_pes' is not a cost parameter" -- "$bin" calibrate --measurements "$tmp/m.csv" --fit mesh.width_pes
expect_error "calibrate missing file" 2 "measurement file 'nope.csv': cannot be opened" -- mpi 2 "$bin" calibrate --measurements nope.csv
printf 'gemm,4,2,,,,3000,3000\n' >"$tmp/bad.csv"
expect_error "calibrate bad point" 2 "line 1: n 2 is below P 4" -- mpi 2 "$bin" calibrate --measurements "$tmp/bad.csv"

# --- bench kernel: rank 0 measures while the other rank waits; 15 rows per shape (decode: five
# kernels in cache and from DRAM, the reference; prefill: three kernels, the reference), the
# formats' cross-checks pass (exit 0), HDF5 table and parameters with units
mpi 2 "$bin" bench kernel --quick --threads 1 --min_time_s 0.001 --dram_GiB 0.01 --output "$tmp/bk.h5" >"$tmp/bk" 2>&1 \
  && [ "$(grep -cE '^(640x2560|2560x6912) ' "$tmp/bk")" -eq 30 ] && ! grep -q ERROR "$tmp/bk" \
  && ok "bench kernel: 30 rows at 2 ranks, formats agree" || bad "bench kernel: $(tail -5 "$tmp/bk")"
h5dump -a /kernel/time_us/units "$tmp/bk.h5" 2>&1 | grep -q '"us"' \
  && h5dump -a /kernel/roofline_at_start/triad_GBps/units "$tmp/bk.h5" 2>&1 | grep -q '"GB/s"' \
  && h5dump -a /parameters/min_time_s/units "$tmp/bk.h5" 2>&1 | grep -q '"s"' \
  && h5dump -d /kernel/table "$tmp/bk.h5" 2>&1 | grep -q '"bf16pan"' \
  && ok "bench kernel HDF5: table, roofline, parameters with units" || bad "bench kernel HDF5: $(h5dump -H "$tmp/bk.h5" | head -30)"
expect_error "bench kernel bad option at 2 ranks" 2 "option --tokens = '0': must be >= 1" -- \
  mpi 2 "$bin" bench kernel --quick --tokens 0 --output "$tmp/bk_never.h5"
expect_error "bench kernel bad shape" 2 "bench kernel: bad --shapes entry '64y64'" -- \
  "$bin" bench kernel --quick --shapes 64y64 --output "$tmp/bk_never.h5"
[ -e "$tmp/bk_never.h5" ] || ls "$tmp"/bk_never.h5.tmp* >/dev/null 2>&1 \
  && bad "a failed bench kernel left a results file" || ok "a failed bench kernel leaves no results file"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
