#!/usr/bin/env bash
# usage: corpus.sh WAFERMESH_BINARY SOURCE_DIR MPIEXEC
# The bad-input corpus: every case runs at 1 and 2 ranks (WM_CORPUS_RANKS="1" for 1 only; four
# runs at a time) under a timeout, and must end with
#   - the documented exit code: 2 for bad input, 3 for a limit of the emulated machine;
#   - exactly one line on stderr, beginning "wafermesh: error: " (and matching the case's
#     pattern, which names the value or file at fault);
#   - nothing on stdout (every input is checked before a command prints anything);
#   - its working directory as it was: no results file, no X.tmpPID, no .partial, no .lock;
#   - no process of the job left (each job carries a marker in its environment).
# A few cases of valid but unusual input (byte fallback for characters outside the vocabulary,
# invalid UTF-8, NUL) must instead succeed with an empty stderr. The damaged inputs are made by
# make_inputs.py from the repository's stories260K. Prints "ok - ..." / "FAIL - ..." per case and
# rank count; fails if any failed.
#   corpus.sh --case N RANKS    (internal: runs line N of $WORK/cases; the environment carries the rest)
set -u

define_cases() {
  local M=$IN/m_good.ini CFG=$SRC/configs/laptop.ini  # stories260K with absolute paths (cases run in their own directory)
  local G0=(generate --output out.h5 --mesh.width_pes 48 --mesh.height_pes 32)  # a run that would write out.h5
  local G=(generate --config "$CFG" --output out.h5)
  cases=()
  c() { local code=$1 pat=$2 setup=$3; shift 4; cases+=("$code"$'\x1f'"$pat"$'\x1f'"$setup"$'\x1f'"$(printf '%q ' "$@")"); }

  # ---- command line
  c 2 "unknown command 'frobnicate'" "" -- frobnicate
  c 2 "unrecognised option '--bogus'" "" -- info --bogus 1
  c 2 "unexpected argument 'stray'" "" -- info stray
  c 2 "unexpected argument 'laptop.ini'" "" -- demo --config "$CFG" laptop.ini --output out.h5
  c 2 "unexpected argument 'upon'" "" -- "${G[@]}" --model "$M" --prompt Once upon a time
  c 2 "unrecognised option '--mesh.width'" "" -- info --mesh.width 5
  c 2 "steps.*(missing|argument)" "" -- "${G[@]}" --model "$M" --steps
  c 2 "steps = 'many'.*not an integer" "" -- "${G[@]}" --model "$M" --steps many
  c 2 "steps = '0'.*must be >= 1" "" -- "${G[@]}" --model "$M" --steps 0
  c 2 "steps = '33554432'.*must be <=" "" -- "${G[@]}" --model "$M" --steps 33554432
  c 2 "steps = 600.*seq_len = 512" "" -- "${G[@]}" --model "$M" --steps 600
  c 2 "temperature = '-1'.*must be >= 0" "" -- "${G[@]}" --model "$M" --temperature -1
  c 2 "top-p = '2'.*must be <= 1" "" -- "${G[@]}" --model "$M" --top-p 2
  c 2 "seed = '0'.*must be >= 1" "" -- "${G[@]}" --model "$M" --seed 0
  c 2 "region = '-1'.*must be >= 0" "" -- "${G[@]}" --model "$M" --region -1
  c 2 "region side 64" "" -- "${G[@]}" --model "$M" --region 64
  c 2 "kv-policy = 'fifo'" "" -- "${G[@]}" --model "$M" --kv-policy fifo
  c 2 "prefill = 'later'" "" -- "${G[@]}" --model "$M" --prefill later
  c 2 "allreduce = 'tree'" "" -- "${G[@]}" --model "$M" --allreduce tree
  c 2 "levels = '0'.*must be >= 1" "" -- "${G[@]}" --model "$M" --levels 0
  c 2 "quantize = 'binary'" "" -- "${G[@]}" --model "$M" --quantize binary
  c 2 "maps = 'perhaps'.*not a boolean" "" -- "${G[@]}" --model "$M" --maps perhaps
  c 2 "pe.clock_ghz = '1e-300'.*must be >= 0.001" "" -- info --pe.clock_ghz 1e-300
  c 2 "pe.clock_ghz = '0'.*must be >= 0.001" "" -- info --pe.clock_ghz 0
  c 2 "pe.clock_ghz = '-1'" "" -- info --pe.clock_ghz -1
  c 2 "pe.clock_ghz = 'inf'.*not a number" "" -- info --pe.clock_ghz inf
  c 2 "pe.clock_ghz = 'nan'.*not a number" "" -- info --pe.clock_ghz nan
  c 2 "pe.clock_ghz = '1e400'.*not a number" "" -- info --pe.clock_ghz 1e400
  c 2 "pe.clock_ghz = '5000'.*must be <= 1000" "" -- info --pe.clock_ghz 5000
  c 2 "mesh.width_pes = '0'.*must be >= 1" "" -- info --mesh.width_pes 0
  c 2 "mesh.width_pes = '2097152'.*must be <=" "" -- info --mesh.width_pes 2097152
  c 2 "exceeds the emulator's limit" "" -- info --mesh.width_pes 1048576 --mesh.height_pes 1048576
  c 2 "pe.sram_bytes = '0'.*must be >= 1" "" -- info --pe.sram_bytes 0
  c 2 "pe.sram_bytes = '12kb'.*not an integer" "" -- info --pe.sram_bytes 12kb
  c 2 "noc.alpha_cycles = '99999999999'.*must be <=" "" -- info --noc.alpha_cycles 99999999999
  c 2 "pe.task_overhead_cycles = '-5'" "" -- info --pe.task_overhead_cycles -5
  c 2 "emu.inject_ns_per_cycle = '1e12'.*must be <=" "" -- info --emu.inject_ns_per_cycle 1e12
  c 2 "noc.route_fallback = 'maybe'" "" -- info --noc.route_fallback maybe
  c 2 "MPI ranks do not fit a 2 x 994 mesh: emu.ranks_x = 4 does not divide the rank count" "" -- info --mesh.width_pes 2 --emu.ranks_x 4
  c 2 "emu.ranks_x \* emu.ranks_y = 3 \* 3 = 9 differs from the rank count" "" -- info --emu.ranks_x 3 --emu.ranks_y 3
  c 2 "MPI ranks do not fit a 1 x 1 mesh" "" -- info --mesh.width_pes 1 --mesh.height_pes 1 --emu.ranks_x 1 --emu.ranks_y 5
  c 2 "WM_KERNEL_ISA: .*'foo'" "" -- env WM_KERNEL_ISA=foo info
  c 2 "unknown benchmark 'fft'" "" -- bench fft
  c 2 "algo = 'strassen'" "" -- bench gemm --config "$CFG" --algo strassen --output out.h5
  c 2 "P = '0'.*must be >= 1" "" -- bench gemm --config "$CFG" --P 0 --output out.h5
  c 2 "gemm region 100 x 100 .* does not fit" "" -- bench gemm --config "$CFG" --P 100 --output out.h5
  c 2 "bench gemm: A \(16777216 x 16777216\) needs .* bytes of host memory" "" -- bench gemm --config "$CFG" --P 4 --M 16777216 --K 16777216 --output out.h5
  c 2 "M = '0'.*must be >= 1" "" -- bench gemv --config "$CFG" --M 0 --output out.h5
  c 2 "bench gemv: W \(16777216 x 16777216\) needs" "" -- bench gemv --config "$CFG" --P 4 --M 16777216 --K 16777216 --output out.h5
  c 2 "dtype = 'int4'" "" -- bench gemv --config "$CFG" --dtype int4 --output out.h5
  c 2 "policy = 'lru'" "" -- bench kv --config "$CFG" --policy lru --output out.h5
  c 2 "option --tokens = '0': must be >= 1" "" -- bench decode --tokens 0 --output out.h5
  c 2 "option --solo-ranks = '-1': must be >= 0" "" -- bench decode --solo-ranks=-1 --output out.h5
  c 2 "option --solo-ranks = '0,x': not an integer" "" -- bench decode --solo-ranks 0,x --output out.h5
  c 2 "region side 100 PEs does not fit the 48 x 32 mesh" "" -- bench decode --config "$CFG" --model "$M" --region 100 --output out.h5
  c 2 "cannot read config file '/nonexistent.ini'" "" -- bench decode --model /nonexistent.ini --output out.h5
  c 2 "option --P = 64: a 64 x 64 region does not fit" "" -- bench kv --config "$CFG" --P 64 --model "$M" --output out.h5
  c 2 "tile_bytes = '0'.*must be >= " "" -- demo --config "$CFG" --tile_bytes 0 --output out.h5
  c 2 "bench kernel: bad --shapes entry '0x5': M and K must be positive" "" -- bench kernel --shapes 0x5
  c 2 "bench kernel: bad --shapes entry 'abc'" "" -- bench kernel --shapes abc
  c 2 "bench kernel: --shapes entry '1000000x1000000' needs 16000000000000 bytes of host memory, more than this machine's" "" -- bench kernel --shapes 1000000x1000000
  c 2 "option --threads = '0': must be >= 1" "" -- bench kernel --threads 0
  c 2 "option --tokens = '0': must be >= 1" "" -- bench kernel --tokens 0
  c 2 "option --tokens = '1,x'.*not an integer" "" -- bench kernel --tokens 1,x
  c 2 "option --min_time_s = '-1': must be > 0" "" -- bench kernel --min_time_s -1
  c 2 "option --dram_GiB = 100000: more than this machine's memory" "" -- bench kernel --dram_GiB 1e5
  c 2 "unexpected argument '2'" "" -- bench kernel --threads 1 2
  c 2 "unrecognised option '--bogus'" "" -- bench kernel --bogus
  c 2 "output 'fifo.h5' is a FIFO" "mkfifo fifo.h5" -- bench kernel --quick --output fifo.h5
  c 2 "output 'dir.h5' is a directory" "mkdir dir.h5" -- bench kernel --quick --output dir.h5
  c 2 "option --study is required" "" -- sweep
  c 2 "shard = '3/2'" "" -- sweep --study "$IN/st_good.ini" --shard 3/2
  c 2 "shard = 'x'" "" -- sweep --study "$IN/st_good.ini" --shard x
  c 2 "heartbeat_s = '-1'" "" -- sweep --study "$IN/st_good.ini" --heartbeat_s -1

  # ---- INI files given with --config
  c 2 "ini_malformed.ini" "" -- info --config "$IN/ini_malformed.ini"
  c 2 "ini_unknown_key.ini.*bogus_key" "" -- info --config "$IN/ini_unknown_key.ini"
  c 2 "ini_unknown_section.ini.*mash.width_pes" "" -- info --config "$IN/ini_unknown_section.ini"
  c 2 "mesh.width_pes = '-4' \(from .*ini_negative.ini\): must be >= 1" "" -- info --config "$IN/ini_negative.ini"
  c 2 "pe.clock_ghz = 'fast'.*not a number" "" -- info --config "$IN/ini_nonnum.ini"
  c 2 "pe.clock_ghz = '1e-300' \(from .*\): must be >= 0.001" "" -- info --config "$IN/ini_tiny_clock.ini"
  c 2 "exceeds the emulator's limit" "" -- info --config "$IN/ini_huge_mesh.ini"
  c 2 "ini_binary.ini" "" -- info --config "$IN/ini_binary.ini"
  c 2 "ini_dup.ini.*width_pes" "" -- info --config "$IN/ini_dup.ini"
  c 2 "cannot read config file '/nonexistent.ini'" "" -- info --config /nonexistent.ini
  c 2 "config file '.*' is a directory" "" -- info --config "$IN"
  c 2 "config file '.*' is a directory" "" -- "${G0[@]}" --model "$M" --config "$SRC/configs"

  # ---- model files
  for k in name dim hidden_dim layers heads kv_heads vocab seq_len; do
    c 2 "m_no_$k.ini: no $k = \.\.\. under \[model\]" "" -- "${G[@]}" --model "$IN/m_no_$k.ini"
  done
  c 2 "model.dim = '0'.*must be >= 1" "" -- "${G[@]}" --model "$IN/m_dim_0.ini"
  c 2 "model.dim = '-64'" "" -- "${G[@]}" --model "$IN/m_dim_-64.ini"
  c 2 "model.dim = '1099511627776'.*must be <= 1048576" "" -- "${G[@]}" --model "$IN/m_dim_1099511627776.ini"
  c 2 "model.dim = 'abc'.*not an integer" "" -- "${G[@]}" --model "$IN/m_dim_abc.ini"
  c 2 "model.hidden_dim = '0'" "" -- "${G[@]}" --model "$IN/m_hidden_dim_0.ini"
  c 2 "model.layers = '0'" "" -- "${G[@]}" --model "$IN/m_layers_0.ini"
  c 2 "model.layers = '70000'.*must be <= 65536" "" -- "${G[@]}" --model "$IN/m_layers_70000.ini"
  c 2 "model.heads = '0'" "" -- "${G[@]}" --model "$IN/m_heads_0.ini"
  c 2 "model.dim = 64 is not a multiple of model.heads = 3" "" -- "${G[@]}" --model "$IN/m_heads_3.ini"
  c 2 "model.heads = 8 is not a multiple of model.kv_heads = 3" "" -- "${G[@]}" --model "$IN/m_kv_heads_3.ini"
  c 2 "model.vocab = '0'.*must be >= 3" "" -- "${G[@]}" --model "$IN/m_vocab_0.ini"
  c 2 "model.vocab = '2'.*must be >= 3" "" -- "${G[@]}" --model "$IN/m_vocab_2.ini"
  c 2 "model.vocab = '99999999999'.*must be <=" "" -- "${G[@]}" --model "$IN/m_vocab_99999999999.ini"
  c 2 "model.seq_len = '0'" "" -- "${G[@]}" --model "$IN/m_seq_len_0.ini"
  c 2 "model.seq_len = '1e3'.*not an integer" "" -- "${G[@]}" --model "$IN/m_seq_len_1e3.ini"
  c 2 "model.ffn = 'gelu'" "" -- "${G[@]}" --model "$IN/m_ffn_gelu.ini"
  c 2 "model.rope_theta = '0'.*must be > 0" "" -- "${G[@]}" --model "$IN/m_rope_theta_0.ini"
  c 2 "model.norm_eps = '0'" "" -- "${G[@]}" --model "$IN/m_norm_eps_0.ini"
  c 2 "model.norm_eps = '2'" "" -- "${G[@]}" --model "$IN/m_norm_eps_2.ini"
  c 2 "model.ternary = 'maybe'" "" -- "${G[@]}" --model "$IN/m_ternary_maybe.ini"
  c 2 "m_bogus_1.ini.*bogus" "" -- "${G[@]}" --model "$IN/m_bogus_1.ini"
  c 2 "m_empty.ini: no name" "" -- "${G[@]}" --model "$IN/m_empty.ini"
  c 2 "m_nosection.ini.*dim" "" -- "${G[@]}" --model "$IN/m_nosection.ini"
  c 2 "m_malformed.ini" "" -- "${G[@]}" --model "$IN/m_malformed.ini"
  c 2 "m_binary.ini" "" -- "${G[@]}" --model "$IN/m_binary.ini"
  c 2 "model file '.*' is a directory" "" -- "${G[@]}" --model "$IN"
  c 2 "cannot read config file '/nonexistent/model.ini'" "" -- "${G[@]}" --model /nonexistent/model.ini
  c 2 "header field vocab_size = 512 does not match model.vocab = 500" "" -- "${G[@]}" --model "$IN/m_vocab_500.ini"
  c 2 "/nonexistent/stories.bin: cannot open checkpoint: No such file" "" -- "${G[@]}" --model "$IN/m_weights_missing.ini"
  c 2 "a checkpoint directory needs config.json and model.safetensors" "" -- "${G[@]}" --model "$IN/m_weights_dir.ini"
  c 2 "/nonexistent/tok.bin: cannot open tokenizer" "" -- "${G[@]}" --model "$IN/m_tok_missing.ini"
  c 2 "cannot open tokenizer: not a regular file" "" -- "${G[@]}" --model "$IN/m_tok_dir.ini"
  c 2 "option --prompt needs a tokenizer" "" -- "${G[@]}" --model "$IN/m_notok_synth.ini" --prompt hello
  c 3 "no region side of [0-9]+ tried fits the 48 x 32 mesh.*model huge: one layer needs" "" -- "${G[@]}" --model "$IN/m_huge_synth.ini" --steps 4
  c 3 "no region side of [0-9]+ tried fits the 48 x 32 mesh.*model deep needs" "" -- "${G[@]}" --model "$IN/m_deep_synth.ini" --steps 4

  # ---- checkpoints (--weights), all against the stories260K config
  for f in "$IN"/ck_trunc_*.bin; do
    n=${f##*ck_trunc_}; n=${n%.bin}
    if [ "$n" -lt 28 ]; then pat="has $n bytes, less than its 28-byte header"
    else pat="checkpoint has $n bytes, expected 1056540 for this model config \(truncated\)"; fi
    c 2 "$pat" "" -- "${G[@]}" --model "$M" --weights "$f"
  done
  c 2 "has 1056541 bytes, expected 1056540.*oversized" "" -- "${G[@]}" --model "$M" --weights "$IN/ck_over_1.bin"
  c 2 "has 1060636 bytes, expected 1056540.*oversized" "" -- "${G[@]}" --model "$M" --weights "$IN/ck_over_4096.bin"
  for f in "$IN"/ck_hdr_*.bin; do
    b=${f##*ck_hdr_}; field=${b%_*}
    [ "$field" = vocab_size ] && [ "${b##*_}" = neg ] && continue  # -1: not -vocab, a plain mismatch below
    c 2 "header field $field = -?[0-9]+ does not match" "" -- "${G[@]}" --model "$M" --weights "$f"
  done
  c 2 "header field vocab_size = -1 does not match model.vocab = 512" "" -- "${G[@]}" --model "$M" --weights "$IN/ck_hdr_vocab_size_neg.bin"
  for f in "$IN"/ck_nan_*.bin "$IN"/ck_inf_*.bin "$IN"/ck_ninf_*.bin; do
    b=${f##*/ck_}; kind=${b%%_*}; rest=${b#*_}; tensor=${rest%_*}
    case $kind in nan) v=NaN ;; inf) v='\+Inf' ;; ninf) v=-Inf ;; esac
    c 2 "tensor $tensor( of layer [0-9])? holds $v at row [0-9]+, column [0-9]+" "" -- "${G[@]}" --model "$M" --weights "$f"
  done
  for f in "$IN"/ck_flip_*.bin; do
    c 2 "ck_flip_.*holds NaN" "" -- "${G[@]}" --model "$M" --weights "$f"
  done
  c 2 "cannot open checkpoint: not a regular file" "mkfifo fifo.bin" -- "${G[@]}" --model "$M" --weights fifo.bin
  c 2 "cannot open checkpoint: not a regular file" "" -- "${G[@]}" --model "$M" --weights /dev/zero

  # ---- tokenizers (through model files naming them)
  for f in "$IN"/m_tok_trunc_*.ini; do
    c 2 "tokenizer truncated" "" -- "${G[@]}" --model "$f"
  done
  c 2 "tok_over_1.bin: tokenizer has [0-9]+ bytes, expected" "" -- "${G[@]}" --model "$IN/m_tok_over_1.ini"
  c 2 "max_token_length = 0, expected >= 1" "" -- "${G[@]}" --model "$IN/m_tok_maxlen_zero.ini"
  c 2 "max_token_length = -1, expected >= 1" "" -- "${G[@]}" --model "$IN/m_tok_maxlen_neg.ini"
  c 2 "has length [0-9]+, expected 0..3 \(max_token_length\)" "" -- "${G[@]}" --model "$IN/m_tok_maxlen_three.ini"
  c 2 "token 5 of 512 has length -3" "" -- "${G[@]}" --model "$IN/m_tok_len5_neg.ini"
  c 2 "token 5 of 512 has length 8, expected 0..7" "" -- "${G[@]}" --model "$IN/m_tok_len5_big.ini"
  c 2 "token 5 of 512 has length 2147483647" "" -- "${G[@]}" --model "$IN/m_tok_len5_huge.ini"

  # ---- prompts
  c 2 "the prompt is [0-9]+ tokens \(BOS included\), more than the model's context seq_len = 512" "" -- \
    "${G0[@]}" --model "$M" --config "$IN/ini_prompt_1mb.ini"
  c 2 "the prompt is 5 tokens \(BOS included\), more than steps = 4 positions" "" -- \
    "${G[@]}" --model "$M" --prompt "Once upon a time" --steps 4
  c 2 "the prompt is [0-9]+ tokens.*seq_len = 512" "" -- "${G[@]}" --model "$M" --prompt "$(printf 'Lily %.0s' {1..600})" --steps 512
  c 2 "the character at byte 5 \(bytes C3 BC\) has no token in .*tok_nobytes.bin.*no byte token <0xC3>" "" -- \
    "${G[@]}" --model "$IN/m_tok_nobytes.ini" --prompt "Lily $(printf '\xc3\xbc')ber" --steps 20
  c 2 "the character at byte 4 \(bytes FF\) has no token.*<0xFF>" "" -- \
    "${G[@]}" --model "$IN/m_tok_nobytes.ini" --prompt "$(printf 'abc \xff')" --steps 20
  c 2 "the character at byte 2 \(bytes 00\) has no token.*<0x00>" "" -- \
    "${G0[@]}" --model "$IN/m_tok_nobytes.ini" --config "$IN/ini_prompt_nul.ini" --steps 20
  c 2 "the character at byte 3 \(bytes E9\) has no token" "" -- \
    "${G0[@]}" --model "$IN/m_tok_nobytes.ini" --config "$IN/ini_prompt_utf8bad.ini" --steps 20
  c 2 "the character at byte 9 \(bytes F0 9F 98 80\) has no token.*<0xF0>" "" -- \
    "${G[@]}" --model "$IN/m_tok_nobytes.ini" --prompt "caf$(printf '\xc3\xa9') $(printf '\xe2\x82\xac')$(printf '\xf0\x9f\x98\x80')" --steps 20
  # Valid input: with byte tokens any byte sequence is spelled (exit 0, stderr empty).
  c 0 "" "" -- generate --config "$CFG" --output "" --model "$M" --prompt "caf$(printf '\xc3\xa9') $(printf '\xe2\x82\xac\xc3\xbc\xc3\x9f')" --steps 12
  c 0 "" "" -- generate --config "$CFG" --output "" --model "$M" --prompt "$(printf 'x\xff\xfe\x80y')" --steps 12
  c 0 "" "" -- generate --config "$IN/ini_prompt_nul.ini" --output "" --model "$M" --steps 12 --mesh.width_pes 48 --mesh.height_pes 32

  # ---- study files
  c 2 "st_ranks_dup.ini' line 2: ranks = '1, 1' repeats the rank count 1" "" -- sweep --study "$IN/st_ranks_dup.ini"
  c 2 "st_ranks_zero.ini' line 2.*not a rank count >= 1" "" -- sweep --study "$IN/st_ranks_zero.ini"
  c 2 "st_ranks_text.ini' line 2.*'two' is not a rank count" "" -- sweep --study "$IN/st_ranks_text.ini"
  c 2 "ranks = 9 exceeds the job's [12] rank" "" -- sweep --study "$IN/st_ranks_many.ini"
  c 2 "P = '4, 8, 4' repeats a value" "" -- sweep --study "$IN/st_vary_dup.ini"
  c 2 "P has an empty list" "" -- sweep --study "$IN/st_vary_empty.ini"
  c 2 "P = '4,,8' has an empty value" "" -- sweep --study "$IN/st_vary_hole.ini"
  c 2 "point 1 .*bogus_option" "" -- sweep --study "$IN/st_unknown_opt.ini"
  c 2 "unknown key 'speed'" "" -- sweep --study "$IN/st_unknown_key.ini"
  c 2 "unknown section \[sweeep\]" "" -- sweep --study "$IN/st_unknown_section.ini"
  c 2 "no 'command = \.\.\.'" "" -- sweep --study "$IN/st_no_command.ini"
  c 2 "command 'info' writes no results table" "" -- sweep --study "$IN/st_info.ini"
  c 2 "command 'sweep' writes no results table" "" -- sweep --study "$IN/st_sweep.ini"
  c 2 "unknown command 'frobnicate'" "" -- sweep --study "$IN/st_unknown_cmd.ini"
  c 2 "option 'output' cannot be set by a study" "" -- sweep --study "$IN/st_output.ini"
  c 2 "key 'P' given twice" "" -- sweep --study "$IN/st_twice.ini"
  c 2 "malformed section header" "" -- sweep --study "$IN/st_bad_header.ini"
  c 2 "point 1 \(steps=2 ranks=[12]\): cannot read config file '/nonexistent.ini'" "" -- sweep --study "$IN/st_model_missing.ini"
  c 2 "point 1 .*model file '.*' is a directory" "" -- sweep --study "$IN/st_model_dir.ini"
  c 2 "point 1 .*m_no_dim.ini: no dim" "" -- sweep --study "$IN/st_model_nodim.ini"
  c 2 "point 1 .*ck_trunc_4096.bin: checkpoint has 4096 bytes" "" -- sweep --study "$IN/st_weights_trunc.ini"
  c 2 "point 1 .*tensor wq of layer 2 holds NaN" "" -- sweep --study "$IN/st_weights_nan.ini"
  c 2 "point 1 .*tokenizer truncated" "" -- sweep --study "$IN/st_tok_trunc.ini"
  c 2 "point 1 \(steps=2 .*the prompt is 5 tokens.*more than steps = 2" "" -- sweep --study "$IN/st_prompt_long.ini"
  c 2 "point 1 .*cannot read config file '/nonexistent.ini'" "" -- sweep --study "$IN/st_kv_model_missing.ini"
  c 2 "point 2 \(P=100000 .*gemm region 100000 x 100000" "" -- sweep --study "$IN/st_gemm_region.ini"
  c 2 "point [0-9]+ \(dtype=int4 .*dtype = 'int4'" "" -- sweep --study "$IN/st_gemv_bad_choice.ini"
  c 2 "point 1 .*cannot read config file '/nonexistent.ini'" "" -- sweep --study "$IN/st_config_missing.ini"
  c 2 "study file '.*' is a directory" "" -- sweep --study "$IN"
  c 2 "cannot read study file '/nonexistent/study.ini'" "" -- sweep --study /nonexistent/study.ini
  c 2 "st_binary.ini" "" -- sweep --study "$IN/st_binary.ini"

  # ---- output paths: nothing is written over what is not a regular file
  local o
  for o in generate demo gemm gemv kv decode sweep; do
    local cmd=()
    case $o in
      generate) cmd=(generate --config "$CFG" --model "$M" --steps 4) ;;
      demo) cmd=(demo --config "$CFG") ;;
      gemm) cmd=(bench gemm --config "$CFG" --P 4 --M 16 --K 16 --N 16) ;;
      gemv) cmd=(bench gemv --config "$CFG" --P 4 --M 16 --K 16) ;;
      kv) cmd=(bench kv --config "$CFG" --P 4 --model "$M" --max_decode 4) ;;
      decode) cmd=(bench decode --config "$CFG" --model "$M" --region 4 --tokens 1 --rounds 1) ;;
      sweep) cmd=(sweep --study "$IN/st_good.ini") ;;
    esac
    c 2 "output 'node' is a (character device|symbolic link), not a regular file" "mknod node c 1 3 2>/dev/null || ln -s /dev/null node" -- "${cmd[@]}" --output node
    c 2 "output 'fifo.h5' is a FIFO" "mkfifo fifo.h5" -- "${cmd[@]}" --output fifo.h5
    c 2 "output 'dir.h5' is a directory" "mkdir dir.h5" -- "${cmd[@]}" --output dir.h5
    c 2 "output 'link.h5' is a symbolic link" "touch target.h5; ln -s target.h5 link.h5" -- "${cmd[@]}" --output link.h5
    c 2 "output '/proc/wafermesh_corpus.h5': cannot create a file in '/proc'" "" -- "${cmd[@]}" --output /proc/wafermesh_corpus.h5
    c 2 "output 'file.txt/out.h5': Not a directory" "touch file.txt" -- "${cmd[@]}" --output file.txt/out.h5
  done
  c 2 "output 'sock.h5' is a socket" "python3 -c 'import socket; socket.socket(socket.AF_UNIX).bind(\"sock.h5\")'" -- demo --config "$CFG" --output sock.h5
  c 2 "output '/sys/wafermesh_corpus.h5': cannot create a file in '/sys'" "" -- demo --config "$CFG" --output /sys/wafermesh_corpus.h5
  c 2 "another sweep \(.* pid 1\) is writing this results file" "mkdir -p results; echo \"\$(hostname) 1\" > results/st_good.h5.lock" -- sweep --study "$IN/st_good.ini"
  c 2 "lock file 'results/st_good.h5.lock' exists but names no sweep" "mkdir -p results; : > results/st_good.h5.lock" -- sweep --study "$IN/st_good.ini"
  c 2 "lock file 'results/st_good.h5.lock' exists and is not a regular file" "mkdir -p results/st_good.h5.lock" -- sweep --study "$IN/st_good.ini"
  c 2 "results file '.*partial' is a directory|partial' is a directory" "mkdir -p results/st_good.h5.partial" -- sweep --study "$IN/st_good.ini"
}

# ------------------------------------------------------------------------------ one case
if [ "${1:-}" = "--case" ]; then
  n=$2 ranks=$3
  IFS=$'\x1f' read -r code pat setup args < <(sed -n "$((n + 1))p" "$WORK/cases")
  dir=$WORK/case_${n}_np$ranks
  mkdir -p "$dir" && cd "$dir" || exit 1
  [ -n "$setup" ] && bash -c "$setup" >/dev/null 2>&1
  before=$(find . -mindepth 1 \( -type f -o -type d -o -type p -o -type s -o -type l -o -type c \) -printf '%y %p\n' | sort)
  marker="WM_TEST_JOB=corpus-$$-$n-$ranks"  # in the job's environment only
  eval "set -- $args"
  if [ "$1" = env ]; then envs=("$2"); shift 2; else envs=(); fi
  start=$(date +%s.%N)
  env "$marker" "${envs[@]}" timeout -k 5 "$CASE_TIMEOUT" "$MPIEXEC" --quiet --oversubscribe -np "$ranks" "$BIN" "$@" \
    >"$WORK/out_${n}_$ranks" 2>"$WORK/err_${n}_$ranks" </dev/null
  rc=$?
  secs=$(echo "$(date +%s.%N) - $start" | bc)
  # Processes of the job still alive (a hung rank): wait a moment, then name them.
  left=
  for _ in 1 2 3 4 5 6 7 8 9 10; do
    left=$(grep -lsx "$marker" --null-data /proc/[0-9]*/environ 2>/dev/null | cut -d/ -f3 | tr '\n' ' ')
    [ -z "$left" ] && break
    sleep 0.2
  done
  after=$(find . -mindepth 1 \( -type f -o -type d -o -type p -o -type s -o -type l -o -type c \) -printf '%y %p\n' | sort)
  err=$WORK/err_${n}_$ranks out=$WORK/out_${n}_$ranks
  lines=$(wc -l <"$err")
  what="case $n at $ranks rank(s) [$(printf '%s ' "$@" | head -c 160)]"
  problem=
  if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ]; then problem="timed out after ${CASE_TIMEOUT}s (hang)"
  elif [ "$rc" -ne "$code" ]; then problem="exit $rc, want $code"
  elif [ "$code" -ne 0 ] && [ "$lines" -ne 1 ]; then problem="$lines lines on stderr, want 1"
  elif [ "$code" -ne 0 ] && ! head -1 "$err" | grep -q '^wafermesh: error: '; then problem="stderr does not begin with 'wafermesh: error: '"
  elif [ "$code" -ne 0 ] && ! grep -qE -- "$pat" "$err"; then problem="stderr lacks /$pat/"
  elif [ "$code" -eq 0 ] && [ -s "$err" ]; then problem="stderr not empty"
  elif [ "$code" -ne 0 ] && [ -s "$out" ]; then problem="printed on stdout: $(head -c 200 "$out")"
  elif [ "$before" != "$after" ]; then problem="left behind: $(diff <(echo "$before") <(echo "$after") | grep '^>' | tr '\n' ' ')"
  elif [ -n "$left" ]; then problem="processes left: $left"
  fi
  if [ -z "$problem" ]; then
    echo "ok - $what: $(head -c 300 "$err" | tr '\n' ' ') (${secs%???????}s)"
  else
    echo "FAIL - $what: $problem; stderr: $(head -c 600 "$err" | tr '\n' ' ')"
    for p in $left; do kill -KILL "$p" 2>/dev/null; done
  fi
  exit 0
fi

# ------------------------------------------------------------------------------ the corpus
BIN=$(readlink -f "$1") SRC=$(readlink -f "$2") MPIEXEC=$3
WORK=$(mktemp -d)
trap 'chmod -R u+w "$WORK" 2>/dev/null; rm -rf "$WORK"' EXIT
IN=$WORK/in
CASE_TIMEOUT=${WM_CORPUS_TIMEOUT:-120}
export BIN SRC MPIEXEC WORK IN CASE_TIMEOUT
export OMP_NUM_THREADS=1
# mpirun waits odls_base_sigkill_timeout (1 s) twice before it reports a job with a non-zero exit
# code, although every rank has exited by itself: 2 of the 2.4 s of each case. The ranks leave
# MPI_Finalize together (it synchronises them), so a rank stuck elsewhere still hangs the job
# into the timeout. (ctest sets it for every test, cmake/wm_tests.cmake; here for runs by hand.)
export OMPI_MCA_odls_base_sigkill_timeout=0
python3 "$SRC/tests/robustness/make_inputs.py" "$SRC" "$IN" || { echo "FAIL - make_inputs.py"; exit 1; }
sums=$(cd "$IN" && find . -type f -exec md5sum {} + | sort)
define_cases
printf '%s\n' "${cases[@]}" >"$WORK/cases"  # one line per case, for the --case runs
total=${#cases[@]}
ranks=${WM_CORPUS_RANKS:-1 2}  # the sanitizer pass runs it at 1 rank only (tests/sanitizers/run.sh)
per_case=$(wc -w <<<"$ranks")
[[ "$ranks" =~ ^[1-9][0-9]*( [1-9][0-9]*)*$ ]] || { echo "FAIL - WM_CORPUS_RANKS = '$ranks': want rank counts such as '1 2'"; exit 1; }
echo "corpus: $total cases, each at rank counts: $ranks"
for ((i = 0; i < total; ++i)); do for n in $ranks; do echo "$i $n"; done; done \
  | xargs -P "${WM_CORPUS_JOBS:-4}" -n 2 bash "$SRC/tests/robustness/corpus.sh" --case >"$WORK/results.txt"
sort -t' ' -k4,4n "$WORK/results.txt"
fails=$(grep -c '^FAIL' "$WORK/results.txt")
runs=$(grep -c '^\(ok\|FAIL\)' "$WORK/results.txt")
[ "$runs" -eq $((per_case * total)) ] || { echo "FAIL - $runs results for $((per_case * total)) runs"; fails=$((fails + 1)); }
[ "$sums" = "$(cd "$IN" && find . -type f -exec md5sum {} + | sort)" ] || { echo "FAIL - an input file was changed"; fails=$((fails + 1)); }
[ -c /dev/null ] || { echo "FAIL - /dev/null is no longer a character device"; fails=$((fails + 1)); }
errors=$(awk -F$'\x1f' '$1 != 0' < <(printf '%s\n' "${cases[@]}") | wc -l)
echo "corpus: $total cases ($errors of bad input), $runs runs, $fails failure(s)"
[ "$fails" -eq 0 ]
