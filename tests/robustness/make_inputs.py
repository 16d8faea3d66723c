#!/usr/bin/env python3
"""Writes the damaged inputs of the bad-input corpus (tests/robustness/corpus.sh) into OUT_DIR:
checkpoints and tokenizers derived from the repository's stories260K (truncated at many points,
header fields changed, NaN/Inf in every tensor, lengths flipped), model files, INI files, study
files and prompts. usage: make_inputs.py SOURCE_DIR OUT_DIR"""
import math
import os
import struct
import sys

src, out = sys.argv[1], sys.argv[2]
os.makedirs(out, exist_ok=True)
ckpt = open(os.path.join(src, "weights/stories260K/stories260K.bin"), "rb").read()
tok = open(os.path.join(src, "weights/stories260K/tok512.bin"), "rb").read()


def put(name, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(os.path.join(out, name), mode) as f:
        f.write(data)


# ---- checkpoints (stories260K: dim 64, hidden 172, 5 layers, kv_dim 32, vocab 512, seq_len 512)
for n in [0, 1, 4, 27, 28, 29, 100, 4096, 131072, 524288, len(ckpt) - 4096, len(ckpt) - 4, len(ckpt) - 1]:
    put(f"ck_trunc_{n}.bin", ckpt[:n])
put("ck_over_1.bin", ckpt + b"\0")
put("ck_over_4096.bin", ckpt + bytes(4096))
fields = ["dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len"]
for i, f in enumerate(fields):
    v = struct.unpack_from("<i", ckpt, 4 * i)[0]
    for tag, nv in [("plus1", v + 1), ("zero", 0), ("neg", -1), ("max", 2**31 - 1)]:
        b = bytearray(ckpt)
        struct.pack_into("<i", b, 4 * i, nv)
        put(f"ck_hdr_{f}_{tag}.bin", bytes(b))
# Non-finite weights: the first, a middle and the last value of every tensor (file order).
D, H, L, KV, V = 64, 172, 5, 32, 512
sizes = [("token_embedding", V * D), ("rms_att", L * D), ("wq", L * D * D), ("wk", L * KV * D), ("wv", L * KV * D),
         ("wo", L * D * D), ("rms_ffn", L * D), ("w1", L * H * D), ("w2", L * D * H), ("w3", L * H * D), ("rms_final", D)]
at = 28
for name, n in sizes:
    for where, k in [("first", 0), ("mid", n // 2), ("last", n - 1)]:
        for val, tag in [(float("nan"), "nan"), (math.inf, "inf"), (-math.inf, "ninf")]:
            if where != "mid" and tag == "ninf":
                continue
            b = bytearray(ckpt)
            struct.pack_into("<f", b, at + 4 * (k), val)
            put(f"ck_{tag}_{name}_{where}.bin", bytes(b))
    at += 4 * n
# Flipped bytes that turn a weight into NaN (exponent all ones, quiet bit): every 97th KiB.
for k, off in enumerate(range(28 + 1000 * 4, at, 97 * 1024)):
    b = bytearray(ckpt)
    off -= (off - 28) % 4
    b[off + 3] |= 0x7F
    b[off + 2] |= 0xC0
    put(f"ck_flip_{k}.bin", bytes(b))

# ---- tokenizers (tok512: max_token_length 7, then 512 x (score, len, bytes))
for n in [0, 1, 3, 4, 5, 11, 12, 13, 100, 1000, len(tok) // 2, len(tok) - 1]:
    put(f"tok_trunc_{n}.bin", tok[:n])
put("tok_over_1.bin", tok + b"x")
for tag, v in [("zero", 0), ("neg", -1), ("three", 3)]:
    b = bytearray(tok)
    struct.pack_into("<i", b, 0, v)
    put(f"tok_maxlen_{tag}.bin", bytes(b))
# Token 5's length field: negative, beyond max_token_length, huge.
off = 4
for i in range(5):
    ln = struct.unpack_from("<i", tok, off + 4)[0]
    off += 8 + ln
for tag, v in [("neg", -3), ("big", 8), ("huge", 2**31 - 1)]:
    b = bytearray(tok)
    struct.pack_into("<i", b, off + 4, v)
    put(f"tok_len5_{tag}.bin", bytes(b))
# No byte tokens: every "<0xHH>" piece renamed "<1xHH>" (same length, so the file stays valid).
put("tok_nobytes.bin", tok.replace(b"<0x", b"<1x"))

# ---- model files
keys = [("name", "stories260K"), ("dim", "64"), ("hidden_dim", "172"), ("layers", "5"), ("heads", "8"),
        ("kv_heads", "4"), ("vocab", "512"), ("seq_len", "512")]
W = os.path.join(src, "weights/stories260K/stories260K.bin")
T = os.path.join(src, "weights/stories260K/tok512.bin")


def model(name, over=None, drop=None, extra="", weights=W, tokenizer=T):
    over = over or {}
    lines = ["[model]"]
    for k, v in keys:
        if k != drop:
            lines.append(f"{k} = {over.get(k, v)}")
    lines += [f"weights = {weights}", f"tokenizer = {tokenizer}"]
    put(name, "\n".join(lines) + "\n" + extra)


model("m_good.ini")
for k, _ in keys:
    model(f"m_no_{k}.ini", drop=k)
for k, v in [("dim", "0"), ("dim", "-64"), ("dim", "1099511627776"), ("dim", "abc"), ("hidden_dim", "0"),
             ("layers", "0"), ("layers", "70000"), ("heads", "0"), ("heads", "3"), ("kv_heads", "3"),
             ("vocab", "0"), ("vocab", "2"), ("vocab", "99999999999"), ("seq_len", "0"), ("seq_len", "1e3")]:
    model(f"m_{k}_{v}.ini", over={k: v})
for k, v in [("ffn", "gelu"), ("rope_theta", "0"), ("norm_eps", "0"), ("norm_eps", "2"), ("ternary", "maybe"),
             ("bogus", "1")]:
    model(f"m_{k}_{v}.ini", extra=f"{k} = {v}\n")
model("m_vocab_500.ini", over={"vocab": "500"})   # the checkpoint says 512
model("m_weights_missing.ini", weights="/nonexistent/stories.bin")
model("m_weights_dir.ini", weights=out)
model("m_tok_missing.ini", tokenizer="/nonexistent/tok.bin")
model("m_tok_dir.ini", tokenizer=out)
for f in sorted(os.listdir(out)):
    if f.startswith("tok_") and f.endswith(".bin"):
        model("m_" + f[:-4] + ".ini", tokenizer=os.path.join(out, f))
put("m_empty.ini", "")
put("m_nosection.ini", "dim = 64\n")
put("m_malformed.ini", "[model]\nthis is not ini\n")
put("m_binary.ini", bytes(range(256)) * 4)
# Synthetic shapes beyond the machine: exit 3 (no region holds them).
put("m_huge_synth.ini", "[model]\nname = huge\ndim = 1048576\nhidden_dim = 4194304\nlayers = 1\nheads = 1\n"
    "kv_heads = 1\nvocab = 3\nseq_len = 16\nweights = synthetic\ntokenizer =\n")
put("m_deep_synth.ini", "[model]\nname = deep\ndim = 64\nhidden_dim = 172\nlayers = 65536\nheads = 8\n"
    "kv_heads = 4\nvocab = 512\nseq_len = 16\nweights = synthetic\ntokenizer =\n")
put("m_notok_synth.ini", "[model]\nname = ids\ndim = 64\nhidden_dim = 172\nlayers = 1\nheads = 8\n"
    "kv_heads = 4\nvocab = 512\nseq_len = 16\nweights = synthetic\ntokenizer =\n")

# ---- INI files for --config
put("ini_malformed.ini", "this line is not ini\n")
put("ini_unknown_key.ini", "[mesh]\nwidth_pes = 10\nbogus_key = 3\n")
put("ini_unknown_section.ini", "[mash]\nwidth_pes = 10\n")
put("ini_negative.ini", "[mesh]\nwidth_pes = -4\n")
put("ini_nonnum.ini", "[pe]\nclock_ghz = fast\n")
put("ini_tiny_clock.ini", "[pe]\nclock_ghz = 1e-300\n")
put("ini_huge_mesh.ini", "[mesh]\nwidth_pes = 1048576\nheight_pes = 1048576\n")
put("ini_binary.ini", bytes(range(1, 256)) * 8)
put("ini_dup.ini", "[mesh]\nwidth_pes = 10\nwidth_pes = 12\n")
# generate's own options in an INI file (before the first section): the prompts argv cannot carry.
put("ini_prompt_1mb.ini", "prompt = " + ("Once upon a time, there was a little girl named Lily. " * 20000)[:1 << 20] + "\n")
put("ini_prompt_nul.ini", "prompt = ab\0cd\n")
put("ini_prompt_utf8bad.ini", "prompt = caf\xe9 \xff\xfe ok\n".encode("latin-1"))

# ---- study files
studies = {
    "st_ranks_dup.ini": "command = bench gemm\nranks = 1, 1\n[vary]\nP = 4\n[fixed]\nconfig = CONFIG\n",
    "st_ranks_zero.ini": "command = bench gemm\nranks = 0\n[vary]\nP = 4\n",
    "st_ranks_text.ini": "command = bench gemm\nranks = two\n[vary]\nP = 4\n",
    "st_ranks_many.ini": "command = bench gemm\nranks = 9\n[vary]\nP = 4\n",
    "st_vary_dup.ini": "command = bench gemm\n[vary]\nP = 4, 8, 4\n",
    "st_vary_empty.ini": "command = bench gemm\n[vary]\nP =\n",
    "st_vary_hole.ini": "command = bench gemm\n[vary]\nP = 4,,8\n",
    "st_unknown_opt.ini": "command = bench gemm\n[vary]\nbogus_option = 1,2\n",
    "st_unknown_key.ini": "command = bench gemm\nspeed = 3\n",
    "st_unknown_section.ini": "command = bench gemm\n[sweeep]\nP = 4\n",
    "st_no_command.ini": "[vary]\nP = 4\n",
    "st_info.ini": "command = info\n",
    "st_sweep.ini": "command = sweep\n",
    "st_unknown_cmd.ini": "command = frobnicate\n",
    "st_output.ini": "command = bench gemm\n[vary]\nP = 4\n[fixed]\noutput = x.h5\n",
    "st_twice.ini": "command = bench gemm\n[vary]\nP = 4,8\n[fixed]\nP = 4\n",
    "st_bad_header.ini": "command = bench gemm\n[vary\nP = 4\n",
    "st_model_missing.ini": "command = generate\n[vary]\nsteps = 2, 3\n[fixed]\nmodel = /nonexistent.ini\n",
    "st_model_dir.ini": "command = generate\n[vary]\nsteps = 2, 3\n[fixed]\nmodel = IN\n",
    "st_model_nodim.ini": "command = generate\n[vary]\nsteps = 2, 3\n[fixed]\nmodel = IN/m_no_dim.ini\n",
    "st_weights_trunc.ini": "command = generate\n[vary]\nsteps = 2, 3\n[fixed]\nmodel = IN/m_good.ini\n"
                            "weights = IN/ck_trunc_4096.bin\nconfig = CONFIG\n",
    "st_weights_nan.ini": "command = generate\n[vary]\nsteps = 2, 3\n[fixed]\nmodel = IN/m_good.ini\n"
                          "weights = IN/ck_nan_wq_mid.bin\nconfig = CONFIG\n",
    "st_tok_trunc.ini": "command = generate\n[vary]\nsteps = 2, 3\n[fixed]\nmodel = IN/m_tok_trunc_1000.ini\n"
                        "config = CONFIG\n",
    "st_prompt_long.ini": "command = generate\n[vary]\nsteps = 2, 3\n[fixed]\nmodel = IN/m_good.ini\n"
                          "prompt = Once upon a time\nconfig = CONFIG\n",
    "st_kv_model_missing.ini": "command = bench kv\n[vary]\nP = 4, 8\n[fixed]\nmodel = /nonexistent.ini\n",
    "st_gemm_region.ini": "command = bench gemm\n[vary]\nP = 4, 100000\n[fixed]\nconfig = CONFIG\n",
    "st_gemv_bad_choice.ini": "command = bench gemv\n[vary]\ndtype = ternary, int4\n",
    "st_config_missing.ini": "command = demo\n[vary]\ntile_bytes = 64, 128\n[fixed]\nconfig = /nonexistent.ini\n",
    "st_good.ini": "command = bench gemm\n[vary]\nP = 4\n[fixed]\nM = 16\nK = 16\nN = 16\nconfig = CONFIG\n"
                   "compare_local = false\n",
}
cfg = os.path.join(src, "configs/laptop.ini")
for name, text in studies.items():
    put(name, text.replace("CONFIG", cfg).replace("IN", out))
put("st_binary.ini", bytes(range(256)) * 4)
