// The llama2.c tokenizer on tok512: a hand-checked encoding, the byte fallback, the decoding rules,
// round trips, and the error lines for bad files.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "stories260K.hpp"
#include "wafermesh/model/tokenizer.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {
namespace {

using namespace testing_support;

class Tok512 : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(stories_present("tok512.bin"));
    tok_ = std::make_unique<Tokenizer>(stories_path("tok512.bin"), 512);
  }
  // What the generation loop prints for the tokens after BOS.
  std::string decode_all(const std::vector<int>& tokens) const {
    std::string out;
    for (std::size_t i = 1; i < tokens.size(); ++i) out += tok_->decode(tokens[i - 1], tokens[i]);
    return out;
  }
  std::unique_ptr<Tokenizer> tok_;
};

// Worked by hand from the tok512 vocabulary (scores: higher merges first).
// Characters: " "(dummy) O n c e " " u p o n " " a " " t i m e. Mergeable pairs and scores:
//   " t" 259 (-0), " a" 261 (-2), "im" 288 (-29), "on" 289 (-30), " u" 318 (-59), " O" 319 (-60),
//   then " On" 321 (-62), "ce" 331 (-72), " up" 350 (-91), "ime" 369 (-110), " time" 378 (-119),
//   " Once" 403 (-144), " upon" 407 (-148); no merge joins two words.
// So: " t", " a", "im", "on", " u", " O", " On", "ce", " up", "ime", " time", " Once", " upon".
TEST_F(Tok512, HandCheckedEncoding) {
  EXPECT_EQ(tok_->piece(403), " Once");
  EXPECT_EQ(tok_->piece(378), " time");
  EXPECT_EQ(tok_->encode("Once upon a time"), (std::vector<int>{1, 403, 407, 261, 378}));
  EXPECT_EQ(tok_->encode("Once upon a time", /*bos=*/false, /*eos=*/true),
            (std::vector<int>{403, 407, 261, 378, 2}));
  // No text, no dummy prefix.
  EXPECT_EQ(tok_->encode(""), (std::vector<int>{1}));
}

TEST_F(Tok512, CharactersWithoutATokenFallBackToBytes) {
  // "\n" has no token: byte 0x0A -> token 0x0A + 3 = 13, whose piece is "<0x0A>".
  EXPECT_EQ(tok_->encode("\n"), (std::vector<int>{1, 410, 13}));
  EXPECT_EQ(tok_->piece(13), "<0x0A>");
  // "é" (C3 A9) is one token (485); "ü" (C3 BC) is not, so it becomes two byte tokens.
  EXPECT_EQ(tok_->encode("\xC3\xA9"), (std::vector<int>{1, 410, 485}));
  EXPECT_EQ(tok_->encode("\xC3\xBC"), (std::vector<int>{1, 410, 0xC3 + 3, 0xBC + 3}));
}

TEST_F(Tok512, DecodingRules) {
  EXPECT_EQ(tok_->decode(Tokenizer::kBos, 403), "Once");  // leading space stripped after BOS only
  EXPECT_EQ(tok_->decode(378, 403), " Once");
  EXPECT_EQ(tok_->decode(Tokenizer::kBos, 410), "");     // " " after BOS
  EXPECT_EQ(tok_->decode(378, 13), "\n");                // <0x0A>: raw byte, whitespace: printed
  EXPECT_EQ(tok_->decode(378, 0x41 + 3), "A");           // <0x41>
  EXPECT_EQ(tok_->decode(378, 3), "");                   // <0x00>: not printable
  EXPECT_EQ(tok_->decode(378, 0x07 + 3), "");            // <0x07> bell
  EXPECT_EQ(tok_->decode(378, 0xC3 + 3), "");            // a lone UTF-8 lead byte, as llama2.c
  EXPECT_EQ(tok_->decode(378, 485), "\xC3\xA9");         // a multi-byte piece is printed whole
  EXPECT_EQ(tok_->decode(378, 0), "<unk>");
}

TEST_F(Tok512, AsciiRoundTrips) {
  const char* texts[] = {
      "Once upon a time, there was a little girl named Lily.",
      "\"Hi!\" said Tim. #42 & (100%) - ok?\n\tThe end.",
      "  two leading spaces",
      "x",
      "Lily\n\nSpot",
  };
  for (const char* text : texts) {
    const std::vector<int> t = tok_->encode(text);
    ASSERT_EQ(t[0], Tokenizer::kBos);
    EXPECT_EQ(decode_all(t), text) << text;
  }
  EXPECT_EQ(decode_all(tok_->encode("caf\xC3\xA9")), "caf\xC3\xA9");
  // Byte-fallback UTF-8 is dropped on output, exactly as the reference prints it.
  EXPECT_EQ(decode_all(tok_->encode("\xC3\xBC" "ber")), "ber");
}

void write_bytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string load_error(const std::string& path, std::int64_t vocab) {
  try {
    Tokenizer t(path, vocab);
  } catch (const LimitError& e) {
    return e.what();
  }
  return "";
}

TEST(TokenizerFile, ErrorsAreOneLineNamingTheFile) {
  ASSERT_TRUE(stories_present("tok512.bin"));
  const std::string good = read_bytes(stories_path("tok512.bin"));
  const std::string dir = scratch_dir("tokenizer");

  const std::string missing = dir + "/missing.bin";
  EXPECT_EQ(load_error(missing, 512), missing + ": cannot open tokenizer: No such file or directory");
  EXPECT_EQ(load_error(dir, 512), dir + ": cannot open tokenizer: not a regular file");

  // 4 bytes of max_token_length, then token 0 needs its 8-byte score and length: up to byte 12.
  const std::string truncated = dir + "/truncated.bin";
  write_bytes(truncated, good.substr(0, 6));
  EXPECT_EQ(load_error(truncated, 512),
            truncated + ": tokenizer truncated: token 0 of 512 needs bytes up to 12, found 6 bytes");

  const std::string oversized = dir + "/oversized.bin";
  write_bytes(oversized, good + "xyz");
  EXPECT_EQ(load_error(oversized, 512),
            oversized + ": tokenizer has " + std::to_string(good.size() + 3) + " bytes, expected " +
                std::to_string(good.size()) + " for 512 tokens (model.vocab)");
  // A config whose vocabulary is smaller than the file's: the same check catches it.
  EXPECT_EQ(load_error(stories_path("tok512.bin"), 500).rfind(stories_path("tok512.bin") +
                                                                  ": tokenizer has " +
                                                                  std::to_string(good.size()) +
                                                                  " bytes, expected ",
                                                              0),
            0u);

  // max_token_length 7 (as tok512), then a token claiming 9 bytes.
  const std::string bad_len = dir + "/bad_len.bin";
  std::string bytes(12, '\0');
  const std::int32_t max_len = 7, len = 9;
  const float score = 0.0f;
  std::memcpy(bytes.data(), &max_len, 4);
  std::memcpy(bytes.data() + 4, &score, 4);
  std::memcpy(bytes.data() + 8, &len, 4);
  write_bytes(bad_len, bytes + "123456789");
  EXPECT_EQ(load_error(bad_len, 512),
            bad_len + ": token 0 of 512 has length 9, expected 0..7 (max_token_length)");
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace wm::model
