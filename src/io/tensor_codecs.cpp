#include "wafermesh/io/tensor_codecs.hpp"

#include <algorithm>
#include <array>
#include <bit>
#include <cstring>
#include <stdexcept>

#include "wafermesh/io/checked.hpp"

namespace wm::io {

static_assert(std::endian::native == std::endian::little, "tensor decoders assume a little-endian host");

namespace {

constexpr std::int64_t kQK = 256;         // tq1_0, tq2_0 block
constexpr std::int64_t kTq1Bytes = 54;    // qs[48] qh[4] d
constexpr std::int64_t kTq2Bytes = 66;    // qs[64] d
constexpr std::int64_t kI2Block = 128;    // i2_s block: 128 elements in 32 bytes

std::uint16_t load_u16(const std::uint8_t* p) { return static_cast<std::uint16_t>(p[0] | (p[1] << 8)); }

std::uint32_t load_u32(const std::uint8_t* p) {
  return std::uint32_t(p[0]) | (std::uint32_t(p[1]) << 8) | (std::uint32_t(p[2]) << 16) | (std::uint32_t(p[3]) << 24);
}

float bits_to_float(std::uint32_t b) { return std::bit_cast<float>(b); }

// ---- per-element definitions (the _ref decoders use these one element at a time)

// TQ1_0: digit n (0 = most significant) of a byte holding base-3 digits as a fraction of 256.
int tq1_digit(std::uint8_t q, int n) {
  static constexpr std::uint8_t pow3[5] = {1, 3, 9, 27, 81};
  const std::uint8_t shifted = static_cast<std::uint8_t>(q * pow3[n]);  // mod 256
  return (shifted * 3) >> 8;
}
int tq1_code_ref(const std::uint8_t* block, std::int64_t e) {
  int digit;
  if (e < 160) digit = tq1_digit(block[e % 32], int(e / 32));
  else if (e < 240) digit = tq1_digit(block[32 + (e - 160) % 16], int((e - 160) / 16));
  else digit = tq1_digit(block[48 + (e - 240) % 4], int((e - 240) / 4));
  return digit - 1;
}
int tq2_code_ref(const std::uint8_t* block, std::int64_t e) {
  const std::uint8_t byte = block[32 * (e / 128) + e % 32];
  return ((byte >> (2 * ((e % 128) / 32))) & 3) - 1;  // -1, 0, +1, or +2 for code 3
}
int i2s_code_ref(const std::uint8_t* data, std::int64_t e) {
  static constexpr int value[4] = {-1, 0, 1, 0};
  const std::uint8_t byte = data[32 * (e / kI2Block) + e % 32];
  return value[(byte >> (6 - 2 * ((e % kI2Block) / 32))) & 3];
}
float i2s_scale(const std::uint8_t* data, std::int64_t total) { return bits_to_float(load_u32(data + total / 4)); }

// ---- tables for the block decoders

struct Tables {
  std::array<float, 65536> f16;                // every binary16 pattern as binary32
  std::array<std::array<std::int8_t, 5>, 256> tq1;  // digits - 1 of a byte, most significant first
  std::array<std::array<std::int8_t, 4>, 256> tq2;  // (byte >> 2l) & 3, minus 1, l = 0..3
  std::array<std::array<std::int8_t, 4>, 256> i2s;  // codes at shifts 6, 4, 2, 0 as values
  Tables() {
    for (std::uint32_t h = 0; h < 65536; ++h) f16[h] = f16_to_f32(static_cast<std::uint16_t>(h));
    static constexpr std::int8_t i2v[4] = {-1, 0, 1, 0};
    for (int q = 0; q < 256; ++q) {
      for (int n = 0; n < 5; ++n) tq1[q][n] = static_cast<std::int8_t>(tq1_digit(std::uint8_t(q), n) - 1);
      for (int l = 0; l < 4; ++l) tq2[q][l] = static_cast<std::int8_t>(((q >> (2 * l)) & 3) - 1);
      for (int l = 0; l < 4; ++l) i2s[q][l] = i2v[(q >> (6 - 2 * l)) & 3];
    }
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}

// Whole-block decoders into a block's 256 (tq) or 128 (i2_s) values (code - 1, not scaled).
void tq1_block_values(const std::uint8_t* b, std::int8_t* v) {
  const auto& T = tables().tq1;
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 32; ++m) v[n * 32 + m] = T[b[m]][n];
  for (int n = 0; n < 5; ++n)
    for (int m = 0; m < 16; ++m) v[160 + n * 16 + m] = T[b[32 + m]][n];
  for (int n = 0; n < 4; ++n)
    for (int j = 0; j < 4; ++j) v[240 + n * 4 + j] = T[b[48 + j]][n];
}
void tq2_block_values(const std::uint8_t* b, std::int8_t* v) {
  const auto& T = tables().tq2;
  for (int half = 0; half < 2; ++half)
    for (int l = 0; l < 4; ++l)
      for (int m = 0; m < 32; ++m) v[half * 128 + l * 32 + m] = T[b[half * 32 + m]][l];
}
void i2s_block_values(const std::uint8_t* b, std::int8_t* v) {
  const auto& T = tables().i2s;
  for (int l = 0; l < 4; ++l)
    for (int m = 0; m < 32; ++m) v[l * 32 + m] = T[b[m]][l];
}

// Calls f(block index, first element within the block, count, output offset) for the blocks that
// cover [first, first + n).
template <typename F>
void for_blocks(std::int64_t block, std::int64_t first, std::int64_t n, F&& f) {
  std::int64_t done = 0;
  while (done < n) {
    const std::int64_t e = first + done;
    const std::int64_t b = e / block, in = e % block;
    const std::int64_t k = std::min(block - in, n - done);
    f(b, in, k, done);
    done += k;
  }
}

void require_supported(DType t) {
  if (t == DType::u8) throw std::invalid_argument("tensor_codecs: u8 tensors are not decoded to floats here");
}

}  // namespace

const char* dtype_name(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::tq1_0: return "TQ1_0";
    case DType::tq2_0: return "TQ2_0";
    case DType::i2_s: return "I2_S";
    case DType::u8: return "U8";
  }
  return "?";
}

bool dtype_is_ternary(DType t) { return t == DType::tq1_0 || t == DType::tq2_0 || t == DType::i2_s; }

std::int64_t dtype_block_elements(DType t) {
  if (t == DType::tq1_0 || t == DType::tq2_0) return kQK;
  if (t == DType::i2_s) return kI2Block;
  return 1;
}

std::optional<std::int64_t> dtype_tensor_bytes(DType t, std::int64_t n, std::string* why) {
  auto no = [&](const std::string& w) -> std::optional<std::int64_t> {
    if (why) *why = w;
    return std::nullopt;
  };
  if (n < 0) return no("negative element count");
  const std::int64_t blk = dtype_block_elements(t);
  if (n % blk != 0)
    return no(std::to_string(n) + " elements are not a whole number of " + dtype_name(t) + " blocks of " +
              std::to_string(blk));
  std::optional<std::int64_t> r;
  switch (t) {
    case DType::f32: r = checked_mul(n, 4); break;
    case DType::f16:
    case DType::bf16: r = checked_mul(n, 2); break;
    case DType::tq1_0: r = checked_mul(n / kQK, kTq1Bytes); break;
    case DType::tq2_0: r = checked_mul(n / kQK, kTq2Bytes); break;
    case DType::i2_s: r = n / 4 + 32; break;
    case DType::u8: r = n; break;
  }
  if (!r) return no("size overflows");
  return r;
}

float f16_to_f32(std::uint16_t h) {
  const std::uint32_t sign = std::uint32_t(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1Fu;
  std::uint32_t mant = h & 0x3FFu;
  if (exp == 0x1F) return bits_to_float(sign | 0x7F800000u | (mant << 13));  // inf, NaN (payload kept)
  if (exp != 0) return bits_to_float(sign | ((exp + 112) << 23) | (mant << 13));
  if (mant == 0) return bits_to_float(sign);  // +-0
  // Subnormal: value mant * 2^-24; normalise.
  int e = -1;
  do {
    mant <<= 1;
    ++e;
  } while ((mant & 0x400u) == 0);
  return bits_to_float(sign | std::uint32_t(112 - e) << 23 | ((mant & 0x3FFu) << 13));
}

float bf16_to_f32(std::uint16_t h) { return bits_to_float(std::uint32_t(h) << 16); }

void decode_floats_ref(DType t, const std::uint8_t* data, std::int64_t total, std::int64_t first, std::int64_t n,
                       float* out) {
  require_supported(t);
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t e = first + i;
    switch (t) {
      case DType::f32: out[i] = bits_to_float(load_u32(data + 4 * e)); break;
      case DType::f16: out[i] = f16_to_f32(load_u16(data + 2 * e)); break;
      case DType::bf16: out[i] = bf16_to_f32(load_u16(data + 2 * e)); break;
      case DType::tq1_0: {
        const std::uint8_t* b = data + (e / kQK) * kTq1Bytes;
        out[i] = float(tq1_code_ref(b, e % kQK)) * f16_to_f32(load_u16(b + 52));
        break;
      }
      case DType::tq2_0: {
        const std::uint8_t* b = data + (e / kQK) * kTq2Bytes;
        out[i] = float(tq2_code_ref(b, e % kQK)) * f16_to_f32(load_u16(b + 64));
        break;
      }
      case DType::i2_s: out[i] = float(i2s_code_ref(data, e)) * i2s_scale(data, total); break;
      case DType::u8: break;
    }
  }
}

void decode_floats(DType t, const std::uint8_t* data, std::int64_t total, std::int64_t first, std::int64_t n,
                   float* out) {
  require_supported(t);
  switch (t) {
    case DType::f32: std::memcpy(out, data + 4 * first, static_cast<std::size_t>(4 * n)); return;
    case DType::f16: {
      const auto& T = tables().f16;
      const std::uint8_t* p = data + 2 * first;
      for (std::int64_t i = 0; i < n; ++i) out[i] = T[load_u16(p + 2 * i)];
      return;
    }
    case DType::bf16: {
      const std::uint8_t* p = data + 2 * first;
      for (std::int64_t i = 0; i < n; ++i) out[i] = bf16_to_f32(load_u16(p + 2 * i));
      return;
    }
    case DType::tq1_0:
    case DType::tq2_0: {
      const bool one = t == DType::tq1_0;
      const std::int64_t bytes = one ? kTq1Bytes : kTq2Bytes;
      std::int8_t v[kQK];
      for_blocks(kQK, first, n, [&](std::int64_t b, std::int64_t in, std::int64_t k, std::int64_t o) {
        const std::uint8_t* blk = data + b * bytes;
        if (one) tq1_block_values(blk, v);
        else tq2_block_values(blk, v);
        const float d = tables().f16[load_u16(blk + bytes - 2)];
        for (std::int64_t j = 0; j < k; ++j) out[o + j] = float(v[in + j]) * d;
      });
      return;
    }
    case DType::i2_s: {
      const float s = i2s_scale(data, total);
      std::int8_t v[kI2Block];
      for_blocks(kI2Block, first, n, [&](std::int64_t b, std::int64_t in, std::int64_t k, std::int64_t o) {
        i2s_block_values(data + 32 * b, v);
        for (std::int64_t j = 0; j < k; ++j) out[o + j] = float(v[in + j]) * s;
      });
      return;
    }
    case DType::u8: return;
  }
}

bool decode_ternary_codes_ref(DType t, const std::uint8_t* data, std::int64_t /*total*/, std::int64_t first,
                              std::int64_t n, std::int8_t* codes) {
  if (!dtype_is_ternary(t)) throw std::invalid_argument("tensor_codecs: not a ternary type");
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t e = first + i;
    int c = 0;
    if (t == DType::tq1_0) c = tq1_code_ref(data + (e / kQK) * kTq1Bytes, e % kQK);
    else if (t == DType::tq2_0) c = tq2_code_ref(data + (e / kQK) * kTq2Bytes, e % kQK);
    else c = i2s_code_ref(data, e);
    if (c > 1) return false;
    codes[i] = static_cast<std::int8_t>(c);
  }
  return true;
}

bool decode_ternary_codes(DType t, const std::uint8_t* data, std::int64_t /*total*/, std::int64_t first,
                          std::int64_t n, std::int8_t* codes) {
  if (!dtype_is_ternary(t)) throw std::invalid_argument("tensor_codecs: not a ternary type");
  bool ok = true;
  if (t == DType::i2_s) {
    std::int8_t v[kI2Block];
    for_blocks(kI2Block, first, n, [&](std::int64_t b, std::int64_t in, std::int64_t k, std::int64_t o) {
      i2s_block_values(data + 32 * b, v);
      std::memcpy(codes + o, v + in, static_cast<std::size_t>(k));
    });
    return true;
  }
  const bool one = t == DType::tq1_0;
  const std::int64_t bytes = one ? kTq1Bytes : kTq2Bytes;
  std::int8_t v[kQK];
  for_blocks(kQK, first, n, [&](std::int64_t b, std::int64_t in, std::int64_t k, std::int64_t o) {
    if (one) tq1_block_values(data + b * bytes, v);
    else tq2_block_values(data + b * bytes, v);
    for (std::int64_t j = 0; j < k; ++j) {
      ok = ok && v[in + j] <= 1;
      codes[o + j] = v[in + j];
    }
  });
  return ok;
}

float ternary_block_scale(DType t, const std::uint8_t* data, std::int64_t total, std::int64_t block) {
  if (t == DType::tq1_0) return f16_to_f32(load_u16(data + block * kTq1Bytes + 52));
  if (t == DType::tq2_0) return f16_to_f32(load_u16(data + block * kTq2Bytes + 64));
  if (t == DType::i2_s) return i2s_scale(data, total);
  throw std::invalid_argument("tensor_codecs: not a ternary type");
}

std::int64_t ternary_scale_blocks(DType t, std::int64_t total) {
  if (t == DType::tq1_0 || t == DType::tq2_0) return total / kQK;
  if (t == DType::i2_s) return 1;
  throw std::invalid_argument("tensor_codecs: not a ternary type");
}

}  // namespace wm::io
