// The byte-level BPE tokenizer (LLaMA-3): the pre-tokeniser on hand-worked cases, the byte
// alphabet, merges by rank on a toy vocabulary, special tokens, streaming decode of characters
// split across tokens; then agreement with the reference implementation, the npm package
// llama3-tokenizer-js (LLaMA-3's own vocabulary and merges), on 2,400 generated strings, the
// round trip decode(encode(s)) == s on all of them, and the same vocabulary read from a GGUF file.
// The package must be installed (launch/setup puts it in tests/.npm): without it the oracle test
// fails, naming what is missing.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <system_error>
#include <unistd.h>
#include <string>
#include <vector>

#include "gguf_writer.hpp"
#include "wafermesh/io/format_error.hpp"
#include "wafermesh/io/gguf.hpp"
#include "wafermesh/io/json.hpp"
#include "wafermesh/model/bpe_tokenizer.hpp"
#include "wafermesh/model/unicode_class.hpp"

namespace wm::model {
namespace {

std::vector<std::string> pieces(std::string_view s) {
  std::vector<std::string> v;
  for (auto p : pretokenize_llama3(s)) v.emplace_back(p);
  return v;
}

using V = std::vector<std::string>;

TEST(Pretokenize, FollowsTheLlama3PatternAlternativeByAlternative) {
  EXPECT_EQ(pieces("Hello world"), (V{"Hello", " world"}));
  EXPECT_EQ(pieces("I'm it'S we'RE they'Ve you'll he'D don't"),
            (V{"I", "'m", " it", "'S", " we", "'RE", " they", "'Ve", " you", "'ll", " he", "'D", " don", "'t"}));
  EXPECT_EQ(pieces("'sup"), (V{"'s", "up"}));  // contractions need no word boundary
  EXPECT_EQ(pieces("'x"), (V{"'x"}));          // not a contraction: punctuation + letters
  EXPECT_EQ(pieces("12345"), (V{"123", "45"}));
  EXPECT_EQ(pieces("3.14"), (V{"3", ".", "14"}));
  EXPECT_EQ(pieces("$100"), (V{"$", "100"}));
  EXPECT_EQ(pieces("a  b"), (V{"a", " ", " b"}));  // \s+(?!\S) leaves the last space to the word
  EXPECT_EQ(pieces("a \n\n b"), (V{"a", " \n\n", " b"}));  // \s*[\r\n]+ up to the last newline
  EXPECT_EQ(pieces("x!!\n\ny"), (V{"x", "!!\n\n", "y"}));  // punctuation takes trailing newlines
  EXPECT_EQ(pieces(" !?"), (V{" !?"}));
  EXPECT_EQ(pieces("end   "), (V{"end", "   "}));  // whitespace at the end: all of it
  EXPECT_EQ(pieces("\tword"), (V{"\tword"}));      // a tab may lead a word, a newline may not
  EXPECT_EQ(pieces("\nword"), (V{"\n", "word"}));
  EXPECT_EQ(pieces("ab\xF0\x9F\x98\x80" "cd"), (V{"ab", "\xF0\x9F\x98\x80" "cd"}));  // emoji leads a word
  EXPECT_EQ(pieces("\xE4\xBD\xA0\xE5\xA5\xBD 42"), (V{"\xE4\xBD\xA0\xE5\xA5\xBD", " ", "42"}));
  EXPECT_EQ(pieces(""), V{});
  // Unicode classes: U+00A0 and U+3000 are White_Space; U+0661 (Arabic-Indic one) and U+00BD (1/2) numbers.
  EXPECT_EQ(pieces("a\xC2\xA0\xC2\xA0" "b"), (V{"a", "\xC2\xA0", "\xC2\xA0" "b"}));
  EXPECT_EQ(pieces("\xD9\xA1\xD9\xA2\xD9\xA3\xD9\xA4"), (V{"\xD9\xA1\xD9\xA2\xD9\xA3", "\xD9\xA4"}));
  EXPECT_TRUE(is_number(0xBD));
  EXPECT_TRUE(is_space(0x3000) && is_space(0x85) && !is_space(0xFEFF) && !is_space(0x200B));
  EXPECT_TRUE(is_letter(0x4F60) && is_letter(0xAC00) && !is_letter(0x0301));  // CJK, Hangul; a combining mark is not
}

TEST(Pretokenize, PiecesAlwaysConcatenateToTheText) {
  std::uint64_t s = 88172645463325252ull;
  for (int n = 0; n < 2000; ++n) {
    std::string t;
    const int len = int(s % 24);
    for (int i = 0; i < len; ++i) {
      s ^= s << 13, s ^= s >> 7, s ^= s << 17;
      t.push_back(static_cast<char>(s & 0xFF));  // any bytes, invalid UTF-8 included
    }
    std::string joined;
    for (auto p : pretokenize_llama3(t)) {
      ASSERT_FALSE(p.empty());
      joined += p;
    }
    ASSERT_EQ(joined, t);
  }
}

TEST(ByteAlphabet, MapsEveryByteToOneSymbolAndBack) {
  EXPECT_EQ(byte_symbol(' '), "\xC4\xA0");  // U+0120 'G with dot'
  EXPECT_EQ(byte_symbol('\n'), "\xC4\x8A");  // U+010A
  EXPECT_EQ(byte_symbol('A'), "A");
  for (int b = 0; b < 256; ++b) {
    const std::string& s = byte_symbol(std::uint8_t(b));
    const Utf8Char u = utf8_at(s, 0);
    ASSERT_EQ(u.len, s.size());
    EXPECT_EQ(symbol_byte(u.cp), b);
  }
}

// A toy vocabulary: bytes, then merges "a b" -> "ab" (rank 0), "b c" -> "bc" (rank 1),
// "ab c" -> "abc" (rank 2), and a special token.
BpeTokenizer toy(bool ignore_merges) {
  BpeTokenizer::Vocab v;
  v.source = "toy";
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_symbol(std::uint8_t(b)));
  v.tokens.insert(v.tokens.end(), {"ab", "bc", "abc", "cab", "<|eot|>"});
  v.merges = {{"a", "b"}, {"b", "c"}, {"ab", "c"}};
  v.specials = {260};
  v.bos = 260;
  v.ends = {260};
  v.ignore_merges = ignore_merges;
  return BpeTokenizer(std::move(v));
}

TEST(Bpe, MergesByRankLeftmostFirst) {
  const BpeTokenizer t = toy(false);
  EXPECT_EQ(t.encode("abc", false), (std::vector<int>{258}));           // ab (rank 0), then abc (rank 2)
  EXPECT_EQ(t.encode("bcab", false), (std::vector<int>{257, 256}));     // bc | ab
  EXPECT_EQ(t.encode("abab", false), (std::vector<int>{256, 256}));     // equal ranks: both
  EXPECT_EQ(t.encode("cab", false), (std::vector<int>{'c', 256}));      // "cab" is a token, but no merge makes it
  EXPECT_EQ(toy(true).encode("cab", false), (std::vector<int>{259}));  // ignore_merges: a whole piece that is a token
  EXPECT_EQ(t.encode("ab<|eot|>ab", true), (std::vector<int>{260, 256, 260, 256}));
  EXPECT_EQ(t.decode(t.encode("x<|eot|>abc  \n", false)), "x<|eot|>abc  \n");
}

TEST(Bpe, StreamingHoldsBackIncompleteCharacters) {
  const BpeTokenizer t = toy(false);
  auto d = t.start_decoding();
  // U+1F600 as four single-byte tokens: nothing until the last byte arrives.
  EXPECT_EQ(d->next(0, 0xF0), "");
  EXPECT_EQ(d->next(0, 0x9F), "");
  EXPECT_EQ(d->next(0, 0x98), "");
  EXPECT_EQ(d->next(0, 0x80), "\xF0\x9F\x98\x80");
  EXPECT_EQ(d->next(0, 'a'), "a");
  EXPECT_EQ(d->next(0, 0xC3), "");             // a two-byte character begins
  EXPECT_EQ(d->next(0, 'b'), "\xC3" "b");      // ... and never completes: passed through
  EXPECT_EQ(d->next(0, 0xE4), "");
  EXPECT_EQ(d->finish(), "\xE4");               // what is left at the end
}

TEST(Bpe, RejectsInconsistentVocabularies) {
  BpeTokenizer::Vocab v;
  v.source = "bad.json";
  for (int b = 0; b < 256; ++b) v.tokens.push_back(byte_symbol(std::uint8_t(b)));
  v.bos = 0;
  auto message = [](BpeTokenizer::Vocab x) {
    try {
      BpeTokenizer t(std::move(x));
    } catch (const io::FileFormatError& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  auto a = v;
  a.merges = {{"a", "zz"}};
  EXPECT_NE(message(a).find("bad.json: merge 0 \"a zz\" names a token that is not in the vocabulary"), std::string::npos)
      << message(a);
  auto b = v;
  b.merges = {{"a", "b"}};
  EXPECT_NE(message(b).find("makes a token that is not in the vocabulary"), std::string::npos);
  auto c = v;
  c.tokens.erase(c.tokens.begin() + 'q');
  EXPECT_NE(message(c).find("no token for the byte"), std::string::npos) << message(c);
  auto d = v;
  d.bos = 999;
  EXPECT_NE(message(d).find("begin-of-text token id 999 is out of range"), std::string::npos);
}

// ---- the reference implementation

std::string read_all(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

std::string json_string(const std::string& s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o.push_back('\\');
      o.push_back(char(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o.push_back(char(c));
    }
  }
  return o + "\"";
}

std::string utf8(char32_t cp) {
  std::string s;
  if (cp < 0x80) s.push_back(char(cp));
  else if (cp < 0x800) s += {char(0xC0 | (cp >> 6)), char(0x80 | (cp & 0x3F))};
  else if (cp < 0x10000) s += {char(0xE0 | (cp >> 12)), char(0x80 | ((cp >> 6) & 0x3F)), char(0x80 | (cp & 0x3F))};
  else
    s += {char(0xF0 | (cp >> 18)), char(0x80 | ((cp >> 12) & 0x3F)), char(0x80 | ((cp >> 6) & 0x3F)),
          char(0x80 | (cp & 0x3F))};
  return s;
}

// 2,400 strings, the same on every run: prose with contractions, code, whitespace runs, digit runs,
// scripts from Latin to Devanagari, Thai, CJK and Hangul, emoji (modifiers, ZWJ sequences, flags),
// and random code points from those blocks. Characters where the reference's JavaScript regex
// differs from the Unicode definitions the tokenizer follows are left out: U+0085 (White_Space,
// not JS \s), U+FEFF (JS \s, not White_Space), U+017F and U+212A (case-fold to s and k in Rust's
// (?i), not in the package's [sS]-style classes).
std::vector<std::string> oracle_strings() {
  std::uint64_t s = 0x9E3779B97F4A7C15ull;
  auto rnd = [&](std::uint64_t n) {
    s ^= s << 13, s ^= s >> 7, s ^= s << 17;
    return s % n;
  };
  auto pick = [&](const std::vector<std::string>& v) -> const std::string& { return v[rnd(v.size())]; };
  const std::vector<std::string> words = {
      "the", "The", "quick", "brown", "fox", "jumps", "over", "lazy", "dog", "HELLO", "World", "tokenizer",
      "I'm", "you're", "it's", "can't", "won't", "they've", "we'll", "she'd", "IT'S", "DON'T", "We'Re",
      "O'Neil", "rock'n'roll", "y'all", "'tis", "'cause", "naïve", "café", "über", "straße", "déjà-vu",
      "señor", "façade", "Ærøskøbing", "ﬁnance", "wafer-scale", "emulator", "mesh", "PE", "SRAM"};
  const std::vector<std::string> punct = {".", ",", "!", "?", "...", ";", ":", "-", "--", "—", "–", "…", "(", ")",
                                          "[", "]", "{", "}", "\"", "'", "“", "”", "‘", "’", "«", "»", "/", "\\",
                                          "@", "#", "$", "%", "^", "&", "*", "+", "=", "<", ">", "|", "~", "`"};
  const std::vector<std::string> spaces = {" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "\t\t",
                                           "\xC2\xA0", "\xE3\x80\x80", "\xE2\x80\x83", "\xE2\x80\xAF", "\x0B", "\x0C",
                                           "    ", "\n\n\n", " \t \n"};
  const std::vector<std::string> code = {
      "def f(x):\n    return x**2  # square\n", "for (int i = 0; i < n; ++i) {\n\tsum += a[i];\n}",
      "if x != None and y >= 3:", "std::vector<int> v{1, 2, 3};", "#include <stdio.h>", "printf(\"%d\\n\", x);",
      "{\"key\": [1, 2.5, null, true]}", "<div class=\"a\">Hi</div>", "SELECT * FROM t WHERE id=42;",
      "x = y << 2 | z & 0xFF", "let s = `${a}b`;", "    indented\n        more", "a->b->c", "i += 1 // comment",
      "λx.x", "fn main() -> Result<(), Box<dyn Error>> {", "$ ls -la ~/work && echo ok", "// TODO(x): fix"};
  const std::vector<std::string> numbers = {"0", "7", "42", "123", "1234", "12345", "3.14159", "1,000,000",
                                            "2024-05-06", "10:30", "1e-5", "0xDEADBEEF", "99%", "#1", "v2.0.1",
                                            "١٢٣٤٥", "٣", "²", "½", "Ⅻ", "५६७", "一二三", "①②"};
  const std::vector<std::string> scripts = {
      "Привет", "мир", "Γειά σου", "κόσμε", "שלום", "مرحبا", "بالعالم", "नमस्ते", "दुनिया", "สวัสดี", "ครับ",
      "你好", "世界", "日本語", "のテキスト", "カタカナ", "안녕하세요", "세계", "Tiếng Việt", "Ελληνικά", "ქართული",
      "Հայերեն", "தமிழ்", "ಕನ್ನಡ", "ᚠᚢᚦ", "ⲁⲃⲅ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "İstanbul", "ǅemal", "Ωμέγα"};
  const std::vector<std::string> emoji = {"😀", "😂", "👍", "👍🏽", "❤️", "🇫🇷", "🇯🇵", "👨‍👩‍👧", "🧑🏿‍💻",
                                          "🎉", "✨", "🔥", "🐍", "☕", "✅", "⚡", "🙂🙃", "🤖", "🫠", "💯"};
  // Blocks for random code points (all assigned long before Unicode 14).
  const std::vector<std::pair<char32_t, char32_t>> blocks = {
      {0x20, 0x7E},     {0xA1, 0xFF},     {0x100, 0x17E},   {0x391, 0x3C9},   {0x410, 0x44F}, {0x5D0, 0x5EA},
      {0x627, 0x64A},   {0x660, 0x669},   {0x905, 0x939},   {0x93E, 0x94D},   {0xE01, 0xE2E}, {0x300, 0x36F},
      {0x2010, 0x2027}, {0x2030, 0x205E}, {0x2190, 0x21FF}, {0x2200, 0x22FF}, {0x3041, 0x3096}, {0x30A1, 0x30FA},
      {0x4E00, 0x4FFF}, {0xAC00, 0xAFFF}, {0x1F600, 0x1F64F}, {0x1F300, 0x1F3FF}, {0xFF01, 0xFF5E}};
  std::vector<std::string> out = {"", " ", "  ", "\n", "\r\n", "a", "A", "'s", "'", "''", "0", "000", "0000",
                                  " 1", "  1", "\t\n", "a\n", "\n\na", "a   ", "   a", "!!!", "!\n", "...\n\n"};
  for (int k = 0; out.size() < 2400; ++k) {
    std::string t;
    const int kind = k % 8;
    const int parts = 1 + int(rnd(12));
    for (int p = 0; p < parts; ++p) {
      switch (kind) {
        case 0: t += pick(words) + (rnd(3) ? " " : pick(punct) + " "); break;                   // prose
        case 1: t += pick(code) + (rnd(2) ? "\n" : " "); break;                                  // code
        case 2: t += pick(spaces) + (rnd(2) ? pick(words) : pick(numbers)); break;              // whitespace runs
        case 3: t += pick(numbers) + (rnd(2) ? pick(punct) : pick(spaces)); break;              // digits
        case 4: t += pick(scripts) + (rnd(2) ? " " : pick(punct)); break;                       // scripts
        case 5: t += pick(emoji) + (rnd(3) ? "" : pick(words)) + (rnd(2) ? " " : ""); break;    // emoji
        case 6: {                                                                                // code points
          const auto& b = blocks[rnd(blocks.size())];
          t += utf8(char32_t(b.first + rnd(b.second - b.first + 1)));
          break;
        }
        default: t += rnd(2) ? pick(words) : pick(scripts); t += pick(spaces) + pick(emoji) + pick(punct); break;
      }
    }
    if (t.find("<|") != std::string::npos) continue;  // no special-token text
    out.push_back(t);
  }
  return out;
}

std::string shell_quote(const std::string& s) { return "'" + s + "'"; }

struct Oracle {
  std::string dir;
  std::string tokenizer_json;
  std::string error;  // why the oracle is not available ("" when it is)
};

const Oracle& oracle() {
  static const Oracle o = [] {
    Oracle r;
    const std::string node = WM_NODE_EXECUTABLE;
    const std::string pkg = std::string(WM_NPM_DIR) + "/node_modules/llama3-tokenizer-js/package.json";
    if (node.empty() || !std::filesystem::exists(node)) {
      r.error = "node (Node.js) was not found when the build was configured: run launch/setup";
      return r;
    }
    if (!std::filesystem::exists(pkg)) {
      r.error = "the reference tokenizer is not installed (" + pkg + " is missing): run launch/setup";
      return r;
    }
    r.dir = (std::filesystem::temp_directory_path() / ("wm_bpe_oracle_" + std::to_string(::getpid()))).string();
    std::filesystem::create_directories(r.dir);
    r.tokenizer_json = r.dir + "/tokenizer.json";
    const std::string cmd = shell_quote(node) + " " + shell_quote(WM_BPE_ORACLE_SCRIPT) + " " + shell_quote(WM_NPM_DIR) +
                            " vocab " + shell_quote(r.tokenizer_json);
    if (std::system(cmd.c_str()) != 0) r.error = "the reference failed: " + cmd;
    return r;
  }();
  static const struct Cleanup {
    std::string dir;
    ~Cleanup() {
      std::error_code ec;
      if (!dir.empty()) std::filesystem::remove_all(dir, ec);
    }
  } cleanup{o.dir};
  return o;
}

std::vector<std::vector<int>> oracle_encode(const std::vector<std::string>& strings) {
  const Oracle& o = oracle();
  std::string js = "[";
  for (std::size_t i = 0; i < strings.size(); ++i) js += (i ? "," : "") + json_string(strings[i]);
  js += "]";
  const std::string in = o.dir + "/strings.json", out = o.dir + "/ids.json";
  std::ofstream(in, std::ios::binary) << js;
  const std::string cmd = shell_quote(WM_NODE_EXECUTABLE) + " " + shell_quote(WM_BPE_ORACLE_SCRIPT) + " " +
                          shell_quote(WM_NPM_DIR) + " encode " + shell_quote(in) + " " + shell_quote(out);
  if (std::system(cmd.c_str()) != 0) return {};
  const io::Json ids = io::parse_json(read_all(out), out);
  std::vector<std::vector<int>> r;
  for (const io::Json& a : ids.items()) {
    r.emplace_back();
    for (const io::Json& x : a.items()) r.back().push_back(int(x.as_int()));
  }
  return r;
}

std::string show_ids(const BpeTokenizer& t, const std::vector<int>& v) {
  std::string s;
  for (int id : v) s += std::to_string(id) + json_string(t.token_bytes(id)) + " ";
  return s;
}

TEST(BpeOracle, AgreesWithLlama3TokenizerJsOn2400StringsAndRoundTrips) {
  const Oracle& o = oracle();
  ASSERT_EQ(o.error, "");
  const auto tok = BpeTokenizer::from_tokenizer_json(o.tokenizer_json);
  ASSERT_EQ(tok->vocab_size(), 128256);
  const std::vector<std::string> strings = oracle_strings();
  ASSERT_GE(strings.size(), 2000u);
  const auto want = oracle_encode(strings);
  ASSERT_EQ(want.size(), strings.size()) << "the reference did not encode the strings";
  int mismatches = 0;
  std::size_t tokens = 0;
  for (std::size_t i = 0; i < strings.size(); ++i) {
    const std::vector<int> got = tok->encode(strings[i], false, false);
    tokens += got.size();
    if (got != want[i] && ++mismatches <= 10)
      ADD_FAILURE() << "string " << i << " " << json_string(strings[i]) << "\n ours:      " << show_ids(*tok, got)
                    << "\n reference: " << show_ids(*tok, want[i]);
    EXPECT_EQ(tok->decode(got), strings[i]) << "round trip of string " << i;
  }
  EXPECT_EQ(mismatches, 0) << "of " << strings.size() << " strings";
  std::printf("compared %zu strings, %zu tokens\n", strings.size(), tokens);
  // BOS and the special tokens, as the package encodes them.
  EXPECT_EQ(tok->encode("Hello world", true, false), (std::vector<int>{128000, 9906, 1917}));
  EXPECT_EQ(tok->encode("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>", false),
            (std::vector<int>{128006, 882, 128007, 271, 13347, 128009}));
  EXPECT_TRUE(tok->ends_text(128009) && tok->ends_text(128001) && !tok->ends_text(128000));
}

TEST(BpeOracle, TheSameVocabularyFromAGgufFileEncodesAlike) {
  const Oracle& o = oracle();
  ASSERT_EQ(o.error, "");
  const auto from_json = BpeTokenizer::from_tokenizer_json(o.tokenizer_json);
  // Rebuild the vocabulary as GGUF keys, as llama.cpp's converter writes them.
  const io::Json j = io::parse_json(read_all(o.tokenizer_json), o.tokenizer_json);
  const io::Json& model = *j.find("model");
  std::vector<std::string> tokens(128256);
  std::vector<std::int32_t> types(128256, 1);
  for (const auto& [s, id] : model.find("vocab")->members()) tokens[std::size_t(id.as_int())] = s;
  for (const io::Json& a : j.find("added_tokens")->items()) {
    tokens[std::size_t(a.find("id")->as_int())] = a.find("content")->as_string();
    types[std::size_t(a.find("id")->as_int())] = 3;  // control
  }
  std::vector<std::string> merges;
  for (const io::Json& m : model.find("merges")->items()) merges.push_back(m.as_string());
  test::GgufWriter w;
  w.add_string("general.architecture", "llama");
  w.add_string("tokenizer.ggml.model", "gpt2");
  w.add_string("tokenizer.ggml.pre", "llama-bpe");
  w.add_strings("tokenizer.ggml.tokens", tokens);
  w.add_i32s("tokenizer.ggml.token_type", types);
  w.add_strings("tokenizer.ggml.merges", merges);
  w.add_u32("tokenizer.ggml.bos_token_id", 128000);
  w.add_u32("tokenizer.ggml.eos_token_id", 128009);
  const std::string path = o.dir + "/vocab.gguf";
  w.write(path);
  const io::GgufFile g(path);
  const auto from_gguf = BpeTokenizer::from_gguf(g);
  ASSERT_EQ(from_gguf->vocab_size(), 128256);
  EXPECT_EQ(from_gguf->bos_id(), 128000);
  EXPECT_TRUE(from_gguf->ends_text(128009));
  const auto strings = oracle_strings();
  for (std::size_t i = 0; i < strings.size(); ++i)
    ASSERT_EQ(from_gguf->encode(strings[i]), from_json->encode(strings[i])) << "string " << i;
}

}  // namespace
}  // namespace wm::model
