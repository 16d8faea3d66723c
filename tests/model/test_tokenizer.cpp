// The llama2.c tokenizer on tok512: a hand-checked encoding, the byte fallback, the decoding rules,
// round trips, and the error lines for bad files. The priority-queue encoder against the plain
// quadratic one (encode_ref) on many random texts, on tok512 and on vocabularies made of ties; ids
// always inside the vocabulary; a 1 MB prompt in well under a second.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <random>
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

// The message of the UsageError (bad input: exit code 2) that loading `path` throws ("" if none).
std::string load_error(const std::string& path, std::int64_t vocab) {
  try {
    Tokenizer t(path, vocab);
  } catch (const UsageError& e) {
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
  // BOS and EOS are ids 1 and 2: a smaller vocabulary cannot hold them.
  EXPECT_EQ(load_error(stories_path("tok512.bin"), 2),
            stories_path("tok512.bin") +
                ": model.vocab = 2: a llama2.c vocabulary has at least 3 tokens (<unk>, BOS, EOS)");
  std::filesystem::remove_all(dir);
}

// ---- the priority-queue encoder against encode_ref

// A llama2.c tokenizer file of the given pieces and scores.
std::string tokenizer_file(const std::string& path, const std::vector<std::string>& pieces,
                           const std::vector<float>& scores) {
  std::string bytes(4, '\0');
  std::int32_t max_len = 1;
  for (const auto& p : pieces) max_len = std::max<std::int32_t>(max_len, std::int32_t(p.size()));
  std::memcpy(bytes.data(), &max_len, 4);
  for (std::size_t i = 0; i < pieces.size(); ++i) {
    char rec[8];
    const std::int32_t len = std::int32_t(pieces[i].size());
    std::memcpy(rec, &scores[i], 4);
    std::memcpy(rec + 4, &len, 4);
    bytes.append(rec, 8);
    bytes += pieces[i];
  }
  write_bytes(path, bytes);
  return path;
}

// Random text: vocabulary pieces, ASCII, whole UTF-8 characters, stray continuation bytes and
// truncated characters, control bytes and NUL, over `length` pieces.
std::string random_text(std::mt19937_64& rng, const Tokenizer& tok, int length) {
  static const char* chars[] = {" ", "e", "a", "t", "\n", ".", ",", "\xC3\xA9", "\xC3\xBC", "\xE2\x82\xAC",
                                "\xF0\x9F\x98\x80", "\x80", "\xBF\xBF", "\xC3", "\xF0\x9F", "\x01", std::string("\0", 1).c_str(),
                                "\xFF", "  ", "Once", "Lily"};
  std::string t;
  for (int i = 0; i < length; ++i) {
    const auto r = rng() % 4;
    if (r < 2) {
      const auto id = int(rng() % std::uint64_t(tok.vocab_size()));
      if (tok.piece(id).rfind("<0x", 0) != 0) t += tok.piece(id);
    } else if (r == 2) {
      const auto k = rng() % (sizeof chars / sizeof chars[0]);
      t += k == 16 ? std::string(1, '\0') : std::string(chars[k]);
    } else {
      t += char(rng() % 256);
    }
  }
  return t;
}

TEST_F(Tok512, PriorityQueueEncoderEqualsTheQuadraticReference) {
  std::mt19937_64 rng(20);
  for (int n = 0; n < 3000; ++n) {
    const std::string text = random_text(rng, *tok_, 1 + int(rng() % 60));
    const std::vector<int> fast = tok_->encode(text, n % 2 == 0, n % 3 == 0);
    ASSERT_EQ(fast, tok_->encode_ref(text, n % 2 == 0, n % 3 == 0)) << "text #" << n << " of " << text.size() << " bytes";
    for (int id : fast) ASSERT_TRUE(id >= 0 && id < 512) << id;
  }
}

// Every byte, alone and after each lead byte, has a token: the byte fallback stays inside tok512.
TEST_F(Tok512, EveryByteEncodesInsideTheVocabulary) {
  for (int a = 0; a < 256; ++a)
    for (int b : {-1, 0x80, 0xBF, 0x41, 0xC3}) {
      std::string text(1, char(a));
      if (b >= 0) text += char(b);
      for (int id : tok_->encode(text)) ASSERT_TRUE(id >= 0 && id < 512) << a << " " << b << ": " << id;
    }
  EXPECT_TRUE(tok_->has_byte_tokens());
}

// Vocabularies made of equal scores (every merge a tie), and of scores that never win (-1e10,
// -inf, NaN): the first pair merges on a tie, and the two encoders agree on every text.
TEST(TokenizerMerges, TiesAndScoresThatNeverWinMatchTheReference) {
  const std::string dir = scratch_dir("tokenizer_ties");
  std::vector<std::string> pieces = {"<unk>", "\n<s>\n", "\n</s>\n"};
  std::vector<float> scores = {0, 0, 0};
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    pieces.push_back(name);
    scores.push_back(0);
  }
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<std::pair<std::string, float>> extra = {
      {" ", 0}, {"a", 0}, {"b", 0}, {"c", 0}, {"ab", 1}, {"ba", 1}, {"aa", 1}, {"bb", 1}, {"aba", 1}, {"bab", 1},
      {"abab", 1}, {"aab", 2}, {"abb", 2}, {"bc", -1e10f}, {"cb", nan}, {"ca", -inf}, {"ac", -1e10f + 1e4f},
      {" a", 1}, {" b", 0.5f}, {"cc", 1}, {"ccc", 1}, {"cccc", 3}};
  for (const auto& [p, sc] : extra) pieces.push_back(p), scores.push_back(sc);
  const Tokenizer tok(tokenizer_file(dir + "/ties.bin", pieces, scores), std::int64_t(pieces.size()));
  auto id = [&](const std::string& p) { return int(std::find(pieces.begin(), pieces.end(), p) - pieces.begin()); };
  // "aba" -> " " a b a: " a", "ab" and "ba" all score 1, so the first pair, " a", merges; then
  // "ba". (Taking "ab" first would end in " " "aba".)
  EXPECT_EQ(tok.encode("aba", false), (std::vector<int>{id(" a"), id("ba")}));
  // "cccc" -> c c c c: "cc" ties three times; the first pair merges, then "cc" + "c" ("ccc", 1)
  // ties with "c" + "c" ("cc", 1) at the end: first again; then "ccc" + "c" = "cccc" (3).
  EXPECT_EQ(tok.encode("cccc", false), (std::vector<int>{id(" "), id("cccc")}));
  // "bc" scores -1e10, "cb" NaN, "ca" -inf: none of them ever merges (llama2.c's test is
  // score > -1e10); "ac" scores just above it and does.
  EXPECT_EQ(tok.encode("bcb", false), (std::vector<int>{id(" b"), id("c"), id("b")}));
  EXPECT_EQ(tok.encode("cac", false), (std::vector<int>{id(" "), id("c"), id("ac")}));
  std::mt19937_64 rng(7);
  const char alphabet[] = {'a', 'b', 'c', ' ', 'x'};
  for (int n = 0; n < 5000; ++n) {
    std::string text;
    const int len = 1 + int(rng() % 40);
    for (int i = 0; i < len; ++i) text += alphabet[rng() % 5];
    ASSERT_EQ(tok.encode(text), tok.encode_ref(text)) << "'" << text << "'";
  }
  std::filesystem::remove_all(dir);
}

// A vocabulary without <0xHH> tokens cannot spell a character it lacks: a one-line UsageError
// naming the byte offset, the bytes and the file, never an id outside the vocabulary.
TEST(TokenizerMerges, CharacterWithoutATokenOrByteTokensIsAnError) {
  const std::string dir = scratch_dir("tokenizer_nobytes");
  const std::string path =
      tokenizer_file(dir + "/nobytes.bin", {"<unk>", "\n<s>\n", "\n</s>\n", " ", "a", "b", " a"}, {0, 0, 0, 0, 0, 0, 1});
  const Tokenizer tok(path, 7);
  EXPECT_FALSE(tok.has_byte_tokens());
  EXPECT_EQ(tok.encode("ab a"), (std::vector<int>{1, 6, 5, 6}));
  try {
    (void)tok.encode("ab caf\xC3\xA9");
    ADD_FAILURE() << "no error for a character without a token";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "prompt: the character at byte 3 (bytes 63) has no token in " + path +
                                         ", and the vocabulary has no byte token <0x63> to spell it");
  }
  try {
    (void)tok.encode_ref("a\xC3\xA9");
    ADD_FAILURE() << "no error for a character without a token";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "prompt: the character at byte 1 (bytes C3 A9) has no token in " + path +
                                         ", and the vocabulary has no byte token <0xC3> to spell it");
  }
  std::filesystem::remove_all(dir);
}

// A 1 MB prompt (story text with some UTF-8 and stray bytes) is encoded in linear time: about 0.3 s
// on an idle 2-core machine (README), where the quadratic reference needs minutes for 100 KB. The
// bound only tells the two apart, with room for a loaded machine; sanitizer builds run about 10
// times slower.
TEST_F(Tok512, OneMegabytePromptIsEncodedInLinearTime) {
  std::mt19937_64 rng(1);
  std::string text;
  while (text.size() < (std::size_t(1) << 20)) text += random_text(rng, *tok_, 64);
  const auto t0 = std::chrono::steady_clock::now();
  const std::vector<int> ids = tok_->encode(text);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
#ifdef WM_SANITIZE
  constexpr double kLimit = 60.0;
#else
  constexpr double kLimit = 6.0;
#endif
  EXPECT_LT(s, kLimit) << ids.size() << " tokens";
  EXPECT_GT(ids.size(), std::size_t(100000));
  // The same tokens as the reference on a slice the quadratic loop can still do quickly.
  const std::string slice = text.substr(0, 4000);
  EXPECT_EQ(tok_->encode(slice), tok_->encode_ref(slice));
}

}  // namespace
}  // namespace wm::model
