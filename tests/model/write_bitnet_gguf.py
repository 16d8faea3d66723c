#!/usr/bin/env python3
"""Writes a GGUF file of BitNet b1.58 2B4T's shape and layout with random weights, to measure what
running the real download costs (host memory, placement time) without having it: architecture
bitnet-b1.58, the same metadata keys, I2_S projections (random ternary codes, one scale per
tensor), an F16 token embedding, F32 norms, and optionally the LLaMA-3 vocabulary from a
tokenizer.json (tests/model/bpe_oracle.mjs writes one from the npm package). About 1.2 GB.
Needs numpy (Debian's python3-numpy, which python3-h5py brings).

usage: /usr/bin/python3 write_bitnet_gguf.py OUT.gguf [tokenizer.json] [--layers N]
"""
import json
import struct
import sys

import numpy as np

DIM, HIDDEN, HEADS, KV_HEADS, VOCAB, CTX = 2560, 6912, 20, 5, 128256, 4096
ARCH = "bitnet-b1.58"
ALIGN = 32


def gstr(s):
    b = s.encode("utf-8")
    return struct.pack("<Q", len(b)) + b


def kv_u32(k, v):
    return gstr(k) + struct.pack("<II", 4, v)


def kv_f32(k, v):
    return gstr(k) + struct.pack("<If", 6, v)


def kv_str(k, v):
    return gstr(k) + struct.pack("<I", 8) + gstr(v)


def kv_strs(k, items):
    return gstr(k) + struct.pack("<IIQ", 9, 8, len(items)) + b"".join(gstr(x) for x in items)


def kv_i32s(k, items):
    return gstr(k) + struct.pack("<IIQ", 9, 5, len(items)) + np.asarray(items, dtype="<i4").tobytes()


def i2s_bytes(rng, rows, cols):
    n = rows * cols
    codes = rng.integers(0, 3, size=n, dtype=np.uint8).reshape(n // 128, 4, 32)
    packed = (codes[:, 0] << 6) | (codes[:, 1] << 4) | (codes[:, 2] << 2) | codes[:, 3]
    tail = np.zeros(32, dtype=np.uint8)
    tail[:4] = np.frombuffer(struct.pack("<f", 1.0 / np.sqrt(cols)), dtype=np.uint8)
    return packed.reshape(-1).tobytes() + tail.tobytes()


def main():
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    layers = 30
    if "--layers" in sys.argv:
        layers = int(sys.argv[sys.argv.index("--layers") + 1])
        args = [a for a in args if a != str(layers)]
    out = args[0]
    kv = [kv_str("general.architecture", ARCH), kv_str("general.name", "bitnet-2B4T-shaped random weights"),
          kv_u32(ARCH + ".block_count", layers), kv_u32(ARCH + ".context_length", CTX),
          kv_u32(ARCH + ".embedding_length", DIM), kv_u32(ARCH + ".feed_forward_length", HIDDEN),
          kv_u32(ARCH + ".attention.head_count", HEADS), kv_u32(ARCH + ".attention.head_count_kv", KV_HEADS),
          kv_f32(ARCH + ".rope.freq_base", 500000.0), kv_f32(ARCH + ".attention.layer_norm_rms_epsilon", 1e-5),
          kv_u32(ARCH + ".rope.dimension_count", DIM // HEADS), kv_u32(ARCH + ".vocab_size", VOCAB),
          kv_u32("general.alignment", ALIGN)]
    if len(args) > 1:
        t = json.load(open(args[1], encoding="utf-8"))
        tokens = [""] * VOCAB
        types = [1] * VOCAB
        for s, i in t["model"]["vocab"].items():
            tokens[i] = s
        for a in t["added_tokens"]:
            tokens[a["id"]] = a["content"]
            types[a["id"]] = 3
        kv += [kv_str("tokenizer.ggml.model", "gpt2"), kv_str("tokenizer.ggml.pre", "llama-bpe"),
               kv_strs("tokenizer.ggml.tokens", tokens), kv_i32s("tokenizer.ggml.token_type", types),
               kv_strs("tokenizer.ggml.merges", t["model"]["merges"]),
               kv_u32("tokenizer.ggml.bos_token_id", 128000), kv_u32("tokenizer.ggml.eos_token_id", 128001),
               kv_u32("tokenizer.ggml.eot_token_id", 128009)]
    # (name, ne, ggml type, size, writer)
    tensors = []
    rng = np.random.default_rng(1)

    def f32_ones(n):
        return lambda: (1.0 + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype("<f4").tobytes()

    def f16_embedding():
        chunks = []
        for r in range(0, VOCAB, 8192):
            rows = min(8192, VOCAB - r)
            chunks.append((0.02 * rng.standard_normal(rows * DIM, dtype=np.float32)).astype("<f2").tobytes())
        return b"".join(chunks)
    tensors.append(("token_embd.weight", [DIM, VOCAB], 1, VOCAB * DIM * 2, f16_embedding))
    shapes = {"attn_q": (DIM, DIM), "attn_k": (KV_HEADS * 128, DIM), "attn_v": (KV_HEADS * 128, DIM),
              "attn_output": (DIM, DIM), "ffn_gate": (HIDDEN, DIM), "ffn_up": (HIDDEN, DIM), "ffn_down": (DIM, HIDDEN)}
    for l in range(layers):
        for n in ("attn_norm", "ffn_norm", "attn_sub_norm"):
            tensors.append(("blk.%d.%s.weight" % (l, n), [DIM], 0, DIM * 4, f32_ones(DIM)))
        tensors.append(("blk.%d.ffn_sub_norm.weight" % l, [HIDDEN], 0, HIDDEN * 4, f32_ones(HIDDEN)))
        for n, (r, c) in shapes.items():
            tensors.append(("blk.%d.%s.weight" % (l, n), [c, r], 36, r * c // 4 + 32,
                            (lambda r=r, c=c: i2s_bytes(rng, r, c))))
    tensors.append(("output_norm.weight", [DIM], 0, DIM * 4, f32_ones(DIM)))
    infos, off = [], 0
    for name, ne, typ, size, _ in tensors:
        infos.append(gstr(name) + struct.pack("<I", len(ne)) + struct.pack("<%dQ" % len(ne), *ne) + struct.pack("<IQ", typ, off))
        off += (size + ALIGN - 1) // ALIGN * ALIGN
    header = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), len(kv)) + b"".join(kv) + b"".join(infos)
    header += bytes((-len(header)) % ALIGN)
    with open(out, "wb") as f:
        f.write(header)
        for name, ne, typ, size, make in tensors:
            data = make()
            assert len(data) == size, name
            f.write(data + bytes((-size) % ALIGN))


if __name__ == "__main__":
    main()
