// The GGUF reader: a well-formed file's metadata and tensors; then a corpus of bad files, each of
// which must give exactly one FileFormatError line naming the file (never a crash, another
// exception or an allocation sized by a forged count): the file truncated at 20 points, every
// header byte flipped, forged counts, lengths, dimensions, types, offsets and alignments.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "gguf_writer.hpp"
#include "wafermesh/io/format_error.hpp"
#include "wafermesh/io/gguf.hpp"

namespace wm::io {
namespace {

using test::GgufWriter;

std::string scratch(const std::string& name) {
  // One folder per process, removed at exit.
  static const struct Dir {
    std::filesystem::path d = std::filesystem::temp_directory_path() / ("wm_test_gguf_" + std::to_string(::getpid()));
    Dir() { std::filesystem::create_directories(d); }
    ~Dir() {
      std::error_code ec;
      std::filesystem::remove_all(d, ec);
    }
  } dir;
  return (dir.d / name).string();
}

void write(const std::string& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary).write(bytes.data(), std::streamsize(bytes.size()));
}

// A small well-formed file: scalar and array metadata, an F32 matrix, a TQ2_0 tensor and an F16
// vector whose data ends exactly at the end of the file (so any truncation cuts a tensor).
GgufWriter sample() {
  GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_u32("llama.block_count", 2);
  w.add_f32("llama.rope.freq_base", 500000.0f);
  w.add_bool("tokenizer.ggml.add_bos_token", true);
  w.add_strings("tokenizer.ggml.tokens", {"a", "bc", "", "\xE2\x96\x81x"});
  w.add_f32s("tokenizer.ggml.scores", {0.5f, -1.0f, 0.0f, 2.0f});
  w.add_i32s("tokenizer.ggml.token_type", {1, 1, 3, 1});
  std::vector<float> m(3 * 5);
  for (std::size_t i = 0; i < m.size(); ++i) m[i] = float(i) - 4.5f;
  w.add_f32_tensor("blk.0.attn_q.weight", {5, 3}, m);  // (3 rows, 5 cols)
  w.add_tensor("blk.0.ffn_up.weight", {256, 2}, 35, std::string(2 * 66, '\x55'));
  w.add_tensor("output_norm.weight", {16}, 1, std::string(32, '\0'));
  return w;
}

// The message of the FileFormatError that opening `bytes` as a GGUF file throws, "" if it opens.
// Any other exception fails the test.
std::string open_error(const std::string& bytes, const std::string& name = "bad.gguf") {
  const std::string path = scratch(name);
  write(path, bytes);
  try {
    GgufFile g(path);
  } catch (const FileFormatError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << "the message must begin with the file: " << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << "one line: " << m;
    return m;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a FileFormatError: " << e.what();
    return "other exception";
  }
  return "";
}

TEST(Gguf, ReadsMetadataAndTensors) {
  const std::string path = scratch("ok.gguf");
  sample().write(path);
  const GgufFile g(path);
  EXPECT_EQ(g.version(), 3u);
  EXPECT_EQ(g.alignment(), 32);
  EXPECT_EQ(*g.get_string("general.architecture"), "llama");
  EXPECT_EQ(*g.get_int("llama.block_count"), 2);
  EXPECT_EQ(*g.get_real("llama.rope.freq_base"), 500000.0);
  EXPECT_EQ(*g.get_bool("tokenizer.ggml.add_bos_token"), true);
  EXPECT_EQ(g.find("tokenizer.ggml.tokens")->strings, (std::vector<std::string>{"a", "bc", "", "\xE2\x96\x81x"}));
  EXPECT_EQ(g.find("tokenizer.ggml.scores")->numbers, (std::vector<double>{0.5, -1.0, 0.0, 2.0}));
  EXPECT_FALSE(g.get_int("missing.key"));
  EXPECT_THROW(g.get_int("general.architecture"), FileFormatError);  // wrong type: one line
  ASSERT_EQ(g.tensors().size(), 3u);
  const GgufTensor* q = g.find_tensor("blk.0.attn_q.weight");
  ASSERT_TRUE(q);
  EXPECT_EQ(q->ne, (std::vector<std::int64_t>{5, 3}));
  EXPECT_EQ(q->elements, 15);
  EXPECT_EQ(q->bytes, 60);
  EXPECT_EQ(q->dtype, DType::f32);
  float x[15];
  std::memcpy(x, q->data, 60);
  EXPECT_EQ(x[14], 9.5f);
  EXPECT_EQ(g.find_tensor("blk.0.ffn_up.weight")->dtype, DType::tq2_0);
  EXPECT_EQ(g.find_tensor("blk.0.ffn_up.weight")->bytes, 132);
  const GgufTensor* last = g.find_tensor("output_norm.weight");
  EXPECT_EQ(g.data_offset() + last->offset + last->bytes, g.file_size());  // the sample ends with its data
  EXPECT_EQ(ggml_type_name(12), "Q4_K");
  EXPECT_EQ(ggml_type_name(36), "I2_S");
  EXPECT_EQ(ggml_type_name(99), "type 99");
  // A custom alignment is honoured.
  GgufWriter w = sample();
  w.add_u32("general.alignment", 64);
  const std::string p64 = scratch("a64.gguf");
  w.write(p64, 64);
  EXPECT_EQ(GgufFile(p64).alignment(), 64);
  EXPECT_EQ(GgufFile(p64).data_offset() % 64, 0);
}

TEST(GgufCorpus, TruncatedAtTwentyPointsIsOneLineEach) {
  const std::string good = sample().bytes();
  ASSERT_EQ(open_error(good), "");
  for (int k = 0; k < 20; ++k) {
    const std::size_t cut = good.size() * std::size_t(k) / 20 + (k ? 3 : 0);  // from 0 bytes to inside the data
    const std::string m = open_error(good.substr(0, cut));
    EXPECT_NE(m, "") << "truncated to " << cut << " of " << good.size() << " bytes opened";
    EXPECT_TRUE(m.find("truncated") != std::string::npos || m.find("not a GGUF file") != std::string::npos ||
                m.find("outside the data section") != std::string::npos || m.find("cannot fit") != std::string::npos ||
                m.find("are left") != std::string::npos)
        << m;
  }
}

TEST(GgufCorpus, EveryFlippedHeaderByteIsAnErrorOrAValidFile) {
  const std::string good = sample().bytes();
  const GgufFile g([&] {
    const std::string p = scratch("g.gguf");
    write(p, good);
    return p;
  }());
  int errors = 0;
  for (std::size_t i = 0; i < std::size_t(g.data_offset()); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xFF}) {
      std::string b = good;
      b[i] = char(b[i] ^ mask);
      errors += open_error(b) != "";
    }
  }
  // Flips inside string contents or float values leave a valid file; most others do not.
  EXPECT_GT(errors, int(g.data_offset()));
}

// Offsets into sample(): magic 0, version 4, tensor count 8, kv count 16, first key length 24.
TEST(GgufCorpus, ForgedFieldsNameTheFieldAndTheLimit) {
  const std::string good = sample().bytes();
  auto with = [&](std::size_t at, auto v) {
    std::string b = good;
    std::memcpy(b.data() + at, &v, sizeof v);
    return b;
  };
  EXPECT_NE(open_error("GGUF").find("truncated: the version needs 4 bytes"), std::string::npos);
  EXPECT_NE(open_error("").find("not a GGUF file"), std::string::npos);
  EXPECT_NE(open_error(with(0, std::uint32_t(0x46554747 ^ 1))).find("not a GGUF file"), std::string::npos);
  EXPECT_NE(open_error(with(4, std::uint32_t(1))).find("GGUF version 1"), std::string::npos);
  EXPECT_NE(open_error(with(4, std::uint32_t(7))).find("GGUF version 7 is not supported"), std::string::npos);
  EXPECT_NE(open_error(with(4, std::uint32_t(0x03000000))).find("big-endian"), std::string::npos);
  EXPECT_NE(open_error(with(8, std::uint64_t(1) << 62)).find("tensor count 4611686018427387904 cannot fit"),
            std::string::npos);
  EXPECT_NE(open_error(with(16, ~std::uint64_t(0))).find("metadata count 18446744073709551615 cannot fit"),
            std::string::npos);
  EXPECT_NE(open_error(with(24, std::uint64_t(1) << 40)).find("is a string of 1099511627776 bytes"), std::string::npos);

  // Field by field, through the writer.
  GgufWriter w;
  w.add_raw("big.array", 9, GgufWriter::pod(std::uint32_t(4)) + GgufWriter::pod(std::uint64_t(1) << 61));
  EXPECT_NE(open_error(w.bytes()).find("key big.array: array of 2305843009213693952 u32 needs at least"),
            std::string::npos);
  GgufWriter w2;
  w2.add_raw("strings", 9, GgufWriter::pod(std::uint32_t(8)) + GgufWriter::pod(std::uint64_t(1) << 59));
  EXPECT_NE(open_error(w2.bytes()).find("key strings: array of 576460752303423488 string"), std::string::npos);
  GgufWriter w3;
  w3.add_raw("odd", 13, "");
  EXPECT_NE(open_error(w3.bytes()).find("key odd: unknown value type 13"), std::string::npos);
  GgufWriter w4;
  w4.add_raw("b", 7, std::string(1, '\x02'));
  EXPECT_NE(open_error(w4.bytes()).find("key b: bool value 2"), std::string::npos);
  GgufWriter w5;
  w5.add_u32("k", 1);
  w5.add_u32("k", 2);
  EXPECT_NE(open_error(w5.bytes()).find("key k appears twice"), std::string::npos);
  GgufWriter w6;
  w6.add_raw("general.alignment", 4, GgufWriter::pod(std::uint32_t(24)));
  EXPECT_NE(open_error(w6.bytes()).find("general.alignment = 24 is not a power of two"), std::string::npos);
  GgufWriter w7;
  w7.add_raw("nested", 9, GgufWriter::pod(std::uint32_t(9)) + GgufWriter::pod(std::uint64_t(1)) +
                              GgufWriter::pod(std::uint32_t(9)) + GgufWriter::pod(std::uint64_t(1)) +
                              GgufWriter::pod(std::uint32_t(9)) + GgufWriter::pod(std::uint64_t(0)));
  EXPECT_NE(open_error(w7.bytes()).find("nested more than two deep"), std::string::npos);

  auto tensor_error = [&](std::vector<std::uint64_t> ne, std::uint32_t type, std::size_t bytes) {
    GgufWriter t;
    t.add_tensor("t.weight", std::move(ne), type, std::string(bytes, '\0'));
    return open_error(t.bytes());
  };
  EXPECT_NE(tensor_error({1, 1, 1, 1, 1}, 0, 4).find("tensor t.weight: 5 dimensions, expected 1 to 4"), std::string::npos);
  EXPECT_NE(tensor_error({std::uint64_t(1) << 40, std::uint64_t(1) << 40}, 0, 4).find("element count overflow"),
            std::string::npos);
  EXPECT_NE(tensor_error({std::uint64_t(1) << 61}, 0, 4).find("size overflows"), std::string::npos);
  EXPECT_NE(tensor_error({1000}, 0, 64).find("tensor t.weight: data [0, 4000) lies outside the data section of 64 bytes"),
            std::string::npos);
  EXPECT_NE(tensor_error({100}, 35, 66).find("not a whole number of TQ2_0 blocks of 256"), std::string::npos);
  EXPECT_EQ(tensor_error({32}, 12, 0), "");  // Q4_K: read, only decoding it is refused (by the model loader)
  GgufWriter t2;
  t2.add_tensor("x", {4}, 0, std::string(16, '\0'));
  t2.add_tensor("x", {4}, 0, std::string(16, '\0'));
  EXPECT_NE(open_error(t2.bytes()).find("tensor x appears twice"), std::string::npos);
  // A misaligned or huge offset: patch the last tensor info's offset field (8 bytes before the padding).
  GgufWriter t3;
  t3.add_tensor("y", {8}, 0, std::string(32, '\0'));
  std::string b3 = t3.bytes();
  const std::size_t off_at = 4 + 4 + 8 + 8 + 8 + 1 + 4 + 8 + 4;  // magic ver counts, name "y", n_dims, ne, type
  std::uint64_t off = 8;
  std::memcpy(b3.data() + off_at, &off, 8);
  EXPECT_NE(open_error(b3).find("tensor y: data offset 8 is not a multiple of the alignment 32"), std::string::npos);
  off = ~std::uint64_t(0) << 6;
  std::memcpy(b3.data() + off_at, &off, 8);
  EXPECT_NE(open_error(b3).find("tensor y: data offset"), std::string::npos);
}

TEST(Gguf, IsGgufFileLooksAtTheMagicOnly) {
  const std::string p = scratch("m.gguf"), q = scratch("m.bin");
  write(p, "GGUF");
  write(q, "GGUG....");
  EXPECT_TRUE(is_gguf_file(p));
  EXPECT_FALSE(is_gguf_file(q));
  EXPECT_FALSE(is_gguf_file(scratch("absent")));
}

}  // namespace
}  // namespace wm::io
