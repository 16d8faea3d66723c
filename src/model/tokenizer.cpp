#include "wafermesh/model/tokenizer.hpp"

#include <algorithm>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <utility>
#include <queue>

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
  auto fail = [&](const std::string& why) { throw UsageError(path + ": " + why); };
  path_ = path;
  if (vocab < 3) fail("model.vocab = " + std::to_string(vocab) + ": a llama2.c vocabulary has at least 3 tokens (<unk>, BOS, EOS)");
  // A directory opens fine and then reads as empty, a FIFO blocks the open: say what it is instead.
  std::error_code ec;
  const auto st = std::filesystem::status(path, ec);
  if (std::filesystem::exists(st) && !std::filesystem::is_regular_file(st)) fail("cannot open tokenizer: not a regular file");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(std::string("cannot open tokenizer: ") + std::strerror(errno));
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
    max_len_ = std::max(max_len_, static_cast<std::size_t>(len));
  }
  if (at != size)
    fail("tokenizer has " + std::to_string(size) + " bytes, expected " + std::to_string(at) + " for " +
         std::to_string(vocab) + " tokens (model.vocab)");
  find_byte_tokens();
}

void Tokenizer::find_byte_tokens() {
  for (int b = 0; b < 256; ++b) {
    char name[8];
    std::snprintf(name, sizeof name, "<0x%02X>", b);
    byte_token_[static_cast<std::size_t>(b)] = lookup(name);
  }
}

bool Tokenizer::has_byte_tokens() const {
  for (int id : byte_token_)
    if (id < 0) return false;
  return true;
}

Tokenizer::Tokenizer(std::vector<std::string> pieces, std::vector<float> scores)
    : path_("the GGUF vocabulary"), pieces_(std::move(pieces)), scores_(std::move(scores)) {
  if (pieces_.size() < 3 || scores_.size() != pieces_.size())
    throw UsageError("a llama2.c-style vocabulary needs at least 3 tokens (<unk>, BOS, EOS) with one score each, got " +
                     std::to_string(pieces_.size()) + " tokens and " + std::to_string(scores_.size()) + " scores");
  for (std::size_t i = 0; i < pieces_.size(); ++i) {
    ids_.emplace(pieces_[i], static_cast<int>(i));  // keeps the lower id of duplicates
    max_len_ = std::max(max_len_, pieces_[i].size());
  }
  find_byte_tokens();
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
  const auto it = ids_.find(s);
  return it == ids_.end() ? -1 : it->second;
}

int Tokenizer::merge_of(int a, int b, std::string& scratch) const {
  const std::string& pa = pieces_[static_cast<std::size_t>(a)];
  const std::string& pb = pieces_[static_cast<std::size_t>(b)];
  if (pa.size() + pb.size() > max_len_) return -1;  // longer than every token
  scratch.assign(pa);
  scratch.append(pb);
  const int id = lookup(scratch);
  // llama2.c starts its search for the best score at -1e10 and takes only a greater one.
  return id >= 0 && scores_[static_cast<std::size_t>(id)] > -1e10f ? id : -1;
}

std::vector<int> Tokenizer::characters(std::string_view text, bool bos) const {
  std::vector<int> tokens;  // (<= 2 + text bytes)
  tokens.reserve(text.size() + 2);
  if (bos) tokens.push_back(kBos);
  if (!text.empty()) {
    const int space = lookup(" ");
    if (space >= 0) tokens.push_back(space);  // llama2.c pushes it unconditionally; every real vocab has it
  }
  // One token per UTF-8 character: a character is a non-continuation byte plus the continuation
  // bytes (10xxxxxx) after it, at most 4 bytes.
  std::size_t start = 0, len = 0;
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if ((c & 0xC0) != 0x80) start = i, len = 0;
    ++len;
    const bool next_continues =
        i + 1 < text.size() && (static_cast<unsigned char>(text[i + 1]) & 0xC0) == 0x80;
    if (next_continues && len < 4) continue;
    const std::string_view ch = text.substr(start, len);
    const int id = lookup(ch);
    if (id >= 0) {
      tokens.push_back(id);
    } else {
      for (std::size_t k = 0; k < ch.size(); ++k) {  // byte fallback: the <0xHH> tokens
        const int b = byte_token_[static_cast<unsigned char>(ch[k])];
        if (b < 0) {
          std::string bytes;
          for (unsigned char x : ch) {
            char h[4];
            std::snprintf(h, sizeof h, "%s%02X", bytes.empty() ? "" : " ", x);
            bytes += h;
          }
          throw UsageError("prompt: the character at byte " + std::to_string(start) + " (bytes " + bytes +
                           ") has no token in " + path_ + ", and the vocabulary has no byte token <0x" +
                           bytes.substr(3 * k, 2) + "> to spell it");
        }
        tokens.push_back(b);
      }
    }
    start = i + 1, len = 0;
  }
  return tokens;
}

std::vector<int> Tokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int> tokens = characters(text, bos);
  // The merges of encode_ref in the same order, found with a priority queue: the symbols form a
  // linked list (a merged symbol keeps its left part's slot, so slot order is text order); every
  // adjacent pair that can merge is queued with its score; the best is popped (ties: the lower
  // slot, i.e. the first pair, as encode_ref). A queued pair whose symbols changed since is stale
  // (their generation counters moved) and skipped. Each merge queues at most two new pairs.
  const int n = static_cast<int>(tokens.size());
  struct Symbol {
    int id, prev, next;
    unsigned gen;  // bumped when the symbol changes or disappears
  };
  std::vector<Symbol> sym(static_cast<std::size_t>(n));  // (n) slot i starts as character i
  for (int i = 0; i < n; ++i)
    sym[static_cast<std::size_t>(i)] = {tokens[static_cast<std::size_t>(i)], i - 1, i + 1 < n ? i + 1 : -1, 0};
  struct Pair {
    float score;
    int left, right, id;
    unsigned left_gen, right_gen;
  };
  auto worse = [](const Pair& a, const Pair& b) {
    return a.score < b.score || (a.score == b.score && a.left > b.left);
  };
  std::priority_queue<Pair, std::vector<Pair>, decltype(worse)> queue(worse);
  std::string scratch;
  auto offer = [&](int l, int r) {
    if (l < 0 || r < 0) return;
    const Symbol& a = sym[static_cast<std::size_t>(l)];
    const Symbol& b = sym[static_cast<std::size_t>(r)];
    const int id = merge_of(a.id, b.id, scratch);
    if (id >= 0) queue.push({scores_[static_cast<std::size_t>(id)], l, r, id, a.gen, b.gen});
  };
  for (int i = 0; i + 1 < n; ++i) offer(i, i + 1);
  while (!queue.empty()) {
    const Pair p = queue.top();
    queue.pop();
    Symbol& a = sym[static_cast<std::size_t>(p.left)];
    Symbol& b = sym[static_cast<std::size_t>(p.right)];
    if (a.gen != p.left_gen || b.gen != p.right_gen) continue;  // stale
    a.id = p.id;
    ++a.gen;
    ++b.gen;
    a.next = b.next;
    if (b.next >= 0) sym[static_cast<std::size_t>(b.next)].prev = p.left;
    offer(a.prev, p.left);
    offer(p.left, a.next);
  }
  std::vector<int> out;
  out.reserve(static_cast<std::size_t>(n) + 1);
  for (int i = n > 0 ? 0 : -1; i >= 0; i = sym[static_cast<std::size_t>(i)].next)  // slot 0 never merges away
    out.push_back(sym[static_cast<std::size_t>(i)].id);
  if (eos) out.push_back(kEos);
  return out;
}

std::vector<int> Tokenizer::encode_ref(std::string_view text, bool bos, bool eos) const {
  std::vector<int> tokens = characters(text, bos);
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
