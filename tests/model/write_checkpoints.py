#!/usr/bin/env python3
"""Writes karpathy's stories260K (a llama2.c checkpoint and its tok512 vocabulary) in the other
checkpoint formats `wafermesh generate` reads, plus the llama2.c checkpoints they must match.
Standard library only (struct, json); every encoding follows the format definitions in
include/wafermesh/io/tensor_codecs.hpp, gguf.hpp and safetensors.hpp.

usage: write_checkpoints.py OUT_DIR stories260K.bin tok512.bin

Written to OUT_DIR:
  stories_f32.gguf        GGUF v3, arch llama, every tensor F32, the SentencePiece vocabulary
                          (tokenizer.ggml.model "llama", spaces as U+2581, scores, token types)
  stories_f16.gguf        matrices and the embedding F16 (norm vectors F32, as llama.cpp keeps 1-D tensors)
  stories_f16ref.bin      llama2.c checkpoint holding exactly the values of stories_f16.gguf
  stories_i2s.gguf        projections I2_S: absmean codes and scale gamma computed exactly as
                          wafermesh's in-memory ternarisation does (kernels/quantize.cpp), so this file
                          must give the logits of stories260K.bin with --quantize ternary
  stories_tq2.gguf        projections TQ2_0, stories_tq1.gguf TQ1_0: the same codes, every block's
                          scale d = gamma rounded to F16
  stories_tqref.bin       llama2.c checkpoint whose projections absmean-ternarise to exactly those codes
                          with gamma = the F16 d (nonzero weights are whole multiples m * d with the m
                          summing to the element count, so mean|W| is d exactly); other tensors as stories
  stories_hf/             Hugging Face layout: config.json + model.safetensors, F32, W_q/W_k rows
                          permuted for split-half RoPE as Hugging Face stores them
  stories_hf_sharded/     the same in two shards with model.safetensors.index.json
  stories_hf_bf16/        every tensor BF16; stories_bf16ref.bin holds the same values for llama2.c
  stories_hf_packed/      quantization_config bitnet: projections as BitNet's packed U8 (four rows
                          per byte) with an F32 weight_scale = 1/gamma; stories_packedref.bin is the
                          llama2.c checkpoint that ternarises to those codes with gamma = 1/weight_scale
"""
import json
import math
import os
import struct
import sys

# ---------------------------------------------------------------- llama2.c

HEADER = ("dim", "hidden_dim", "n_layers", "n_heads", "n_kv_heads", "vocab_size", "seq_len")
# (name, per layer, rows, cols) in file order; shapes from the header.
def layout(h):
    d, hd, L, kv = h["dim"], h["hidden_dim"], h["n_layers"], h["n_kv_heads"] * (h["dim"] // h["n_heads"])
    return [("token_embedding", False, h["vocab_size"], d), ("rms_att", True, 1, d), ("wq", True, d, d),
            ("wk", True, kv, d), ("wv", True, kv, d), ("wo", True, d, d), ("rms_ffn", True, 1, d),
            ("w1", True, hd, d), ("w2", True, d, hd), ("w3", True, hd, d), ("rms_final", False, 1, d)]

PROJECTIONS = ("wq", "wk", "wv", "wo", "w1", "w2", "w3")


def read_llama2c(path):
    data = open(path, "rb").read()
    h = dict(zip(HEADER, struct.unpack_from("<7i", data, 0)))
    at = 28
    tensors = {}  # name -> list (per layer) of flat float lists (rows * cols)
    for name, per_layer, rows, cols in layout(h):
        n = rows * cols
        layers = h["n_layers"] if per_layer else 1
        tensors[name] = []
        for _ in range(layers):
            tensors[name].append(list(struct.unpack_from("<%df" % n, data, at)))
            at += 4 * n
    return h, tensors, data[at:]  # the rest: the legacy RoPE tables


def write_llama2c(path, h, tensors, tail):
    out = [struct.pack("<7i", *(h[k] for k in HEADER))]
    for name, _, _, _ in layout(h):
        for layer in tensors[name]:
            out.append(struct.pack("<%df" % len(layer), *layer))
    out.append(tail)
    open(path, "wb").write(b"".join(out))


def read_tok(path, vocab):
    data = open(path, "rb").read()
    at = 4
    pieces, scores = [], []
    for _ in range(vocab):
        score, n = struct.unpack_from("<fi", data, at)
        at += 8
        pieces.append(data[at:at + n])
        scores.append(score)
        at += n
    return pieces, scores

# ---------------------------------------------------------------- number formats

def f32(x):
    return struct.unpack("<f", struct.pack("<f", x))[0]


def f16_bits(x):
    return struct.unpack("<H", struct.pack("<e", x))[0]


def f16(x):
    return struct.unpack("<e", struct.pack("<e", x))[0]


def bf16_bits(x):
    b = struct.unpack("<I", struct.pack("<f", x))[0]
    return ((b + 0x7FFF + ((b >> 16) & 1)) >> 16) & 0xFFFF


def bf16(x):
    return struct.unpack("<f", struct.pack("<I", bf16_bits(x) << 16))[0]


def absmean(w, rows, cols):
    """gamma and codes exactly as kernels::quantize_weights_absmean computes them: |w| summed in
    double into four partial sums by column index mod 4, added as (p0 + p1) + (p2 + p3), divided
    by the count, rounded to float, floored at 1e-5; code = sign(w) where |w| > gamma / 2."""
    part = [0.0, 0.0, 0.0, 0.0]
    for i in range(rows):
        row = w[i * cols:(i + 1) * cols]
        for k, v in enumerate(row):
            part[k % 4] += abs(v)
    total = (part[0] + part[1]) + (part[2] + part[3])
    gamma = max(f32(total / (rows * cols)), f32(1e-5))
    half = f32(gamma * 0.5)
    codes = [(1 if v > half else 0) - (1 if v < -half else 0) for v in w]
    return gamma, codes


def exact_ternary_weights(codes, g):
    """Floats that absmean-ternarise to `codes` with gamma exactly g: each nonzero weight is
    +-m*g with whole m >= 1 summing to len(codes), the zeros stay 0. All sums are exact in double."""
    n, nz = len(codes), sum(1 for c in codes if c)
    base, extra = divmod(n, nz)
    out, seen = [], 0
    for c in codes:
        if c == 0:
            out.append(0.0)
            continue
        m = base + (1 if seen < extra else 0)
        seen += 1
        out.append(float(c) * m * g)
    return out

# ---------------------------------------------------------------- tensor encodings

def enc_f32(w):
    return struct.pack("<%df" % len(w), *w)


def enc_f16(w):
    return struct.pack("<%de" % len(w), *w)


def enc_bf16(w):
    return struct.pack("<%dH" % len(w), *(bf16_bits(v) for v in w))


def enc_tq2_0(codes, d):
    assert len(codes) % 256 == 0
    out = bytearray()
    for b in range(0, len(codes), 256):
        c = codes[b:b + 256]
        for half in range(2):
            for m in range(32):
                byte = 0
                for l in range(4):
                    byte |= (c[half * 128 + l * 32 + m] + 1) << (2 * l)
                out.append(byte)
        out += struct.pack("<H", f16_bits(d))
    return bytes(out)


def tq1_byte(digits):
    q = 0
    for x in digits:  # most significant first
        q = q * 3 + x
    return (q * 256 + 242) // 243  # ceil(q * 256 / 243)


def enc_tq1_0(codes, d):
    assert len(codes) % 256 == 0
    out = bytearray()
    for b in range(0, len(codes), 256):
        c = [x + 1 for x in codes[b:b + 256]]
        qs = [tq1_byte([c[n * 32 + m] for n in range(5)]) for m in range(32)]
        qs += [tq1_byte([c[160 + n * 16 + m] for n in range(5)]) for m in range(16)]
        qh = [tq1_byte([c[240 + n * 4 + j] for n in range(4)] + [0]) for j in range(4)]
        out += bytes(qs) + bytes(qh) + struct.pack("<H", f16_bits(d))
    return bytes(out)


def enc_i2_s(codes, scale):
    n = len(codes)
    assert n % 128 == 0
    out = bytearray()
    for b in range(0, n, 128):
        for gp in range(32):
            byte = 0
            for l in range(4):
                byte |= (codes[b + l * 32 + gp] + 1) << (6 - 2 * l)
            out.append(byte)
    out += struct.pack("<f", scale)
    out += bytes(32 - 4)
    assert len(out) == n // 4 + 32
    return bytes(out)


def pack_bitnet(codes, rows, cols):
    """BitNet's packed U8 (rows/4, cols): weight row r at byte row r % (rows/4), bits 2*(r // (rows/4))."""
    pr = rows // 4
    out = bytearray(pr * cols)
    for r in range(rows):
        for c in range(cols):
            out[(r % pr) * cols + c] |= (codes[r * cols + c] + 1) << (2 * (r // pr))
    return bytes(out)

# ---------------------------------------------------------------- GGUF

GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STRING, GGUF_ARRAY = 4, 5, 6, 7, 8, 9
GGML = {"F32": 0, "F16": 1, "BF16": 30, "TQ1_0": 34, "TQ2_0": 35, "I2_S": 36}


def gguf_str(s):
    b = s.encode("utf-8") if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def gguf_value(t, v):
    if t == GGUF_U32:
        return struct.pack("<I", v)
    if t == GGUF_I32:
        return struct.pack("<i", v)
    if t == GGUF_F32:
        return struct.pack("<f", v)
    if t == GGUF_BOOL:
        return struct.pack("<B", 1 if v else 0)
    if t == GGUF_STRING:
        return gguf_str(v)
    et, items = v
    return struct.pack("<IQ", et, len(items)) + b"".join(gguf_value(et, x) for x in items)


def write_gguf(path, kv, tensors, alignment=32):
    """kv: [(key, type, value)], arrays as (GGUF_ARRAY, (elem_type, items));
    tensors: [(name, ne, ggml type name, bytes)]."""
    head = [b"GGUF", struct.pack("<IQQ", 3, len(tensors), len(kv))]
    for key, t, v in kv:
        head += [gguf_str(key), struct.pack("<I", t), gguf_value(t, v)]
    offset, infos, blobs = 0, [], []
    for name, ne, typ, data in tensors:
        infos += [gguf_str(name), struct.pack("<I", len(ne)), struct.pack("<%dQ" % len(ne), *ne),
                  struct.pack("<IQ", GGML[typ], offset)]
        pad = (-len(data)) % alignment
        blobs.append(data + bytes(pad))
        offset += len(data) + pad
    header = b"".join(head + infos)
    header += bytes((-len(header)) % alignment)
    open(path, "wb").write(header + b"".join(blobs))


def sentencepiece_kv(pieces, scores):
    tokens, types = [], []
    for i, p in enumerate(pieces):
        tokens.append(p.replace(b" ", "\u2581".encode("utf-8")))
        if i == 0:
            types.append(2)  # unknown
        elif i in (1, 2):
            types.append(3)  # control
        elif len(p) == 6 and p.startswith(b"<0x") and p.endswith(b">"):
            types.append(6)  # byte
        else:
            types.append(1)  # normal
    return [("tokenizer.ggml.model", GGUF_STRING, "llama"),
            ("tokenizer.ggml.tokens", GGUF_ARRAY, (GGUF_STRING, tokens)),
            ("tokenizer.ggml.scores", GGUF_ARRAY, (GGUF_F32, scores)),
            ("tokenizer.ggml.token_type", GGUF_ARRAY, (GGUF_I32, types)),
            ("tokenizer.ggml.bos_token_id", GGUF_U32, 1),
            ("tokenizer.ggml.eos_token_id", GGUF_U32, 2)]


def llama_kv(h, name):
    return [("general.architecture", GGUF_STRING, "llama"), ("general.name", GGUF_STRING, name),
            ("llama.block_count", GGUF_U32, h["n_layers"]), ("llama.context_length", GGUF_U32, h["seq_len"]),
            ("llama.embedding_length", GGUF_U32, h["dim"]), ("llama.feed_forward_length", GGUF_U32, h["hidden_dim"]),
            ("llama.attention.head_count", GGUF_U32, h["n_heads"]),
            ("llama.attention.head_count_kv", GGUF_U32, h["n_kv_heads"]),
            ("llama.rope.freq_base", GGUF_F32, 10000.0), ("llama.attention.layer_norm_rms_epsilon", GGUF_F32, 1e-5),
            ("llama.rope.dimension_count", GGUF_U32, h["dim"] // h["n_heads"]),
            ("general.alignment", GGUF_U32, 32)]


GGUF_NAMES = {"token_embedding": "token_embd", "rms_att": "attn_norm", "wq": "attn_q", "wk": "attn_k",
              "wv": "attn_v", "wo": "attn_output", "rms_ffn": "ffn_norm", "w1": "ffn_gate", "w2": "ffn_down",
              "w3": "ffn_up", "rms_final": "output_norm"}


def gguf_tensors(h, tensors, encode):
    """encode(name, layer, rows, cols, values) -> (ggml type name, bytes)."""
    out = []
    for name, per_layer, rows, cols in layout(h):
        for l, w in enumerate(tensors[name]):
            gname = ("blk.%d.%s.weight" % (l, GGUF_NAMES[name])) if per_layer else GGUF_NAMES[name] + ".weight"
            ne = [cols] if rows == 1 else [cols, rows]
            typ, data = encode(name, l, rows, cols, w)
            out.append((gname, ne, typ, data))
    return out

# ---------------------------------------------------------------- safetensors

def write_safetensors(path, entries):
    """entries: [(name, dtype, shape, bytes)]."""
    header, offset = {}, 0
    for name, dtype, shape, data in entries:
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
    header["__metadata__"] = {"format": "pt"}
    text = json.dumps(header).encode("utf-8")
    text += b" " * ((-len(text)) % 8)
    open(path, "wb").write(struct.pack("<Q", len(text)) + text + b"".join(e[3] for e in entries))


HF_NAMES = {"token_embedding": "model.embed_tokens.weight", "rms_final": "model.norm.weight",
            "rms_att": "input_layernorm.weight", "wq": "self_attn.q_proj.weight", "wk": "self_attn.k_proj.weight",
            "wv": "self_attn.v_proj.weight", "wo": "self_attn.o_proj.weight",
            "rms_ffn": "post_attention_layernorm.weight", "w1": "mlp.gate_proj.weight",
            "w2": "mlp.down_proj.weight", "w3": "mlp.up_proj.weight"}


def to_hf_rows(w, rows, cols, n_heads):
    """llama2.c/Meta rows (adjacent RoPE pairs) -> Hugging Face rows (split-half pairs):
    HF row h*hd + t*(hd/2) + j holds Meta row h*hd + 2j + t."""
    hd = rows // n_heads
    out = [0.0] * (rows * cols)
    for h in range(n_heads):
        for j in range(hd // 2):
            for t in range(2):
                src, dst = h * hd + 2 * j + t, h * hd + t * (hd // 2) + j
                out[dst * cols:(dst + 1) * cols] = w[src * cols:(src + 1) * cols]
    return out


def hf_config(h, extra=None):
    c = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": h["dim"],
         "intermediate_size": h["hidden_dim"], "num_hidden_layers": h["n_layers"],
         "num_attention_heads": h["n_heads"], "num_key_value_heads": h["n_kv_heads"],
         "vocab_size": h["vocab_size"], "max_position_embeddings": h["seq_len"], "rope_theta": 10000.0,
         "rms_norm_eps": 1e-05, "hidden_act": "silu", "tie_word_embeddings": True, "torch_dtype": "float32",
         "bos_token_id": 1, "eos_token_id": 2}
    c.update(extra or {})
    return c


def hf_entries(h, tensors, encode):
    """encode(name, rows, cols, values in HF row order) -> [(suffix, dtype, shape, bytes)]."""
    out = []
    for name, per_layer, rows, cols in layout(h):
        for l, w in enumerate(tensors[name]):
            base = ("model.layers.%d.%s" % (l, HF_NAMES[name])) if per_layer else HF_NAMES[name]
            if name in ("wq", "wk"):
                w = to_hf_rows(w, rows, cols, h["n_heads"] if name == "wq" else h["n_kv_heads"])
            for suffix, dtype, shape, data in encode(name, rows, cols, w):
                out.append((base + suffix, dtype, shape, data))
    return out


def write_hf_dir(d, config, entries, shards=1):
    os.makedirs(d, exist_ok=True)
    json.dump(config, open(os.path.join(d, "config.json"), "w"), indent=1)
    if shards == 1:
        write_safetensors(os.path.join(d, "model.safetensors"), entries)
        return
    per = (len(entries) + shards - 1) // shards
    weight_map = {}
    for s in range(shards):
        fname = "model-%05d-of-%05d.safetensors" % (s + 1, shards)
        part = entries[s * per:(s + 1) * per]
        write_safetensors(os.path.join(d, fname), part)
        for e in part:
            weight_map[e[0]] = fname
    json.dump({"metadata": {"total_size": sum(len(e[3]) for e in entries)}, "weight_map": weight_map},
              open(os.path.join(d, "model.safetensors.index.json"), "w"), indent=1)

# ---------------------------------------------------------------- main

def main():
    out_dir, bin_path, tok_path = sys.argv[1:4]
    os.makedirs(out_dir, exist_ok=True)
    h, tensors, tail = read_llama2c(bin_path)
    pieces, scores = read_tok(tok_path, h["vocab_size"])
    vocab_kv = sentencepiece_kv(pieces, scores)
    P = lambda f: os.path.join(out_dir, f)

    def shape_of(name):
        return next((r, c) for n, _, r, c in layout(h) if n == name)

    # F32
    write_gguf(P("stories_f32.gguf"), llama_kv(h, "stories260K") + vocab_kv,
               gguf_tensors(h, tensors, lambda n, l, r, c, w: ("F32", enc_f32(w))))
    # F16 (2-D tensors), and the llama2.c checkpoint of the same values
    f16_tensors = {n: [[f16(v) for v in w] if shape_of(n)[0] > 1 else w for w in ws] for n, ws in tensors.items()}
    write_gguf(P("stories_f16.gguf"), llama_kv(h, "stories260K-f16") + vocab_kv,
               gguf_tensors(h, f16_tensors, lambda n, l, r, c, w: ("F16", enc_f16(w)) if r > 1 else ("F32", enc_f32(w))))
    write_llama2c(P("stories_f16ref.bin"), h, f16_tensors, tail)

    # Ternary: absmean codes and gamma per (projection, layer), exactly as wafermesh computes them.
    tern = {}
    for n in PROJECTIONS:
        r, c = shape_of(n)
        tern[n] = [absmean(w, r, c) for w in tensors[n]]

    def ternary_encoder(kind):
        def enc(n, l, r, c, w):
            if n not in PROJECTIONS:
                return "F32", enc_f32(w)
            gamma, codes = tern[n][l]
            if kind == "I2_S":
                return "I2_S", enc_i2_s(codes, gamma)
            return kind, (enc_tq2_0 if kind == "TQ2_0" else enc_tq1_0)(codes, f16(gamma))
        return enc
    for kind, f in (("I2_S", "stories_i2s.gguf"), ("TQ2_0", "stories_tq2.gguf"), ("TQ1_0", "stories_tq1.gguf")):
        write_gguf(P(f), llama_kv(h, "stories260K-" + kind) + vocab_kv, gguf_tensors(h, tensors, ternary_encoder(kind)))
    tq_ref = dict(tensors)
    for n in PROJECTIONS:
        tq_ref[n] = [exact_ternary_weights(codes, f16(gamma)) for gamma, codes in tern[n]]
    write_llama2c(P("stories_tqref.bin"), h, tq_ref, tail)

    # Hugging Face: F32 (one file and two shards), BF16, BitNet-packed
    f32_entries = hf_entries(h, tensors, lambda n, r, c, w: [("", "F32", [c] if r == 1 else [r, c], enc_f32(w))])
    write_hf_dir(P("stories_hf"), hf_config(h), f32_entries)
    write_hf_dir(P("stories_hf_sharded"), hf_config(h), f32_entries, shards=2)
    bf_tensors = {n: [[bf16(v) for v in w] for w in ws] for n, ws in tensors.items()}
    write_hf_dir(P("stories_hf_bf16"), hf_config(h, {"torch_dtype": "bfloat16"}),
                 hf_entries(h, bf_tensors, lambda n, r, c, w: [("", "BF16", [c] if r == 1 else [r, c], enc_bf16(w))]))
    write_llama2c(P("stories_bf16ref.bin"), h, bf_tensors, tail)

    ws = {n: [f32(1.0 / gamma) for gamma, _ in tern[n]] for n in PROJECTIONS}  # BitNet stores 1 / gamma
    layer_of = {}

    def packed(n, r, c, w):
        if n not in PROJECTIONS:
            return [("", "F32", [c] if r == 1 else [r, c], enc_f32(w))]
        l = layer_of[n] = layer_of.get(n, -1) + 1
        codes = absmean_codes_hf[n][l]
        return [("", "U8", [r // 4, c], pack_bitnet(codes, r, c)),
                ("_scale", "F32", [1], struct.pack("<f", ws[n][l]))]
    # Codes in Hugging Face row order for W_q / W_k.
    absmean_codes_hf = {}
    for n in PROJECTIONS:
        r, c = shape_of(n)
        heads = h["n_heads"] if n == "wq" else h["n_kv_heads"]
        absmean_codes_hf[n] = [to_hf_rows(codes, r, c, heads) if n in ("wq", "wk") else codes for _, codes in tern[n]]
    write_hf_dir(P("stories_hf_packed"), hf_config(h, {"quantization_config": {"quant_method": "bitnet"}}),
                 hf_entries(h, tensors, packed))
    packed_ref = dict(tensors)
    for n in PROJECTIONS:
        packed_ref[n] = [exact_ternary_weights(codes, f32(1.0 / ws[n][l])) for l, (_, codes) in enumerate(tern[n])]
    write_llama2c(P("stories_packedref.bin"), h, packed_ref, tail)


if __name__ == "__main__":
    main()
