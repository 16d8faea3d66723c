#pragma once
// Element types of tensors in weight files and their decoders to float (and, for the ternary
// types, to codes in {-1, 0, +1} plus scales). Layouts, from the public ggml / bitnet.cpp /
// safetensors definitions (little-endian throughout):
//
//   f32    4 bytes per element (IEEE binary32)
//   f16    2 bytes (IEEE binary16; subnormals, inf and NaN decode exactly)
//   bf16   2 bytes (the upper half of a binary32)
//   tq2_0  ggml, blocks of 256 elements in 66 bytes: qs[64], then d (f16). Element e of a block
//          is code (qs[32*(e/128) + e%32] >> 2*((e%128)/32)) & 3, value (code - 1) * d
//          (codes 0, 1, 2 are -1, 0, +1; code 3 decodes to +2 * d as in ggml, and is not ternary).
//   tq1_0  ggml, blocks of 256 elements in 54 bytes: qs[48], qh[4], then d (f16). A byte holds
//          5 (qs) or 4 (qh) base-3 digits as a fixed-point fraction: byte = ceil(v * 256 / 243)
//          with v the digits read most significant first (qh bytes are shifted one digit up).
//          Digit n of byte q is ((uint8)(q * 3^n) * 3) >> 8, value (digit - 1) * d. Element e:
//            e <  160  byte qs[e % 32],             digit e / 32
//            e <  240  byte qs[32 + (e-160) % 16],  digit (e-160) / 16
//            e >= 240  byte qh[(e-240) % 4],        digit (e-240) / 4
//   i2_s   bitnet.cpp (x86 layout), the whole tensor as one run of blocks of 128 elements in 32
//          bytes, then one f32 scale, padded to n/4 + 32 bytes. Element e is code
//          (data[32*(e/128) + e%32] >> (6 - 2*((e%128)/32))) & 3; codes 0, 1, 2, 3 are -1, 0, +1, 0;
//          value code * scale.
//   u8     raw bytes (the BitNet safetensors release packs four ternary codes per byte; that
//          layout is read by the safetensors model loader, not here)
//
// Every decoder reads elements [first, first + n) of a tensor whose data starts at `data`, so a
// rank can decode any block of rows, starting and ending mid-block. Each has a plain `_ref`
// twin written element by element from the definition above; the fast ones decode whole blocks
// through tables. Both give identical floats (tests compare them bit for bit).
#include <cstdint>
#include <optional>
#include <string>

namespace wm::io {

enum class DType { f32, f16, bf16, tq1_0, tq2_0, i2_s, u8 };

const char* dtype_name(DType t);
// True for tq1_0, tq2_0 and i2_s.
bool dtype_is_ternary(DType t);
// Elements per block: 256 (tq1_0, tq2_0), 128 (i2_s: a tensor must be a whole number of blocks),
// 1 otherwise.
std::int64_t dtype_block_elements(DType t);
// Bytes a tensor of n elements occupies, or nothing when n is not a whole number of blocks or
// the size overflows; `why` then says which.
std::optional<std::int64_t> dtype_tensor_bytes(DType t, std::int64_t n, std::string* why = nullptr);

float f16_to_f32(std::uint16_t h);
float bf16_to_f32(std::uint16_t h);

// Elements [first, first + n) of a tensor of `total` elements (total matters only for i2_s,
// whose scale follows the codes) as floats. f32/f16/bf16/tq1_0/tq2_0/i2_s only.
void decode_floats(DType t, const std::uint8_t* data, std::int64_t total, std::int64_t first, std::int64_t n,
                   float* out);
void decode_floats_ref(DType t, const std::uint8_t* data, std::int64_t total, std::int64_t first, std::int64_t n,
                       float* out);

// Ternary types: elements [first, first + n) as codes in {-1, 0, +1}. Returns false (codes
// unspecified) when an element is not ternary (tq2_0's code 3).
bool decode_ternary_codes(DType t, const std::uint8_t* data, std::int64_t total, std::int64_t first, std::int64_t n,
                          std::int8_t* codes);
bool decode_ternary_codes_ref(DType t, const std::uint8_t* data, std::int64_t total, std::int64_t first,
                              std::int64_t n, std::int8_t* codes);

// Ternary types: the scale of block b (tq1_0, tq2_0: the block's d; i2_s: the tensor's one scale,
// for every b).
float ternary_block_scale(DType t, const std::uint8_t* data, std::int64_t total, std::int64_t block);
// Number of scale blocks: total / 256 for tq1_0 and tq2_0, 1 for i2_s.
std::int64_t ternary_scale_blocks(DType t, std::int64_t total);

}  // namespace wm::io
