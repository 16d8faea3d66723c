#include "wafermesh/model/tokenizer.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>

#include "wafermesh/util/error.hpp"

namespace wm::model {

namespace {

bool is_hex(char c) {
  return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F') || (c >= 'a' && c <= 'f');
}
int hex_value(char c) {
  if (c <= '9') return c - '0';
  if (c <= 'F') return c - 'A' + 10;
  return c - 'a' + 10;
}

}  // namespace

Tokenizer::Tokenizer(const std::string& path, std::int64_t vocab) {
  auto fail = [&](const std::string& why) { throw LimitError(path + ": " + why); };
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(std::string("cannot open tokenizer: ") + std::strerror(errno));
  // A directory opens fine and then reads as empty: say what it is instead.
  if (!std::filesystem::is_regular_file(path)) fail("cannot open tokenizer: not a regular file");
  const std::string data((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (in.bad()) fail("cannot read tokenizer");
  const auto size = static_cast<std::int64_t>(data.size());

  std::int64_t at = 0;
  auto need = [&](std::int64_t bytes, const std::string& what) {
    if (at + bytes > size)
      fail("tokenizer truncated: " + what + " needs bytes up to " + std::to_string(at + bytes) +
           ", found " + std::to_string(size) + " bytes");
  };
  auto read_i32 = [&] {
    std::int32_t v;
    std::memcpy(&v, data.data() + at, 4);
    at += 4;
    return v;
  };
  need(4, "max_token_length");
  const std::int32_t max_len = read_i32();
  if (max_len < 1) fail("tokenizer max_token_length = " + std::to_string(max_len) + ", expected >= 1");
  pieces_.reserve(static_cast<std::size_t>(vocab));
  scores_.reserve(static_cast<std::size_t>(vocab));
  for (std::int64_t i = 0; i < vocab; ++i) {
    const std::string what = "token " + std::to_string(i) + " of " + std::to_string(vocab);
    need(8, what);
    float score;
    std::memcpy(&score, data.data() + at, 4);
    at += 4;
    const std::int32_t len = read_i32();
    if (len < 0 || len > max_len)
      fail(what + " has length " + std::to_string(len) + ", expected 0.." + std::to_string(max_len) +
           " (max_token_length)");
    need(len, what);
    pieces_.emplace_back(data.data() + at, static_cast<std::size_t>(len));
    scores_.push_back(score);
    at += len;
    ids_.emplace(pieces_.back(), static_cast<int>(i));  // keeps the lower id of duplicates
  }
  if (at != size)
    fail("tokenizer has " + std::to_string(size) + " bytes, expected " + std::to_string(at) + " for " +
         std::to_string(vocab) + " tokens (model.vocab)");
}

Tokenizer::Tokenizer(std::vector<std::string> pieces, std::vector<float> scores)
    : pieces_(std::move(pieces)), scores_(std::move(scores)) {
  for (std::size_t i = 0; i < pieces_.size(); ++i) ids_.emplace(pieces_[i], static_cast<int>(i));
}

std::unique_ptr<TextDecoder> Tokenizer::start_decoding() const {
  struct Stateless final : TextDecoder {
    const Tokenizer& t;
    explicit Stateless(const Tokenizer& tok) : t(tok) {}
    std::string next(int prev, int token) override { return t.decode(prev, token); }
    std::string finish() override { return {}; }
  };
  return std::make_unique<Stateless>(*this);
}

int Tokenizer::lookup(std::string_view s) const {
  const auto it = ids_.find(std::string(s));
  return it == ids_.end() ? -1 : it->second;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int> tokens;  // (<= 3 + text bytes)
  if (bos) tokens.push_back(kBos);
  if (!text.empty()) {
    const int space = lookup(" ");
    if (space >= 0) tokens.push_back(space);  // llama2.c pushes it unconditionally; every real vocab has it
  }
  // One token per UTF-8 character: a character is a non-continuation byte plus the continuation
  // bytes (10xxxxxx) after it, at most 4 bytes.
  std::string ch;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) ch.clear();
    ch.push_back(static_cast<char>(c));
    const bool next_continues =
        i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
    if (next_continues && ch.size() < 4) continue;
    const int id = lookup(ch);
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (unsigned char b : ch) tokens.push_back(int{b} + 3);  // byte fallback: <0xHH> tokens
    }
    ch.clear();
  }
  // Greedy merges: the best-scoring mergeable pair, the first one on equal scores. BOS takes part
  // as in llama2.c (its piece "\n<s>\n" never merges with anything in practice).
  while (true) {
    float best_score = -1e10f;
    int best_id = -1;
    std::size_t best_at = 0;
    for (std::size_t i = 0; i + 1 < tokens.size(); ++i) {
      const int id = lookup(pieces_[static_cast<std::size_t>(tokens[i])] +
                            pieces_[static_cast<std::size_t>(tokens[i + 1])]);
      if (id >= 0 && scores_[static_cast<std::size_t>(id)] > best_score) {
        best_score = scores_[static_cast<std::size_t>(id)];
        best_id = id;
        best_at = i;
      }
    }
    if (best_id < 0) break;
    tokens[best_at] = best_id;
    tokens.erase(tokens.begin() + static_cast<std::ptrdiff_t>(best_at) + 1);
  }
  if (eos) tokens.push_back(kEos);
  return tokens;
}

std::string Tokenizer::decode(int prev_token, int token) const {
  std::string_view p = piece(token);
  if (prev_token == kBos && !p.empty() && p[0] == ' ') p.remove_prefix(1);
  std::string out;
  if (p.size() == 6 && p.substr(0, 3) == "<0x" && is_hex(p[3]) && is_hex(p[4]) && p[5] == '>')
    out.assign(1, static_cast<char>(hex_value(p[3]) * 16 + hex_value(p[4])));
  else
    out.assign(p);
  if (out.size() == 1) {
    const auto b = static_cast<unsigned char>(out[0]);
    const bool printable = b >= 0x20 && b <= 0x7E;
    const bool space = b == ' ' || (b >= '\t' && b <= '\r');
    if (!printable && !space) out.clear();
  }
  return out;
}

}  // namespace wm::model
