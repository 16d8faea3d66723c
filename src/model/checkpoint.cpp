#include "wafermesh/model/checkpoint.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <optional>
#include <string>
#include <vector>

#include "wafermesh/util/checked_math.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {

// The file is little-endian float32/int32 and is read with plain memory copies.
static_assert(std::endian::native == std::endian::little, "checkpoint reader assumes little-endian");

namespace {

constexpr std::int64_t kHeaderBytes = 7 * 4;

// Tensors in file order; the sub-norms are not in the file.
constexpr Tensor kFileOrder[] = {Tensor::token_embedding, Tensor::rms_att, Tensor::wq,
                                 Tensor::wk,              Tensor::wv,      Tensor::wo,
                                 Tensor::rms_ffn,         Tensor::w1,      Tensor::w2,
                                 Tensor::w3,              Tensor::rms_final};

std::int64_t layers_of(const ModelConfig& cfg, Tensor t) {
  return tensor_is_per_layer(t) ? cfg.layers : 1;
}

// Reads exactly n bytes at offset; returns false on a short read (errno set on a failed read).
bool pread_all(int fd, void* buf, std::int64_t n, std::int64_t offset) {
  auto* p = static_cast<char*>(buf);
  while (n > 0) {
    const ssize_t got = ::pread(fd, p, static_cast<std::size_t>(n), static_cast<off_t>(offset));
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      if (got == 0) errno = 0;
      return false;
    }
    p += got;
    n -= got;
    offset += got;
  }
  return true;
}

}  // namespace

std::int64_t CheckpointSource::expected_bytes(const ModelConfig& cfg) {
  std::int64_t floats = 0;
  auto add = [&](std::optional<std::int64_t> n) {
    const std::optional<std::int64_t> sum = n ? checked_sum({floats, *n}) : std::nullopt;
    if (!sum)
      throw UsageError("model " + cfg.name + ": its checkpoint would hold more than 2^63 bytes (dim " +
                       std::to_string(cfg.dim) + ", hidden_dim " + std::to_string(cfg.hidden_dim) + ", layers " +
                       std::to_string(cfg.layers) + ", vocab " + std::to_string(cfg.vocab) + ")");
    floats = *sum;
  };
  for (Tensor t : kFileOrder) {
    const TensorShape s = tensor_shape(cfg, t);
    add(checked_product({layers_of(cfg, t), s.rows, s.cols}));
  }
  add(checked_product({cfg.seq_len, cfg.head_dim()}));  // legacy RoPE tables: 2 x (seq_len, head_dim / 2)
  const std::int64_t header_floats = kHeaderBytes / 4;
  add(header_floats);
  const std::optional<std::int64_t> bytes = checked_product({floats, 4});
  if (!bytes) add(std::nullopt);  // (throws)
  return *bytes;
}

CheckpointSource::CheckpointSource(const std::string& path, const ModelConfig& cfg)
    : path_(path), cfg_(cfg) {
  auto fail = [&](const std::string& why) { throw UsageError(path_ + ": " + why); };
  // O_NONBLOCK: a FIFO must be refused below, not waited on (no effect on a regular file).
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd_ < 0) fail(std::string("cannot open checkpoint: ") + std::strerror(errno));
  try {
    struct stat st {};
    if (::fstat(fd_, &st) != 0) fail(std::string("cannot open checkpoint: ") + std::strerror(errno));
    if (!S_ISREG(st.st_mode)) fail("cannot open checkpoint: not a regular file");
    const std::int64_t size = st.st_size;
    // The header first, before any size is computed from the config: a file that disagrees with
    // the config is named by its field, and the expected size is computed only from dims that
    // both the config and the file state.
    if (size < kHeaderBytes)
      fail("checkpoint has " + std::to_string(size) + " bytes, less than its " + std::to_string(kHeaderBytes) +
           "-byte header (truncated)");
    std::int32_t header[7];
    if (!pread_all(fd_, header, kHeaderBytes, 0))
      fail(std::string("cannot read checkpoint header: ") + std::strerror(errno));
    const struct {
      const char* file_name;
      const char* config_name;
      std::int64_t expected;
    } fields[7] = {{"dim", "model.dim", cfg.dim},
                   {"hidden_dim", "model.hidden_dim", cfg.hidden_dim},
                   {"n_layers", "model.layers", cfg.layers},
                   {"n_heads", "model.heads", cfg.heads},
                   {"n_kv_heads", "model.kv_heads", cfg.kv_heads},
                   {"vocab_size", "model.vocab", cfg.vocab},
                   {"seq_len", "model.seq_len", cfg.seq_len}};
    if (header[5] < 0 && -std::int64_t{header[5]} == cfg.vocab)
      fail("header field vocab_size = " + std::to_string(header[5]) +
           " marks an untied classifier, which is not supported (only tied embeddings)");
    for (int i = 0; i < 7; ++i) {
      if (header[i] != fields[i].expected)
        fail(std::string("header field ") + fields[i].file_name + " = " + std::to_string(header[i]) +
             " does not match " + fields[i].config_name + " = " + std::to_string(fields[i].expected) +
             " of the model config");
    }
    const std::int64_t expected = expected_bytes(cfg);
    if (size != expected)
      fail("checkpoint has " + std::to_string(size) + " bytes, expected " + std::to_string(expected) +
           " for this model config (" + (size < expected ? "truncated" : "oversized") + ")");
    std::fill(std::begin(offset_), std::end(offset_), -1);
    std::int64_t at = kHeaderBytes;
    for (Tensor t : kFileOrder) {
      offset_[static_cast<int>(t)] = at;
      at += 4 * layers_of(cfg, t) * tensor_shape(cfg, t).size();  // within `expected`: no overflow
    }
    check_finite();
  } catch (...) {
    ::close(fd_);
    throw;
  }
}

void CheckpointSource::check_finite() const {
  // Every stored weight, once, in blocks of up to 1 Mi floats (the legacy RoPE tables are not read).
  constexpr std::int64_t kBlock = std::int64_t(1) << 20;
  std::vector<float> buf;
  for (Tensor t : kFileOrder) {
    const TensorShape s = tensor_shape(cfg_, t);
    const std::int64_t n = layers_of(cfg_, t) * s.size();
    for (std::int64_t i0 = 0; i0 < n; i0 += kBlock) {
      const std::int64_t m = std::min(kBlock, n - i0);
      buf.resize(static_cast<std::size_t>(m));
      const std::int64_t offset = offset_[static_cast<int>(t)] + 4 * i0;
      if (!pread_all(fd_, buf.data(), 4 * m, offset))
        throw UsageError(path_ + ": cannot read " + std::to_string(4 * m) + " bytes at offset " +
                         std::to_string(offset) + ": " + (errno ? std::strerror(errno) : "file shrank while it was read"));
      for (std::int64_t k = 0; k < m; ++k)
        if (!std::isfinite(buf[static_cast<std::size_t>(k)])) {
          const std::int64_t i = i0 + k, per_layer = s.size();
          const std::int64_t layer = i / per_layer, row = i % per_layer / s.cols, col = i % s.cols;
          const float v = buf[static_cast<std::size_t>(k)];
          throw UsageError(path_ + ": tensor " + tensor_name(t) +
                           (tensor_is_per_layer(t) ? " of layer " + std::to_string(layer) : std::string()) +
                           " holds " + (std::isnan(v) ? "NaN" : v > 0 ? "+Inf" : "-Inf") + " at row " +
                           std::to_string(row) + ", column " + std::to_string(col) + " (byte offset " +
                           std::to_string(offset + 4 * k) + "): the weights must be finite");
        }
    }
  }
}

CheckpointSource::~CheckpointSource() {
  if (fd_ >= 0) ::close(fd_);
}

void CheckpointSource::read_rows(Tensor t, std::int64_t layer, std::int64_t row0, std::int64_t rows,
                                 float* out) const {
  check_block(t, layer, row0, rows);
  const TensorShape s = tensor_shape(cfg_, t);
  const std::int64_t base = offset_[static_cast<int>(t)];
  if (base < 0) {  // BitNet sub-norms: not in a llama2.c file; ones make the norm a plain RMSNorm
    std::fill(out, out + rows * s.cols, 1.0f);
    return;
  }
  const std::int64_t offset = base + 4 * (layer * s.size() + row0 * s.cols);
  if (!pread_all(fd_, out, 4 * rows * s.cols, offset))
    throw UsageError(path_ + ": cannot read " + std::to_string(4 * rows * s.cols) +
                     " bytes at offset " + std::to_string(offset) + ": " +
                     (errno ? std::strerror(errno) : "file shrank after it was opened"));
}

Weights load_checkpoint(const std::string& path, const ModelConfig& cfg) {
  return materialize(CheckpointSource(path, cfg));
}

}  // namespace wm::model
