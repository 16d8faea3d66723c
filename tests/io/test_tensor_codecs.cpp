// Tensor decoders on hand-made blocks: every code value of TQ1_0, TQ2_0 and I2_S at the positions
// the format definitions give (worked out here by hand, not by the decoder's formulas), the block
// scales, reads that start and end inside a block and the last block of a tensor; F16 and BF16
// on special values; and every fast decoder against its _ref on random bytes, bit for bit.
#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "wafermesh/io/tensor_codecs.hpp"

namespace wm::io {
namespace {

std::uint32_t bits(float f) { return std::bit_cast<std::uint32_t>(f); }

void put_u16(std::vector<std::uint8_t>& v, std::size_t at, std::uint16_t x) {
  v[at] = std::uint8_t(x & 0xFF);
  v[at + 1] = std::uint8_t(x >> 8);
}

std::vector<float> decode(DType t, const std::vector<std::uint8_t>& d, std::int64_t total, std::int64_t first,
                          std::int64_t n) {
  std::vector<float> a(static_cast<std::size_t>(n)), b(static_cast<std::size_t>(n));
  decode_floats(t, d.data(), total, first, n, a.data());
  decode_floats_ref(t, d.data(), total, first, n, b.data());
  for (std::int64_t i = 0; i < n; ++i) EXPECT_EQ(bits(a[std::size_t(i)]), bits(b[std::size_t(i)])) << "element " << first + i;
  return a;
}

TEST(F16, SpecialValuesDecodeExactly) {
  EXPECT_EQ(f16_to_f32(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_f32(0xC000), -2.0f);
  EXPECT_EQ(f16_to_f32(0x7BFF), 65504.0f);                   // largest finite
  EXPECT_EQ(f16_to_f32(0x0400), std::ldexp(1.0f, -14));      // smallest normal
  EXPECT_EQ(f16_to_f32(0x0001), std::ldexp(1.0f, -24));      // smallest subnormal
  EXPECT_EQ(f16_to_f32(0x03FF), std::ldexp(1023.0f, -24));   // largest subnormal
  EXPECT_EQ(f16_to_f32(0x3555), 0.333251953125f);
  EXPECT_EQ(bits(f16_to_f32(0x8000)), 0x80000000u);          // -0
  EXPECT_EQ(f16_to_f32(0x7C00), std::numeric_limits<float>::infinity());
  EXPECT_EQ(f16_to_f32(0xFC00), -std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(f16_to_f32(0x7E00)));
  EXPECT_EQ(bf16_to_f32(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_f32(0xC2F7), -123.5f);
  // Every pattern: the table decoder equals the reference.
  std::vector<std::uint8_t> all(65536 * 2);
  for (std::uint32_t h = 0; h < 65536; ++h) put_u16(all, 2 * h, std::uint16_t(h));
  decode(DType::f16, all, 65536, 0, 65536);
  decode(DType::bf16, all, 65536, 0, 65536);
}

// TQ2_0 block (66 bytes): qs[64], d. Byte qs[m] (m < 32) holds elements m, m+32, m+64, m+96 in bits
// 0-1, 2-3, 4-5, 6-7; qs[32+m] holds elements 128+m, 160+m, 192+m, 224+m. Value (code - 1) * d.
TEST(TQ2_0, EveryCodeAtItsPositionTimesTheBlockScale) {
  std::vector<std::uint8_t> d(2 * 66, 0x55);  // 0b01010101: code 1 (value 0) everywhere
  d[0] = 0b11100100;   // elements 0, 32, 64, 96 have codes 0, 1, 2, 3
  d[32 + 5] = 0b00011011;  // elements 133, 165, 197, 229 have codes 3, 2, 1, 0
  put_u16(d, 64, 0x3800);  // d = 0.5
  d[66 + 31] = 0b10010101;  // block 1: element 256 + 127 (qs[31], bits 6-7) has code 2
  put_u16(d, 66 + 64, 0xC200);  // d = -3
  const std::vector<float> v = decode(DType::tq2_0, d, 512, 0, 512);
  const std::pair<int, float> want[] = {{0, -0.5f}, {32, 0.0f}, {64, 0.5f}, {96, 1.0f},  // code 3 is +2: not ternary
                                        {133, 1.0f}, {165, 0.5f}, {197, 0.0f}, {229, -0.5f}, {383, -3.0f}};
  for (auto [e, x] : want) EXPECT_EQ(v[std::size_t(e)], x) << "element " << e;
  int nonzero = 0;
  for (float x : v) nonzero += x != 0.0f;
  EXPECT_EQ(nonzero, 7);  // the rest are code 1 (elements 32 and 197 are code 1 too)
  // Reads starting and ending inside blocks, and the last block alone, give the same values.
  for (auto [first, n] : {std::pair<int, int>{100, 300}, {31, 2}, {255, 2}, {383, 1}, {256, 256}, {500, 12}}) {
    const std::vector<float> part = decode(DType::tq2_0, d, 512, first, n);
    for (int i = 0; i < n; ++i) EXPECT_EQ(part[std::size_t(i)], v[std::size_t(first + i)]);
  }
  std::vector<std::int8_t> codes(512);
  EXPECT_FALSE(decode_ternary_codes(DType::tq2_0, d.data(), 512, 0, 512, codes.data()));  // code 3 present
  EXPECT_FALSE(decode_ternary_codes_ref(DType::tq2_0, d.data(), 512, 0, 512, codes.data()));
  EXPECT_TRUE(decode_ternary_codes(DType::tq2_0, d.data(), 512, 256, 256, codes.data()));  // block 1 is ternary
  EXPECT_EQ(codes[127], 1);
  EXPECT_EQ(ternary_block_scale(DType::tq2_0, d.data(), 512, 0), 0.5f);
  EXPECT_EQ(ternary_block_scale(DType::tq2_0, d.data(), 512, 1), -3.0f);
}

// TQ1_0: a byte holds base-3 digits v (most significant first) as ceil(v * 256 / 243).
std::uint8_t tq1_byte(const std::vector<int>& digits) {
  int q = 0;
  for (int x : digits) q = q * 3 + x;
  return std::uint8_t((q * 256 + 242) / 243);
}

TEST(TQ1_0, EveryFiveDigitPatternAndEveryPosition) {
  // Every one of the 243 patterns of five digits, in byte qs[0] of a block of its own: the digits
  // come back at elements 0, 32, 64, 96, 128.
  std::vector<std::uint8_t> d(243 * 54, 0);
  for (int p = 0; p < 243; ++p) {
    const std::vector<int> dig = {p / 81 % 3, p / 27 % 3, p / 9 % 3, p / 3 % 3, p % 3};
    std::uint8_t* b = d.data() + p * 54;
    for (int m = 0; m < 48; ++m) b[m] = tq1_byte({1, 1, 1, 1, 1});  // zeros elsewhere
    for (int j = 0; j < 4; ++j) b[48 + j] = tq1_byte({1, 1, 1, 1, 0});
    b[0] = tq1_byte(dig);
    put_u16(d, std::size_t(p * 54 + 52), 0x4000);  // d = 2
  }
  const std::vector<float> v = decode(DType::tq1_0, d, 243 * 256, 0, 243 * 256);
  for (int p = 0; p < 243; ++p) {
    const int dig[5] = {p / 81 % 3, p / 27 % 3, p / 9 % 3, p / 3 % 3, p % 3};
    for (int n = 0; n < 5; ++n)
      ASSERT_EQ(v[std::size_t(p * 256 + n * 32)], 2.0f * float(dig[n] - 1)) << "pattern " << p << " digit " << n;
    int nonzero = 0;
    for (int e = 0; e < 256; ++e) nonzero += v[std::size_t(p * 256 + e)] != 0.0f;
    ASSERT_EQ(nonzero, (dig[0] != 1) + (dig[1] != 1) + (dig[2] != 1) + (dig[3] != 1) + (dig[4] != 1));
  }
}

TEST(TQ1_0, TheThreeRegionsOfABlock) {
  std::vector<std::uint8_t> d(54);
  for (int m = 0; m < 48; ++m) d[std::size_t(m)] = tq1_byte({1, 1, 1, 1, 1});
  for (int j = 0; j < 4; ++j) d[std::size_t(48 + j)] = tq1_byte({1, 1, 1, 1, 0});
  d[7] = tq1_byte({0, 1, 2, 1, 0});        // elements 7, 39, 71, 103, 135: -1, 0, +1, 0, -1
  d[32 + 3] = tq1_byte({2, 1, 1, 1, 0});   // elements 160+3 = 163 and 160+4*16+3 = 227: +1, -1
  d[48 + 2] = tq1_byte({0, 2, 1, 2, 0});   // elements 240+2, 246, 250, 254: -1, +1, 0, +1
  put_u16(d, 52, 0xBC00);                  // d = -1
  const std::vector<float> v = decode(DType::tq1_0, d, 256, 0, 256);
  const std::pair<int, float> want[] = {{7, 1.0f},   {39, 0.0f},   {71, -1.0f}, {103, 0.0f}, {135, 1.0f},
                                        {163, -1.0f}, {227, 1.0f}, {242, 1.0f},  {246, -1.0f}, {250, 0.0f},
                                        {254, -1.0f}};
  for (auto [e, x] : want) EXPECT_EQ(v[std::size_t(e)], x) << "element " << e;
  int nonzero = 0;
  for (float x : v) nonzero += x != 0.0f;
  EXPECT_EQ(nonzero, 8);
  std::vector<std::int8_t> codes(256);
  ASSERT_TRUE(decode_ternary_codes(DType::tq1_0, d.data(), 256, 0, 256, codes.data()));
  EXPECT_EQ(codes[7], -1);
  EXPECT_EQ(codes[254], 1);
  for (auto [first, n] : {std::pair<int, int>{150, 100}, {239, 17}, {255, 1}}) {
    const std::vector<float> part = decode(DType::tq1_0, d, 256, first, n);
    for (int i = 0; i < n; ++i) EXPECT_EQ(part[std::size_t(i)], v[std::size_t(first + i)]);
  }
}

// I2_S: blocks of 128 elements in 32 bytes; byte g holds elements g, g+32, g+64, g+96 in bits 7-6,
// 5-4, 3-2, 1-0; codes 0, 1, 2, 3 are -1, 0, +1, 0; one f32 scale after the codes (n/4 + 32 bytes).
TEST(I2_S, EveryCodeAndTheTensorScale) {
  const std::int64_t n = 256;
  std::vector<std::uint8_t> d(std::size_t(*dtype_tensor_bytes(DType::i2_s, n)), 0x55);  // code 1 everywhere
  EXPECT_EQ(d.size(), 256u / 4 + 32);
  d[3] = 0b00011011;        // elements 3, 35, 67, 99: codes 0, 1, 2, 3
  d[32 + 31] = 0b10010101;  // block 1: element 128 + 31 = 159 has code 2
  const float scale = 0.125f;
  std::memcpy(d.data() + n / 4, &scale, 4);
  const std::vector<float> v = decode(DType::i2_s, d, n, 0, n);
  EXPECT_EQ(v[3], -0.125f);
  EXPECT_EQ(v[35], 0.0f);
  EXPECT_EQ(v[67], 0.125f);
  EXPECT_EQ(v[99], 0.0f);  // code 3 decodes to 0, as bitnet.cpp's table has it
  EXPECT_EQ(v[159], 0.125f);
  int nonzero = 0;
  for (float x : v) nonzero += x != 0.0f;
  EXPECT_EQ(nonzero, 3);
  for (auto [first, n2] : {std::pair<int, int>{100, 60}, {127, 2}, {255, 1}}) {
    const std::vector<float> part = decode(DType::i2_s, d, n, first, n2);
    for (int i = 0; i < n2; ++i) EXPECT_EQ(part[std::size_t(i)], v[std::size_t(first + i)]);
  }
  EXPECT_EQ(ternary_block_scale(DType::i2_s, d.data(), n, 0), 0.125f);
  EXPECT_EQ(ternary_scale_blocks(DType::i2_s, n), 1);
  // A tensor must be whole blocks: its scale's place depends on it.
  std::string why;
  EXPECT_FALSE(dtype_tensor_bytes(DType::i2_s, 200, &why));
  EXPECT_EQ(why, "200 elements are not a whole number of I2_S blocks of 128");
  EXPECT_FALSE(dtype_tensor_bytes(DType::tq2_0, 255, &why));
  EXPECT_FALSE(dtype_tensor_bytes(DType::f32, std::int64_t(1) << 62, &why));
  EXPECT_EQ(why, "size overflows");
  EXPECT_EQ(*dtype_tensor_bytes(DType::tq1_0, 512), 108);
  EXPECT_EQ(*dtype_tensor_bytes(DType::tq2_0, 512), 132);
}

TEST(Decoders, FastEqualsRefOnRandomBytesAndAnyRange) {
  std::uint64_t s = 0x2545F4914F6CDD1Dull;
  auto rnd = [&] {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s;
  };
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::tq1_0, DType::tq2_0, DType::i2_s}) {
    const std::int64_t n = 256 * 7;
    std::vector<std::uint8_t> d(std::size_t(*dtype_tensor_bytes(t, n)));
    for (auto& b : d) b = std::uint8_t(rnd());
    for (int k = 0; k < 200; ++k) {
      const std::int64_t first = std::int64_t(rnd() % n), len = std::int64_t(rnd() % (n - first)) + 1;
      decode(t, d, n, first, len);
      if (dtype_is_ternary(t)) {
        std::vector<std::int8_t> a(static_cast<std::size_t>(len)), b(static_cast<std::size_t>(len));
        const bool ra = decode_ternary_codes(t, d.data(), n, first, len, a.data());
        const bool rb = decode_ternary_codes_ref(t, d.data(), n, first, len, b.data());
        ASSERT_EQ(ra, rb) << dtype_name(t);
        if (ra) {
          ASSERT_EQ(a, b) << dtype_name(t);
        }
      }
    }
  }
}

}  // namespace
}  // namespace wm::io
