// The JSON reader and the safetensors reader: well-formed files (one file, and shards behind an
// index), then a corpus of bad files, each one FileFormatError line naming the file and the tensor
// (never a crash or an allocation sized by a forged field): truncated at 20 points, flipped header
// bytes, forged header lengths, shapes, offsets, dtypes, overlaps and shard names.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <system_error>
#include <vector>

#include "wafermesh/io/format_error.hpp"
#include "wafermesh/io/json.hpp"
#include "wafermesh/io/safetensors.hpp"

namespace wm::io {
namespace {

std::string scratch(const std::string& name) {
  // One folder per process, removed at exit.
  static const struct Dir {
    std::filesystem::path d = std::filesystem::temp_directory_path() / ("wm_test_st_" + std::to_string(::getpid()));
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

std::string json_error(const std::string& text) {
  try {
    parse_json(text, "t.json");
  } catch (const FileFormatError& e) {
    return e.what();
  }
  return "";
}

TEST(Json, ParsesValuesAndKeepsMemberOrder) {
  const Json j = parse_json(R"( {"b": [1, -2.5e3, true, null, "x\u00e9\ud83d\ude00\n"], "a": {"c": 9007199254740993}} )", "t");
  ASSERT_TRUE(j.is_object());
  EXPECT_EQ(j.members()[0].first, "b");
  const auto& arr = j.find("b")->items();
  EXPECT_TRUE(arr[0].is_integer());
  EXPECT_EQ(arr[0].as_int(), 1);
  EXPECT_FALSE(arr[1].is_integer());
  EXPECT_EQ(arr[1].as_double(), -2500.0);
  EXPECT_TRUE(arr[2].as_bool());
  EXPECT_TRUE(arr[3].is_null());
  EXPECT_EQ(arr[4].as_string(), "x\xC3\xA9\xF0\x9F\x98\x80\n");
  EXPECT_EQ(j.find("a")->find("c")->as_int(), 9007199254740993);  // exact beyond 2^53
  EXPECT_EQ(j.find("zz"), nullptr);
}

TEST(Json, SyntaxErrorsNameTheByte) {
  EXPECT_EQ(json_error("[1, 2"), "t.json: JSON syntax error at byte 5: expected ',' or ']' in an array");
  EXPECT_EQ(json_error("{\"a\" 1}"), "t.json: JSON syntax error at byte 5: expected ':' after an object key");
  EXPECT_EQ(json_error("\"abc"), "t.json: JSON syntax error at byte 4: unterminated string");
  EXPECT_EQ(json_error("[1] x"), "t.json: JSON syntax error at byte 4: unexpected characters after the value");
  EXPECT_NE(json_error("\"\\ud800\""), "");
  EXPECT_NE(json_error("\"a\tb\""), "");  // raw control character
  EXPECT_NE(json_error("01"), "");
  EXPECT_NE(json_error(std::string(100000, '[')).find("nesting deeper than 128"), std::string::npos);
}

// A well-formed file: header JSON (padded with spaces to 8 bytes) then the data.
std::string st_file(const std::string& header, const std::string& data) {
  std::string h = header;
  h.resize((h.size() + 7) / 8 * 8, ' ');
  std::uint64_t n = h.size();
  std::string out(8, '\0');
  std::memcpy(out.data(), &n, 8);
  return out + h + data;
}

const char* kHeader =
    R"({"__metadata__": {"format": "pt"}, "w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 24]},)"
    R"( "p": {"dtype": "U8", "shape": [1, 3], "data_offsets": [24, 27]}, "s": {"dtype": "BF16", "shape": [1], "data_offsets": [27, 29]}})";

std::string sample() {
  std::string data(29, '\0');
  const float w[6] = {1, 2, 3, 4, 5, 6};
  std::memcpy(data.data(), w, 24);
  data[24] = 7;
  data[27] = char(0x80);
  data[28] = 0x3F;  // bf16 1.0
  return st_file(kHeader, data);
}

std::string open_error(const std::string& bytes, const std::string& name = "bad.safetensors") {
  const std::string path = scratch(name);
  write(path, bytes);
  try {
    SafetensorsFile f(path);
  } catch (const FileFormatError& e) {
    const std::string m = e.what();
    EXPECT_EQ(m.rfind(path + ": ", 0), 0u) << m;
    EXPECT_EQ(m.find('\n'), std::string::npos) << m;
    return m;
  } catch (const std::exception& e) {
    ADD_FAILURE() << "not a FileFormatError: " << e.what();
    return "other exception";
  }
  return "";
}

TEST(Safetensors, ReadsTensorsAndMetadata) {
  const std::string path = scratch("ok.safetensors");
  write(path, sample());
  const SafetensorsFile f(path);
  ASSERT_EQ(f.tensors().size(), 3u);
  const SafeTensor* w = f.find("w");
  ASSERT_TRUE(w);
  EXPECT_EQ(w->shape, (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(w->dtype, DType::f32);
  float x[6];
  std::memcpy(x, w->data, 24);
  EXPECT_EQ(x[5], 6.0f);
  EXPECT_EQ(f.find("p")->dtype, DType::u8);
  EXPECT_EQ(f.find("p")->data[0], 7);
  EXPECT_EQ(f.find("s")->dtype, DType::bf16);
  EXPECT_EQ(f.metadata().at("format"), "pt");
}

TEST(Safetensors, ShardsBehindAnIndex) {
  const std::string dir = scratch("sharded");
  std::filesystem::create_directories(dir);
  write(dir + "/a.safetensors", st_file(R"({"x": {"dtype": "F16", "shape": [2], "data_offsets": [0, 4]}})", "abcd"));
  write(dir + "/b.safetensors", st_file(R"({"y": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}})", "z"));
  write(dir + "/index.json", R"({"metadata": {}, "weight_map": {"x": "a.safetensors", "y": "b.safetensors"}})");
  const SafetensorsSet set(dir + "/index.json");
  EXPECT_EQ(set.find("x")->elements, 2);
  EXPECT_EQ(set.find("y")->data[0], 'z');
  EXPECT_EQ(set.all().size(), 2u);
  auto index_error = [&](const std::string& idx) {
    write(dir + "/bad.json", idx);
    try {
      SafetensorsSet s(dir + "/bad.json");
    } catch (const FileFormatError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(index_error(R"({"weight_map": {"x": "../a.safetensors"}})").find("is not a plain file name"), std::string::npos);
  EXPECT_NE(index_error(R"({"weight_map": {"y": "a.safetensors"}})").find("weight_map says tensor y is in a.safetensors, which does not hold it"),
            std::string::npos);
  EXPECT_NE(index_error(R"({"weight_map": {"x": "missing.safetensors"}})").find("cannot open"), std::string::npos);
  EXPECT_NE(index_error(R"({"map": {}})").find("no object \"weight_map\""), std::string::npos);
}

TEST(SafetensorsCorpus, TruncatedAtTwentyPointsIsOneLineEach) {
  const std::string good = sample();
  ASSERT_EQ(open_error(good), "");
  for (int k = 0; k < 20; ++k) {
    const std::size_t cut = good.size() * std::size_t(k) / 20 + (k ? 1 : 0);
    EXPECT_NE(open_error(good.substr(0, cut)), "") << "truncated to " << cut << " of " << good.size() << " opened";
  }
}

TEST(SafetensorsCorpus, EveryFlippedHeaderByteIsAnErrorOrAValidFile) {
  const std::string good = sample();
  std::uint64_t n;
  std::memcpy(&n, good.data(), 8);
  int errors = 0, total = 0;
  for (std::size_t i = 0; i < 8 + n; ++i)
    for (unsigned char mask : {0x01, 0x20, 0xFF}) {
      std::string b = good;
      b[i] = char(b[i] ^ mask);
      errors += open_error(b) != "";
      ++total;
    }
  EXPECT_GT(errors, total / 2);
}

TEST(SafetensorsCorpus, ForgedFieldsNameTheTensorAndTheLimit) {
  const std::string data(29, '\0');
  std::string huge(8, '\0');
  const std::uint64_t big = std::uint64_t(1) << 62;
  std::memcpy(huge.data(), &big, 8);
  EXPECT_NE(open_error(huge + "{}").find("header length 4611686018427387904 exceeds the format's limit"), std::string::npos);
  std::string longer(8, '\0');
  const std::uint64_t n = 1000;
  std::memcpy(longer.data(), &n, 8);
  EXPECT_NE(open_error(longer + "{}").find("truncated: the header needs 1000 bytes"), std::string::npos);
  EXPECT_NE(open_error("abc").find("truncated: 3 bytes"), std::string::npos);
  auto header_error = [&](const std::string& h) { return open_error(st_file(h, data)); };
  EXPECT_NE(header_error("[1]").find("does not begin with '{'"), std::string::npos);
  EXPECT_NE(header_error(R"({"w": {"dtype": "F32", "shape": [2, 3], "data_offsets": [0, 28]}})")
                .find("tensor w: data_offsets [0, 28) hold 28 bytes, the shape needs 24"),
            std::string::npos);
  EXPECT_NE(header_error(R"({"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}})")
                .find("tensor w: data [0, 32) lies outside the data of 29 bytes"),
            std::string::npos);
  EXPECT_NE(header_error(R"({"w": {"dtype": "F32", "shape": [4294967296, 1073741824], "data_offsets": [0, 4]}})")
                .find("tensor w: data_offsets [0, 4) hold 4 bytes, the shape needs more than 2^63"),
            std::string::npos);
  EXPECT_NE(header_error(R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 4]}})")
                .find("element count overflows"),
            std::string::npos);
  EXPECT_NE(header_error(R"({"w": {"dtype": "Q4", "shape": [1], "data_offsets": [0, 1]}})").find("unknown dtype \"Q4\""),
            std::string::npos);
  EXPECT_NE(header_error(R"({"w": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}})").find("not a non-negative integer"),
            std::string::npos);
  EXPECT_NE(header_error(R"({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}})").find("0 <= begin <= end"),
            std::string::npos);
  EXPECT_NE(header_error(R"({"w": {"dtype": "U8", "shape": [4], "data_offsets": [0, 4]}, "v": {"dtype": "U8", "shape": [4], "data_offsets": [2, 6]}})")
                .find("overlap"),
            std::string::npos);
  EXPECT_NE(header_error(R"({"w": {"shape": [1], "data_offsets": [0, 1]}})").find("tensor w: no string \"dtype\""), std::string::npos);
  EXPECT_NE(header_error(R"({"w": 3})").find("tensor w: its entry is not an object"), std::string::npos);
}

}  // namespace
}  // namespace wm::io
