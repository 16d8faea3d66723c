#!/usr/bin/env bash
# usage: test_generate.sh WAFERMESH_BINARY SOURCE_DIR MPIEXEC
# `wafermesh generate` end to end: stories260K's golden greedy text and identical virtual figures
# at 1, 2 and 4 ranks; the HDF5 file (tables, units, per-PE maps, provenance); a BitNet-shaped
# synthetic model; `bench decode` (1 rank against 2 and 4) against generate's tokens and cycles;
# one-line errors for bad input with no results file left behind.
# Uses the repository's stories260K (weights/, tests/data/; a missing file fails, naming it), and
# /usr/bin/python3 with h5py.
set -u
bin=$1 src=$2 mpiexec=$3
py=/usr/bin/python3
. "$(dirname "$0")/harness.sh"
expect_error() {  # NAME CODE PATTERN -- command...
  local name=$1 code=$2 pat=$3; shift 4
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$?
  local lines; lines=$(grep -vc '^$' "$tmp/err")
  if [ "$rc" -ne "$code" ]; then bad "$name: exit $rc, want $code ($(head -c 300 "$tmp/err"))"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$name: $lines stderr lines, want 1: $(head -c 500 "$tmp/err")"; return; fi
  if ! grep -qE "$pat" "$tmp/err"; then bad "$name: stderr '$(cat "$tmp/err")' lacks /$pat/"; return; fi
  ok "$name: $(cat "$tmp/err")"
}
cd "$src" || exit 1
stories=tests/data/stories260K
for f in weights/stories260K/stories260K.bin weights/stories260K/tok512.bin $stories/expected_t0_n200.txt; do
  [ -f "$f" ] || { echo "FAIL - missing $src/$f (the repository's stories260K files)"; exit 1; }
done

# --- golden text at 1, 2 and 4 ranks, identical figures
for n in 1 2 4; do
  mpi "$n" "$bin" generate --model configs/models/stories260K.ini --temperature 0 --steps 200 \
    --config configs/laptop.ini --output "$tmp/g$n.h5" >"$tmp/g$n.txt" 2>"$tmp/g$n.err" \
    || bad "generate np $n failed: $(tail -3 "$tmp/g$n.err")"
  # The text is what follows the header line and its blank line, up to the blank line before the figures.
  awk 'NR > 2' "$tmp/g$n.txt" | head -c "$(wc -c < "$stories/expected_t0_n200.txt")" > "$tmp/text$n"
  if cmp -s "$tmp/text$n" "$stories/expected_t0_n200.txt"; then ok "np $n prints expected_t0_n200.txt"
  else bad "np $n text differs: $(head -c 300 "$tmp/text$n")"; fi
  # Everything but wall times and the rank count must be identical.
  grep -vE 'wall|placed in|rank\(s\)|^wrote' "$tmp/g$n.txt" > "$tmp/fig$n"
done
for n in 2 4; do
  cmp -s "$tmp/fig1" "$tmp/fig$n" && ok "virtual figures identical at 1 and $n ranks" \
    || bad "figures differ between 1 and $n ranks: $(diff "$tmp/fig1" "$tmp/fig$n" | head -5)"
done
grep -qE 'tokens/s per request' "$tmp/g1.txt" && grep -qE 'time to first token' "$tmp/g1.txt" \
  && grep -qE 'peak SRAM per PE' "$tmp/g1.txt" && grep -qE 'route entries per PE' "$tmp/g1.txt" \
  && grep -qE '^ +all ' "$tmp/g1.txt" && ok "figures printed (TTFT, tokens/s, SRAM, routes, per-layer)" \
  || bad "figures missing: $(tail -20 "$tmp/g1.txt")"

# --- --wafer.dtype fp16: the host still computes in fp32, so the text is fp32's; the wafer holds
# fp data at 2 bytes (all of this model's data is fp, and the placement is the same: half the peak
# SRAM); the figures are identical at 1, 2 and 4 ranks
run16() {  # RANKS DTYPE -> $tmp/w_DTYPE_RANKS.txt
  mpi "$1" "$bin" generate --model configs/models/stories260K.ini --temperature 0 --steps 60 --prompt "Once upon a time" \
    --config configs/laptop.ini --output "" --wafer.dtype "$2" >"$tmp/w_$2_$1.txt" 2>"$tmp/w_$2_$1.err" \
    || bad "generate --wafer.dtype $2 np $1 failed: $(tail -3 "$tmp/w_$2_$1.err")"
}
run16 1 fp32
for n in 1 2 4; do run16 "$n" fp16; done
if cmp -s <(sed -n 3p "$tmp/w_fp32_1.txt") <(sed -n 3p "$tmp/w_fp16_1.txt") && grep -q 'Once upon a time' "$tmp/w_fp16_1.txt"; then
  ok "the same text with --wafer.dtype fp16 and fp32"
else bad "fp16 text differs: $(sed -n 3p "$tmp/w_fp16_1.txt") / $(sed -n 3p "$tmp/w_fp32_1.txt")"; fi
s32=$(grep 'peak SRAM per PE' "$tmp/w_fp32_1.txt" | awk '{print $5}')
s16=$(grep 'peak SRAM per PE' "$tmp/w_fp16_1.txt" | awk '{print $5}')
grep -q '5 layers on 1 region(s)' "$tmp/w_fp32_1.txt" && grep -q '5 layers on 1 region(s)' "$tmp/w_fp16_1.txt" \
  && [ -n "$s32" ] && [ -n "$s16" ] && [ $((2 * s16)) -eq "$s32" ] && grep -q 'on the wafer fp16' "$tmp/w_fp16_1.txt" \
  && ok "fp16 wafer: peak SRAM $s16 bytes per PE, half of fp32's $s32" || bad "fp16 SRAM '$s16' vs fp32 '$s32': $(head -1 "$tmp/w_fp16_1.txt")"
for n in 1 2 4; do grep -vE 'wall|placed in|rank\(s\)|^wrote' "$tmp/w_fp16_$n.txt" > "$tmp/wfig$n"; done
for n in 2 4; do
  cmp -s "$tmp/wfig1" "$tmp/wfig$n" && ok "fp16 wafer: virtual figures identical at 1 and $n ranks" \
    || bad "fp16 figures differ between 1 and $n ranks: $(diff "$tmp/wfig1" "$tmp/wfig$n" | head -5)"
done
cmp -s <(grep -vE 'wall|placed in|rank\(s\)|^wrote|^generate' "$tmp/w_fp32_1.txt") "$tmp/wfig1" \
  && bad "fp16 and fp32 runs report the same figures" || ok "fp16 and fp32 runs report different figures"

# --- the HDF5 file: tables with units, per-PE maps (identical at 1 and 4 ranks), provenance
h5dump -a /command_line "$tmp/g1.h5" >/dev/null 2>&1 && ok "h5dump reads the provenance" || bad "h5dump: no /command_line"
for d in generate/table generate/tokens/table generate/layers/table generate/pe_maps/sram_peak_bytes; do
  h5dump -H -d "/$d" "$tmp/g1.h5" >/dev/null 2>&1 || bad "missing dataset /$d"
done
h5dump -a /generate/tokens_per_s/units "$tmp/g1.h5" 2>/dev/null | grep -q 'tokens/s' \
  && ok "tokens_per_s carries its units" || bad "tokens_per_s units: $(h5dump -a /generate/tokens_per_s/units "$tmp/g1.h5" 2>&1 | head -5)"
h5diff "$tmp/g1.h5" "$tmp/g4.h5" /generate/pe_maps /generate/pe_maps >/dev/null 2>&1 \
  && ok "per-PE maps identical at 1 and 4 ranks" || bad "per-PE maps differ between 1 and 4 ranks"

# --- a prompt: MeshGEMM prefill (default) and token-by-token prefill give the same text; the first
# reports the prefill, and its time to first token is the smaller on this model
# A 47-token prompt: MeshGEMM's steps cost about the same for any prompt that fits a tile, so it
# beats token-by-token decode only on long prompts (laptop.ini, 2 ranks: 12 positions 657,117 vs
# 259,224 cycles; 47 positions 694,637 vs 1,032,234).
for pf in gemm decode; do
  mpi 2 "$bin" generate --model configs/models/stories260K.ini \
    --prompt "Once upon a time, a dragon lived in a big cave near the sea. Every day the dragon flew over the town." \
    --temperature 0 --steps 60 --config configs/laptop.ini --prefill "$pf" --output "" >"$tmp/p_$pf.txt" 2>/dev/null \
    || bad "generate --prefill $pf failed"
done
if cmp -s <(sed -n 3p "$tmp/p_gemm.txt") <(sed -n 3p "$tmp/p_decode.txt") && grep -q 'dragon' "$tmp/p_gemm.txt"; then
  ok "same text with --prefill gemm and decode"
else bad "prefill texts differ: $(sed -n 3p "$tmp/p_gemm.txt") / $(sed -n 3p "$tmp/p_decode.txt")"; fi
tg=$(grep 'time to first token' "$tmp/p_gemm.txt" | sed -E 's/.*\(([0-9]+) cycles.*/\1/')
td=$(grep 'time to first token' "$tmp/p_decode.txt" | sed -E 's/.*\(([0-9]+) cycles.*/\1/')
if grep -q 'prefill as MeshGEMM' "$tmp/p_gemm.txt" && [ -n "$tg" ] && [ -n "$td" ] && [ "$tg" -lt "$td" ]; then
  ok "MeshGEMM prefill: time to first token $tg cycles vs $td token by token"
else bad "prefill figures: '$tg' vs '$td': $(grep 'time to first' "$tmp/p_gemm.txt" "$tmp/p_decode.txt")"; fi

figures() { sed -n '/^wafer (virtual/,/^emulation/p' "$1" | grep -v '^emulation'; sed -n '/^per layer/,/hand-offs between/p' "$1"; }
# --- per-phase placements: the prompt on 8 x 8 regions, decode on 16 x 16, the KV cache and the
# weights re-placed between them over the NoC (model/phase_switch.hpp): the golden text (its first
# sentence as the prompt), identical figures and per-PE maps at 1, 2 and 4 ranks, the switch's
# cycles printed and in the results file; with equal sides no switch and the figures of one
# placement.
gp="Once upon a time, there was a little girl named Lily."
for n in 1 2 4; do
  mpi "$n" "$bin" generate --model configs/models/stories260K.ini --config configs/laptop.ini --temperature 0 \
    --prompt "$gp" --steps 200 --region 16 --prefill_region 8 --output "$tmp/sw$n.h5" >"$tmp/sw$n.txt" 2>"$tmp/sw$n.err" \
    || bad "generate with a switch, np $n: $(tail -3 "$tmp/sw$n.err")"
  awk 'NR > 2' "$tmp/sw$n.txt" | head -c "$(wc -c < "$stories/expected_t0_n200.txt")" > "$tmp/swtext$n"
  if cmp -s "$tmp/swtext$n" "$stories/expected_t0_n200.txt"; then ok "prefill on side 8, decode on 16, np $n: expected_t0_n200.txt"
  else bad "switch np $n text differs: $(head -c 300 "$tmp/swtext$n")"; fi
  grep -vE 'wall|placed in|rank\(s\)|^wrote' "$tmp/sw$n.txt" > "$tmp/swfig$n"
done
for n in 2 4; do
  cmp -s "$tmp/swfig1" "$tmp/swfig$n" && ok "switch: virtual figures identical at 1 and $n ranks" \
    || bad "switch figures differ between 1 and $n ranks: $(diff "$tmp/swfig1" "$tmp/swfig$n" | head -5)"
done
swc=$(h5dump -d /generate/switch_cycles "$tmp/sw1.h5" 2>/dev/null | sed -nE 's/^ *\(0\): ([0-9]+).*/\1/p')
if grep -qE "prefill -> decode .*\($swc cycles\) re-placing side 8 onto side 16: weights [1-9][0-9]* bytes, KV cache [1-9][0-9]* bytes" "$tmp/sw1.txt" \
   && [ -n "$swc" ] && [ "$swc" -gt 0 ]; then
  ok "switch reported: $(grep 'prefill -> decode' "$tmp/sw1.txt" | xargs | cut -c1-120)"
else bad "switch not reported: '$swc' $(grep -A2 'time to first' "$tmp/sw1.txt")"; fi
if command -v h5diff >/dev/null; then
  h5diff "$tmp/sw1.h5" "$tmp/sw4.h5" /generate/pe_maps /generate/pe_maps >"$tmp/swhd" 2>&1 \
    && ok "switch: per-PE maps identical at 1 and 4 ranks" || bad "switch maps: $(head -5 "$tmp/swhd")"
fi
for a in "--region 8 --prefill_region 8" "--region 8"; do
  mpi 2 "$bin" generate --model configs/models/stories260K.ini --config configs/laptop.ini --temperature 0 \
    --prompt "$gp" --steps 40 $a --output "" >"$tmp/eq_${a// /_}.txt" 2>&1 || bad "generate $a: $(tail -3 "$tmp/eq_${a// /_}.txt")"
done
if diff <(figures "$tmp/eq_--region_8_--prefill_region_8.txt") <(figures "$tmp/eq_--region_8.txt") >"$tmp/eqd" \
   && ! grep -q 'prefill -> decode' "$tmp/eq_--region_8_--prefill_region_8.txt" && grep -q 'decode  ' "$tmp/eq_--region_8.txt"; then
  ok "equal sides: no switch, the figures of one placement"
else bad "equal sides: $(head -10 "$tmp/eqd")"; fi

# --- a BitNet-shaped synthetic model (small: 2 layers) runs and reports ternary figures
sed -e 's/^layers = 30/layers = 2/' -e 's/^vocab = 128256/vocab = 3000/' configs/models/bitnet_2b4t.ini > "$tmp/bn.ini"
mpi 2 "$bin" generate --model "$tmp/bn.ini" --region 32 --steps 4 --output "$tmp/bn.h5" --maps false >"$tmp/bn.txt" 2>"$tmp/bn.err" \
  && grep -q 'ternary BitLinear' "$tmp/bn.txt" && grep -q 'generated 4' "$tmp/bn.txt" \
  && ok "BitNet-shaped synthetic model: $(grep 'decode ' "$tmp/bn.txt")" || bad "BitNet-shaped run: $(tail -5 "$tmp/bn.err" "$tmp/bn.txt")"

# Timing only (--weights none): the same virtual figures and per-PE maps as the full run, at 1 and 2
# ranks, on stories260K (its greedy text does not end before --steps) and on the BitNet shape above
# with a prompt of token ids.
for n in 1 2; do
  for w in full none; do
    extra=(); [ "$w" = none ] && extra=(--weights none)
    mpi $n "$bin" generate --model configs/models/stories260K.ini --config configs/laptop.ini --temperature 0 \
      --prompt "Once upon a time" --steps 24 --output "$tmp/t_$w$n.h5" "${extra[@]}" >"$tmp/t_$w$n" 2>&1 \
      || bad "generate weights $w at $n ranks: $(tail -3 "$tmp/t_$w$n")"
  done
  if diff <(figures "$tmp/t_full$n") <(figures "$tmp/t_none$n") >"$tmp/tdiff" && grep -q 'timing only' "$tmp/t_none$n" \
     && ! grep -q 'timing only' "$tmp/t_full$n" && grep -q 'generated 20' "$tmp/t_full$n"; then
    ok "weights none at $n ranks: the full run's figures ($(grep 'decode  ' "$tmp/t_none$n" | xargs))"
  else bad "weights none at $n ranks: $(head -20 "$tmp/tdiff") $(tail -3 "$tmp/t_none$n")"; fi
  if command -v h5diff >/dev/null; then
    h5diff "$tmp/t_full$n.h5" "$tmp/t_none$n.h5" /generate/pe_maps /generate/pe_maps >"$tmp/thd" 2>&1 \
      && ok "weights none at $n ranks: per-PE maps identical" || bad "weights none maps: $(head -5 "$tmp/thd")"
  fi
done
# The tuned placement (no --region): every candidate side in the output and the results file.
cands() { sed -n '/^placement candidates/,/^placement: side/p' "$1" | sed -E 's/probes took .*//'; }
if grep -qE '^placement: side [0-9]+ chosen' "$tmp/t_full1" && grep -qE '<- chosen$' "$tmp/t_full1" \
   && h5dump -d /generate/placement_candidates/table "$tmp/t_full1.h5" >/dev/null 2>&1 \
   && diff <(cands "$tmp/t_full1") <(cands "$tmp/t_full2") >/dev/null; then
  ok "tuned placement: $(grep '^placement: side' "$tmp/t_full1" | sed 's/;.*//'), the same candidates at 1 and 2 ranks"
else bad "tuned placement: $(cands "$tmp/t_full1") / $(cands "$tmp/t_full2")"; fi
for w in synthetic none; do
  mpi 2 "$bin" generate --model "$tmp/bn.ini" --region 32 --weights $w --prompt_tokens 5 --steps 8 --output "" >"$tmp/bt_$w" 2>&1 \
    || bad "BitNet shape, weights $w: $(tail -3 "$tmp/bt_$w")"
done
diff <(figures "$tmp/bt_synthetic") <(figures "$tmp/bt_none") >"$tmp/tdiff" && grep -q 'prompt tokens 5' "$tmp/bt_none" \
  && ok "weights none, BitNet shape, 5 prompt tokens: the full run's figures" || bad "BitNet shape timing only: $(head -20 "$tmp/tdiff")"

# --- bench decode: the same placement at 1 rank and at 2 and 4, rounds alternating. Its chain of
# tokens and cycles must be generate's (same sampler, seed and placement), and its per-round and
# summary figures must be what its own wall times give.
"$bin" generate --model configs/models/stories260K.ini --config configs/laptop.ini --region 8 --steps 10 \
  --output "$tmp/bdg.h5" --maps false >/dev/null 2>"$tmp/bdg.err" || bad "generate for bench decode: $(cat "$tmp/bdg.err")"
# At 2 ranks the 1-rank rounds run on rank 1 and on rank 0 (in that order), at 4 on rank 0 alone.
for n in 2 4; do
  if [ $n = 2 ]; then solo=1,0; srows=2; else solo=0; srows=1; fi
  if mpi $n "$bin" bench decode --model configs/models/stories260K.ini --config configs/laptop.ini --region 8 \
       --tokens 3 --rounds 3 --solo-ranks $solo --output "$tmp/bd$n.h5" >"$tmp/bd$n.txt" 2>"$tmp/bd$n.err"; then
    [ "$(grep -c "speed-up 1 -> $n ranks: median of the rounds" "$tmp/bd$n.txt")" -eq $srows ] \
      && grep -q "the 10 positions' tokens and virtual cycles are the same at 1 and $n ranks" "$tmp/bd$n.txt" \
      && [ "$(grep -cE '^ +[0-2] +(1|'$n') +[01] +[0-9.]+ +[0-9.]+ +[0-9.]+$' "$tmp/bd$n.txt")" -eq $((3 * srows)) ] \
      && ok "bench decode at $n ranks: 3 rounds and the summary printed" || bad "bench decode np $n: $(cat "$tmp/bd$n.txt")"
    if "$py" - "$tmp/bd$n.h5" "$tmp/bdg.h5" $n $solo >"$tmp/bdpy" 2>&1 <<'PY'
import sys, statistics
import h5py
b, g, n = h5py.File(sys.argv[1], "r")["decode"], h5py.File(sys.argv[2], "r")["generate/tokens"], int(sys.argv[3])
solo = [int(x) for x in sys.argv[4].split(",")]
assert list(b["positions/token"][:]) == list(g["token"][:]), (b["positions/token"][:], g["token"][:])
assert list(b["positions/cycles"][:]) == list(g["cycles"][:]), (b["positions/cycles"][:], g["cycles"][:])
w1, wn, r, sr = b["wall_s_per_token_1_rank"][:], b["wall_s_per_token_n_ranks"][:], b["speedup"][:], b["solo_rank"][:]
S = len(solo)
assert len(r) == 3 * S and all(x > 0 for x in w1) and all(x > 0 for x in wn)
assert all(abs(r[i] - w1[i] / wn[i]) < 1e-9 * r[i] for i in range(3 * S)), (r, w1, wn)
assert list(b["first"][:]) == [f for f in [1, n, 1] for _ in solo], b["first"][:]
assert list(sr) == solo * 3, sr
s = b["summary"]
assert list(s["solo_rank"][:]) == solo and all(x == n for x in s["ranks"][:]), (s["solo_rank"][:], s["ranks"][:])
for k, rank in enumerate(solo):
    mine = [r[i] for i in range(3 * S) if sr[i] == rank]
    assert abs(s["median_speedup"][k] - statistics.median(mine)) < 1e-12, (k, s["median_speedup"][:], mine)
    assert abs(s["median_wall_s_per_token_1_rank"][k] - statistics.median(w1[i] for i in range(3 * S) if sr[i] == rank)) < 1e-12
PY
    then ok "bench decode at $n ranks (1 rank on $solo): generate's tokens and cycles, ratios from its wall times"
    else bad "bench decode np $n results: $(cat "$tmp/bdpy")"; fi
  else
    bad "bench decode np $n: $(cat "$tmp/bd$n.err")"
  fi
done
expect_error "bench decode, a solo rank beyond the job" 2 "option --solo-ranks = 2 names no rank of this job: its ranks are 0..1" -- \
  mpi 2 "$bin" bench decode --model configs/models/stories260K.ini --config configs/laptop.ini --region 8 --solo-ranks 0,2 \
  --output "$tmp/x.h5"
expect_error "bench decode, a solo rank twice" 2 "option --solo-ranks names rank 1 twice" -- \
  mpi 2 "$bin" bench decode --model configs/models/stories260K.ini --config configs/laptop.ini --region 8 --solo-ranks 1,0,1 \
  --output "$tmp/x.h5"
expect_error "bench decode at 1 rank" 2 "bench decode compares 1 rank with the job's ranks.*this job has 1" -- \
  "$bin" bench decode --model configs/models/stories260K.ini --output "$tmp/x.h5"
expect_error "bench decode beyond the context" 2 "tokens x --rounds = 600 positions.*seq_len = 512" -- mpi 2 \
  "$bin" bench decode --model configs/models/stories260K.ini --tokens 100 --rounds 6 --output "$tmp/x.h5"

# --- bad input: one line, non-zero exit, no results file
head -c 1000 weights/stories260K/stories260K.bin > "$tmp/trunc.bin"
expect_error "truncated checkpoint (bad input: exit 2)" 2 "trunc.bin.*(expected|bytes)" -- mpi 2 "$bin" generate \
  --model configs/models/stories260K.ini --weights "$tmp/trunc.bin" --output "$tmp/x.h5"
expect_error "prompt without tokenizer" 2 "prompt.*tokenizer" -- mpi 2 "$bin" generate --model "$tmp/bn.ini" \
  --prompt hello --output "$tmp/x.h5"
expect_error "steps beyond the context" 2 "steps = 600.*seq_len = 512" -- mpi 2 "$bin" generate \
  --model configs/models/stories260K.ini --steps 600 --output "$tmp/x.h5"
expect_error "prefill_region without a MeshGEMM prefill" 2 "prefill_region = 8 needs a MeshGEMM prefill" -- mpi 2 \
  "$bin" generate --model configs/models/stories260K.ini --config configs/laptop.ini --prompt "Once upon a time" \
  --prefill decode --prefill_region 8 --output "$tmp/x.h5"
expect_error "region larger than the mesh" 2 "region side 64" -- mpi 2 "$bin" generate \
  --model configs/models/stories260K.ini --config configs/laptop.ini --region 64 --output "$tmp/x.h5"
expect_error "model that does not fit" 3 "needs .* per PE.*pe.sram_bytes = 2048" -- mpi 2 "$bin" generate \
  --model configs/models/stories260K.ini --config configs/laptop.ini --region 8 --pe.sram_bytes 2048 --output "$tmp/x.h5"
expect_error "bad kv policy" 2 "kv-policy" -- mpi 2 "$bin" generate --model configs/models/stories260K.ini \
  --kv-policy fifo --output "$tmp/x.h5"
expect_error "prompt and prompt_tokens" 2 "options --prompt and --prompt_tokens = 4" -- "$bin" generate \
  --model configs/models/stories260K.ini --prompt hello --prompt_tokens 4 --output "$tmp/x.h5"
expect_error "prompt_tokens beyond steps" 2 "prompt is 30 tokens.*steps = 20" -- "$bin" generate \
  --model configs/models/stories260K.ini --weights none --prompt_tokens 30 --steps 20 --output "$tmp/x.h5"
[ -e "$tmp/x.h5" ] && bad "a failed run left $tmp/x.h5" || ok "no results file after the failures"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
