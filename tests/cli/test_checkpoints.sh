#!/usr/bin/env bash
# usage: test_checkpoints.sh WAFERMESH_BINARY SOURCE_DIR MPIEXEC CHECKPOINT_DIR
# `wafermesh generate --weights FILE.gguf|DIR` end to end, on stories260K written in every format by
# tests/model/write_checkpoints.py (CHECKPOINT_DIR, made by the model_checkpoint_files fixture):
# without --model the shape and vocabulary come from the file; the text equals the llama2.c path's
# (the golden text for F32 and Hugging Face F32, the same-rounded llama2.c checkpoint's for F16 and
# BF16, the in-memory ternarisation's for the ternary files) at 1 and 2 ranks, with identical
# virtual figures; then damaged files are one line on stderr, exit code 2, no results file, at 1
# and 2 ranks.
set -u
bin=$1 src=$2 mpiexec=$3 ck=$4
. "$(dirname "$0")/harness.sh"
cd "$src" || exit 1
golden=tests/data/stories260K/expected_t0_n200.txt
for f in "$golden" "$ck/stories_f32.gguf" "$ck/stories_hf/model.safetensors"; do
  [ -f "$f" ] || { echo "FAIL - missing $f (run the model_checkpoint_files fixture)"; exit 1; }
done
model=configs/models/stories260K.ini
# The generated text: the third line of the output (after the header line and a blank line).
text() {  # NAME RANKS ARGS...
  local name=$1 n=$2; shift 2
  mpi "$n" "$bin" generate --temperature 0 --config configs/laptop.ini --output "" "$@" >"$tmp/$name.out" 2>"$tmp/$name.err" \
    || { bad "$name: exit $? ($(tail -c 300 "$tmp/$name.err"))"; return; }
  sed -n 3p "$tmp/$name.out" > "$tmp/$name.txt"
  grep -vE 'wall|placed in|rank\(s\)' "$tmp/$name.out" > "$tmp/$name.fig"
}
same() {  # A B WHAT
  if [ -s "$tmp/$1.txt" ] && cmp -s "$tmp/$1.txt" "$tmp/$2.txt"; then ok "$3: $(head -c 60 "$tmp/$1.txt")..."
  else bad "$3: '$(head -c 120 "$tmp/$1.txt")' vs '$(head -c 120 "$tmp/$2.txt")'"; fi
}

# --- float checkpoints, no --model: the golden text at 1 and 2 ranks, identical figures
for n in 1 2; do
  text gguf$n "$n" --weights "$ck/stories_f32.gguf" --steps 200
  if awk 'NR > 2' "$tmp/gguf$n.out" | head -c "$(wc -c < "$golden")" | cmp -s - "$golden"; then
    ok "stories_f32.gguf without --model prints expected_t0_n200.txt at $n rank(s)"
  else bad "stories_f32.gguf at $n rank(s): $(sed -n 3p "$tmp/gguf$n.out" | head -c 200)"; fi
done
cmp -s "$tmp/gguf1.fig" "$tmp/gguf2.fig" && ok "virtual figures identical at 1 and 2 ranks" \
  || bad "figures differ: $(diff "$tmp/gguf1.fig" "$tmp/gguf2.fig" | head -4)"
grep -q '^generate: stories260K (fp32)' "$tmp/gguf1.out" && ok "the model's name and kind come from the metadata" \
  || bad "header: $(head -1 "$tmp/gguf1.out")"

text ref 1 --model "$model" --steps 120
text ref_prompt 2 --model "$model" --steps 80 --prompt "Once upon a time, a dragon"
for d in stories_hf stories_hf_sharded; do
  text "$d" 2 --model "$model" --weights "$ck/$d" --steps 120
  same "$d" ref "$d/ (split-half RoPE rows, tokenizer from --model) = the llama2.c text"
done
text hf_prompt 1 --model "$model" --weights "$ck/stories_hf" --steps 80 --prompt "Once upon a time, a dragon"
same hf_prompt ref_prompt "stories_hf/ with a prompt = the llama2.c text"
text f16 2 --weights "$ck/stories_f16.gguf" --steps 120
text f16ref 1 --model "$model" --weights "$ck/stories_f16ref.bin" --steps 120
same f16 f16ref "stories_f16.gguf = the llama2.c checkpoint of the same F16 values"
text bf16 1 --model "$model" --weights "$ck/stories_hf_bf16" --steps 120
text bf16ref 2 --model "$model" --weights "$ck/stories_bf16ref.bin" --steps 120
same bf16 bf16ref "stories_hf_bf16/ = the llama2.c checkpoint of the same BF16 values"

# --- ternary files against the in-memory ternarisation (the file's codes and scale; a prompt,
# as the ternarised model ends at once without one)
p="Once upon a time, there was a"
text tq_i2s 2 --weights "$ck/stories_i2s.gguf" --steps 60 --prompt "$p"
text tq_mem 1 --model "$model" --quantize ternary --steps 60 --prompt "$p"
same tq_i2s tq_mem "stories_i2s.gguf = stories260K.bin --quantize ternary"
grep -q '(ternary BitLinear)' "$tmp/tq_i2s.out" && ok "an I2_S file runs as a ternary model" || bad "not ternary: $(head -1 "$tmp/tq_i2s.out")"
for f in stories_tq2.gguf stories_tq1.gguf; do
  text "t_$f" 1 --weights "$ck/$f" --steps 60 --prompt "$p"
  text "t_ref_$f" 2 --model "$model" --weights "$ck/stories_tqref.bin" --quantize ternary --steps 60 --prompt "$p"
  same "t_$f" "t_ref_$f" "$f = stories_tqref.bin --quantize ternary"
done
text packed 2 --model "$model" --weights "$ck/stories_hf_packed" --steps 60 --prompt "$p"
text packedref 1 --model "$model" --weights "$ck/stories_packedref.bin" --quantize ternary --steps 60 --prompt "$p"
same packed packedref "stories_hf_packed/ (BitNet packed U8) = stories_packedref.bin --quantize ternary"

# --- bad input: one line, exit 2, no results file, at 1 and 2 ranks
expect_error() {  # NAME PATTERN -- command...
  local name=$1 pat=$2; shift 3
  "$@" >"$tmp/out" 2>"$tmp/err"
  local rc=$? lines
  lines=$(grep -vc '^$' "$tmp/err")
  if [ "$rc" -ne 2 ]; then bad "$name: exit $rc, want 2 ($(head -c 300 "$tmp/err"))"; return; fi
  if [ "$lines" -ne 1 ]; then bad "$name: $lines stderr lines, want 1: $(head -c 500 "$tmp/err")"; return; fi
  if ! grep -qE "$pat" "$tmp/err"; then bad "$name: stderr '$(cat "$tmp/err")' lacks /$pat/"; return; fi
  ok "$name: $(cat "$tmp/err")"
}
g="$ck/stories_f32.gguf"
head -c 700000 "$g" > "$tmp/trunc.gguf"
head -c 5000 "$g" > "$tmp/trunc_header.gguf"
{ printf 'GGUG'; tail -c +5 "$g"; } > "$tmp/magic.gguf"
{ head -c 8 "$g"; printf '\xff\xff\xff\xff\xff\xff\xff\x3f'; tail -c +17 "$g"; } > "$tmp/count.gguf"
mkdir -p "$tmp/hf_trunc" "$tmp/hf_len"
cp "$ck/stories_hf/config.json" "$tmp/hf_trunc/" && head -c 600000 "$ck/stories_hf/model.safetensors" > "$tmp/hf_trunc/model.safetensors"
cp "$ck/stories_hf/config.json" "$tmp/hf_len/" && { printf '\x00\x00\x00\x00\x00\x00\x01\x00'; tail -c +9 "$ck/stories_hf/model.safetensors"; } > "$tmp/hf_len/model.safetensors"
for n in 1 2; do
  expect_error "truncated GGUF, $n rank(s)" "trunc.gguf: tensor .* lies outside the data section" -- \
    mpi "$n" "$bin" generate --weights "$tmp/trunc.gguf" --output "$tmp/x.h5"
  expect_error "forged tensor count, $n rank(s)" "count.gguf: tensor count [0-9]+ cannot fit" -- \
    mpi "$n" "$bin" generate --weights "$tmp/count.gguf" --output "$tmp/x.h5"
  expect_error "truncated safetensors, $n rank(s)" "model.safetensors: tensor .* lies outside the data" -- \
    mpi "$n" "$bin" generate --model "$model" --weights "$tmp/hf_trunc" --output "$tmp/x.h5"
done
expect_error "GGUF cut inside its metadata" "trunc_header.gguf: truncated: .*" -- \
  mpi 2 "$bin" generate --weights "$tmp/trunc_header.gguf" --output "$tmp/x.h5"
expect_error "GGUF with a damaged magic" "magic.gguf: not a GGUF file" -- \
  mpi 1 "$bin" generate --weights "$tmp/magic.gguf" --output "$tmp/x.h5"
expect_error "safetensors with a forged header length" "header length [0-9]+ exceeds" -- \
  mpi 2 "$bin" generate --model "$model" --weights "$tmp/hf_len" --output "$tmp/x.h5"
expect_error "--model that disagrees with the file" "model.dim = 2560 does not match 64 in" -- \
  mpi 2 "$bin" generate --model configs/models/bitnet_2b4t.ini --weights "$g" --output "$tmp/x.h5"
expect_error "a directory without config.json" "needs config.json and model.safetensors" -- \
  mpi 1 "$bin" generate --weights "$tmp" --output "$tmp/x.h5"
[ -e "$tmp/x.h5" ] && bad "a failed run left $tmp/x.h5" || ok "no results file after the failures"

echo "$passes passed, $fails failed"
[ "$fails" -eq 0 ]
