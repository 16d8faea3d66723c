#include "wafermesh/kernels/pack.hpp"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "entry_points.hpp"
#include "wafermesh/kernels/quantize.hpp"

namespace wm::kernels {
namespace {

void check_shape(const char* what, std::int64_t M, std::int64_t K, std::int64_t ldw) {
  detail::check_matrix_shape(what, "M", M, K, "ldw", ldw);
}

[[noreturn]] void throw_not_ternary(const char* what, std::int64_t i, std::int64_t k, int v) {
  throw std::invalid_argument(std::string(what) + ": weight (" + std::to_string(i) + ", " +
                              std::to_string(k) + ") = " + std::to_string(v) +
                              " is not ternary; quantise first (quantize_weights_absmean)");
}

std::int64_t round_up(std::int64_t x, std::int64_t m) { return (x + m - 1) / m * m; }

// w quantised with one absmean scale for the whole matrix, then packed as Matrix.
template <class Matrix>
Matrix from_float_absmean(const char* what, const float* w, std::int64_t M, std::int64_t K, std::int64_t ldw) {
  check_shape(what, M, K, ldw);
  std::vector<std::int8_t> wq(static_cast<std::size_t>(M * K));  // (M, K)
  const float gamma = quantize_weights_absmean(w, M, K, ldw, wq.data(), K);
  return Matrix::from_int8(wq.data(), M, K, K, gamma);
}

}  // namespace

// ------------------------------------------------------------------------------- 2-bit codes
TernaryMatrix2b TernaryMatrix2b::from_int8(const std::int8_t* w, std::int64_t M, std::int64_t K,
                                           std::int64_t ldw, float gamma) {
  check_shape("TernaryMatrix2b::from_int8", M, K, ldw);
  TernaryMatrix2b m;
  m.rows_ = M;
  m.cols_ = K;
  m.padded_cols_ = round_up(K, kBlockWeights);
  m.gamma_ = gamma;
  // 0x55 = four codes of 1 (w = 0): the padding.
  m.data_.assign(static_cast<std::size_t>(M * m.row_bytes()), 0x55);
  for (std::int64_t i = 0; i < M; ++i) {
    std::uint8_t* row = m.data_.data() + i * m.row_bytes();
    for (std::int64_t k = 0; k < K; ++k) {
      const int v = w[i * ldw + k];
      if (v < -1 || v > 1) throw_not_ternary("TernaryMatrix2b::from_int8", i, k, v);
      const std::int64_t block = k / kBlockWeights, in = k % kBlockWeights;
      const std::int64_t byte = block * kBlockBytes + in % 64;
      const int shift = 2 * static_cast<int>(in / 64);
      row[byte] = static_cast<std::uint8_t>((row[byte] & ~(3 << shift)) | ((v + 1) << shift));
    }
  }
  return m;
}

TernaryMatrix2b TernaryMatrix2b::from_float(const float* w, std::int64_t M, std::int64_t K,
                                            std::int64_t ldw) {
  return from_float_absmean<TernaryMatrix2b>("TernaryMatrix2b::from_float", w, M, K, ldw);
}

void TernaryMatrix2b::unpack(std::int8_t* out, std::int64_t ldo) const {
  for (std::int64_t i = 0; i < rows_; ++i) {
    const std::uint8_t* r = row(i);
    for (std::int64_t k = 0; k < cols_; ++k) {
      const std::int64_t block = k / kBlockWeights, in = k % kBlockWeights;
      const int code = (r[block * kBlockBytes + in % 64] >> (2 * (in / 64))) & 3;
      out[i * ldo + k] = static_cast<std::int8_t>(code - 1);
    }
  }
}

// ------------------------------------------------------------------------------ lookup table
TernaryMatrixLut TernaryMatrixLut::from_int8(const std::int8_t* w, std::int64_t M, std::int64_t K,
                                             std::int64_t ldw, float gamma) {
  check_shape("TernaryMatrixLut::from_int8", M, K, ldw);
  TernaryMatrixLut m;
  m.rows_ = M;
  m.cols_ = K;
  m.gamma_ = gamma;
  const std::int64_t G = m.groups(), T = m.tiles(), P = m.pairs();
  m.data_.assign(static_cast<std::size_t>(T * P * kRecordBytes), 0);
  m.neg_count_.assign(static_cast<std::size_t>(T * kTileRows), 0);
  for (std::int64_t i = 0; i < M; ++i) {
    const std::int64_t t = i / kTileRows, r = i % kTileRows;
    for (std::int64_t g = 0; g < G; ++g) {
      const std::int64_t k = 3 * g;
      const std::int64_t n = std::min<std::int64_t>(3, K - k);  // 3, or 2 / 1 in the tail
      int c[3] = {0, 0, 0};
      for (std::int64_t j = 0; j < n; ++j) {
        c[j] = w[i * ldw + k + j];
        if (c[j] < -1 || c[j] > 1) throw_not_ternary("TernaryMatrixLut::from_int8", i, k + j, c[j]);
      }
      // (w0 w1 w2); the two-weight tail (w0, w1) is the pattern (0, w0, w1)
      const int d[3] = {n == 3 ? c[0] : 0, n == 3 ? c[1] : c[0], n == 3 ? c[2] : c[1]};
      const int v = 9 * d[0] + 3 * d[1] + d[2];
      const int mag = v < 0 ? -v : v;
      std::uint8_t* rec = m.data_.data() + (t * P + g / 2) * kRecordBytes;
      const int h = static_cast<int>(g % 2);
      const std::int64_t b = 32 * h + r % 32;
      rec[b] = static_cast<std::uint8_t>(rec[b] | (r < 32 ? mag : mag << 4));
      if (v < 0) {
        const int bit = record_sign_bit(h, static_cast<int>(r));
        rec[kSignOffset + bit / 8] = static_cast<std::uint8_t>(rec[kSignOffset + bit / 8] | (1 << (bit % 8)));
        ++m.neg_count_[static_cast<std::size_t>(i)];
      }
    }
  }
  return m;
}

std::int64_t TernaryMatrixLut::serialized_bytes(std::int64_t M, std::int64_t K) {
  TernaryMatrixLut shape;
  shape.rows_ = M;
  shape.cols_ = K;
  return shape.tiles() * shape.pairs() * kRecordBytes + shape.tiles() * kTileRows * std::int64_t(sizeof(std::int32_t));
}

void TernaryMatrixLut::serialize(std::uint8_t* out) const {
  std::memcpy(out, data_.data(), data_.size());
  std::memcpy(out + data_.size(), neg_count_.data(), neg_count_.size() * sizeof(std::int32_t));
}

TernaryMatrixLut TernaryMatrixLut::deserialize(const std::uint8_t* in, std::int64_t M, std::int64_t K, float gamma) {
  TernaryMatrixLut m;
  m.rows_ = M;
  m.cols_ = K;
  m.gamma_ = gamma;
  const std::int64_t T = m.tiles(), P = m.pairs();
  m.data_.assign(in, in + T * P * kRecordBytes);
  m.neg_count_.resize(static_cast<std::size_t>(T * kTileRows));
  std::memcpy(m.neg_count_.data(), in + T * P * kRecordBytes, m.neg_count_.size() * sizeof(std::int32_t));
  return m;
}

TernaryMatrixLut TernaryMatrixLut::from_float(const float* w, std::int64_t M, std::int64_t K,
                                              std::int64_t ldw) {
  return from_float_absmean<TernaryMatrixLut>("TernaryMatrixLut::from_float", w, M, K, ldw);
}

void TernaryMatrixLut::unpack(std::int8_t* out, std::int64_t ldo) const {
  const std::int64_t G = groups();
  for (std::int64_t i = 0; i < rows_; ++i) {
    const std::int64_t t = i / kTileRows, r = i % kTileRows;
    for (std::int64_t g = 0; g < G; ++g) {
      const std::uint8_t* rec = tile(t) + (g / 2) * kRecordBytes;
      const int mag = record_magnitude(rec, static_cast<int>(g % 2), static_cast<int>(r));
      const bool neg = record_negative(rec, static_cast<int>(g % 2), static_cast<int>(r));
      int v = neg ? -mag : mag;
      // balanced ternary digits of v: v = 9 d0 + 3 d1 + d2, each in {-1, 0, 1}
      int d[3];
      for (int j = 2; j >= 0; --j) {
        int rem = ((v % 3) + 3) % 3;  // 0, 1, 2
        if (rem == 2) rem = -1;
        d[j] = rem;
        v = (v - rem) / 3;
      }
      const std::int64_t k = 3 * g;
      const std::int64_t n = std::min<std::int64_t>(3, cols_ - k);
      if (n == 3) {
        for (int j = 0; j < 3; ++j) out[i * ldo + k + j] = static_cast<std::int8_t>(d[j]);
      } else {  // tail pattern (0, w0, w1)
        out[i * ldo + k] = static_cast<std::int8_t>(d[1]);
        if (n == 2) out[i * ldo + k + 1] = static_cast<std::int8_t>(d[2]);
      }
    }
  }
}

}  // namespace wm::kernels
