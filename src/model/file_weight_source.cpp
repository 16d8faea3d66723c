#include "wafermesh/model/file_weight_source.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace wm::model {

FileWeightSource::FileWeightSource(const ModelConfig& cfg, std::vector<TensorView> views,
                                   std::shared_ptr<const void> keep_alive)
    : cfg_(cfg), views_(std::move(views)), keep_alive_(std::move(keep_alive)) {
  if (views_.size() != static_cast<std::size_t>(kTensorCount * cfg_.layers))
    throw std::invalid_argument("FileWeightSource: views must hold kTensorCount * layers entries");
}

const TensorView& FileWeightSource::view(Tensor t, std::int64_t layer) const {
  return views_[static_cast<std::size_t>(static_cast<std::int64_t>(t) * cfg_.layers + layer)];
}

namespace {

std::int64_t stored_row(const TensorView& v, std::int64_t r) {
  return v.row_map.empty() ? r : v.row_map[static_cast<std::size_t>(r)];
}

// The 2-bit code (0, 1, 2 for -1, 0, +1; 3 is not ternary) of the packed BitNet weight at (stored row, col).
int packed_code(const TensorView& v, std::int64_t row, std::int64_t col) {
  const std::int64_t prow = v.rows / 4;
  const std::uint8_t byte = v.data[(row % prow) * v.cols + col];
  return (byte >> (2 * (row / prow))) & 3;
}

}  // namespace

void FileWeightSource::read_rows(Tensor t, std::int64_t layer, std::int64_t row0, std::int64_t rows,
                                 float* out) const {
  check_block(t, layer, row0, rows);
  const TensorView& v = view(t, layer);
  const std::int64_t cols = v.cols;
  switch (v.kind) {
    case TensorView::Kind::ones: std::fill(out, out + rows * cols, 1.0f); return;
    case TensorView::Kind::packed:
      for (std::int64_t i = 0; i < rows; ++i) {
        const std::int64_t r = stored_row(v, row0 + i);
        for (std::int64_t c = 0; c < cols; ++c)
          out[i * cols + c] = static_cast<float>(packed_code(v, r, c) - 1) / v.weight_scale;
      }
      return;
    case TensorView::Kind::dense:
      if (v.row_map.empty()) {
        io::decode_floats(v.dtype, v.data, v.elements, row0 * cols, rows * cols, out);
        return;
      }
      for (std::int64_t i = 0; i < rows; ++i)
        io::decode_floats(v.dtype, v.data, v.elements, stored_row(v, row0 + i) * cols, cols, out + i * cols);
      return;
  }
}

bool FileWeightSource::read_ternary(Tensor t, std::int64_t layer, std::int8_t* codes, float* gamma) const {
  check_block(t, layer, 0, tensor_shape(cfg_, t).rows);
  const TensorView& v = view(t, layer);
  const std::int64_t rows = v.rows, cols = v.cols;
  if (v.kind == TensorView::Kind::ones) return false;
  if (v.kind == TensorView::Kind::packed) {
    for (std::int64_t i = 0; i < rows; ++i) {
      const std::int64_t r = stored_row(v, i);
      for (std::int64_t c = 0; c < cols; ++c) {
        const int code = packed_code(v, r, c);
        if (code == 3) return false;
        codes[i * cols + c] = static_cast<std::int8_t>(code - 1);
      }
    }
    *gamma = 1.0f / v.weight_scale;
    return true;
  }
  if (io::dtype_is_ternary(v.dtype)) {
    const std::int64_t blocks = io::ternary_scale_blocks(v.dtype, v.elements);
    const float s = io::ternary_block_scale(v.dtype, v.data, v.elements, 0);
    for (std::int64_t b = 1; b < blocks; ++b)
      if (io::ternary_block_scale(v.dtype, v.data, v.elements, b) != s) return false;
    for (std::int64_t i = 0; i < rows; ++i)
      if (!io::decode_ternary_codes(v.dtype, v.data, v.elements, stored_row(v, i) * cols, cols, codes + i * cols))
        return false;
    *gamma = s;
    return true;
  }
  // Floats: ternary already when every nonzero weight has one magnitude.
  std::vector<float> w(static_cast<std::size_t>(rows * cols));  // (rows, cols)
  read_rows(t, layer, 0, rows, w.data());
  float g = 0.0f;
  for (std::size_t i = 0; i < w.size(); ++i) {
    const float a = std::fabs(w[i]);
    if (a == 0.0f) {
      codes[i] = 0;
      continue;
    }
    if (!std::isfinite(a) || (g != 0.0f && a != g)) return false;
    g = a;
    codes[i] = static_cast<std::int8_t>(w[i] > 0.0f ? 1 : -1);
  }
  if (g == 0.0f) return false;
  *gamma = g;
  return true;
}

std::vector<std::int32_t> split_half_rope_row_map(std::int64_t n_heads, std::int64_t head_dim) {
  std::vector<std::int32_t> m(static_cast<std::size_t>(n_heads * head_dim));
  const std::int64_t half = head_dim / 2;
  for (std::int64_t h = 0; h < n_heads; ++h)
    for (std::int64_t j = 0; j < half; ++j)
      for (std::int64_t t = 0; t < 2; ++t)
        m[static_cast<std::size_t>(h * head_dim + 2 * j + t)] = static_cast<std::int32_t>(h * head_dim + t * half + j);
  return m;
}

}  // namespace wm::model
