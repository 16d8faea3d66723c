#include "wafermesh/model/bpe_tokenizer.hpp"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <queue>

#include "wafermesh/io/format_error.hpp"
#include "wafermesh/io/gguf.hpp"
#include "wafermesh/io/json.hpp"
#include "wafermesh/model/unicode_class.hpp"

namespace wm::model {

namespace {

// ---- the pre-tokeniser

enum : std::uint8_t { kOther = 0, kLetter = 1, kNumber = 2, kSpace = 3 };

struct Char {
  std::size_t at, len;
  std::uint8_t cls;
  bool crlf;     // '\r' or '\n'
  char ascii;    // the character when ASCII, else 0
};

std::vector<Char> classify(std::string_view text) {
  std::vector<Char> cs;  // (characters of text)
  cs.reserve(text.size());
  for (std::size_t i = 0; i < text.size();) {
    const Utf8Char u = utf8_at(text, i);
    Char c{i, u.len, kOther, false, 0};
    if (u.cp < 0x80) c.ascii = static_cast<char>(u.cp);
    if (u.cp != kInvalidCodePoint) {
      if (is_letter(u.cp)) c.cls = kLetter;
      else if (is_number(u.cp)) c.cls = kNumber;
      else if (is_space(u.cp)) c.cls = kSpace;
    }
    c.crlf = u.cp == '\r' || u.cp == '\n';
    cs.push_back(c);
    i += u.len;
  }
  return cs;
}

// Length (in characters) of the match of the LLaMA-3 pattern at character i (always >= 1).
std::size_t match_at(const std::vector<Char>& c, std::size_t i) {
  const std::size_t n = c.size();
  auto lower = [&](std::size_t k) -> char { return k < n && c[k].ascii ? char(c[k].ascii | 0x20) : 0; };
  // (?i:'s|'t|'re|'ve|'m|'ll|'d)
  if (c[i].ascii == '\'') {
    const char a = lower(i + 1), b = lower(i + 2);
    if (a == 's' || a == 't' || a == 'm' || a == 'd') return 2;
    if ((a == 'r' && b == 'e') || (a == 'v' && b == 'e') || (a == 'l' && b == 'l')) return 3;
  }
  auto letters_from = [&](std::size_t k) {
    while (k < n && c[k].cls == kLetter) ++k;
    return k;
  };
  // [^\r\n\p{L}\p{N}]?\p{L}+
  if (c[i].cls == kLetter) return letters_from(i) - i;
  if (!c[i].crlf && c[i].cls != kNumber && i + 1 < n && c[i + 1].cls == kLetter) return letters_from(i + 1) - i;
  // \p{N}{1,3}
  if (c[i].cls == kNumber) {
    std::size_t k = i;
    while (k < n && k < i + 3 && c[k].cls == kNumber) ++k;
    return k - i;
  }
  // ' '?[^\s\p{L}\p{N}]+[\r\n]*
  {
    std::size_t k = i;
    if (c[k].ascii == ' ' && k + 1 < n && c[k + 1].cls == kOther) ++k;
    if (c[k].cls == kOther) {
      while (k < n && c[k].cls == kOther) ++k;
      while (k < n && c[k].crlf) ++k;
      return k - i;
    }
  }
  // Whitespace: c[i] is a space here (every character is a letter, number, space or other).
  std::size_t j = i;
  while (j < n && c[j].cls == kSpace) ++j;  // the maximal run [i, j)
  // \s*[\r\n]+ : up to and including the run's last CR/LF
  for (std::size_t k = j; k > i; --k)
    if (c[k - 1].crlf) return k - i;
  // \s+(?!\S) : the whole run at the end of the text, else all but its last character
  if (j == n) return j - i;
  if (j - i >= 2) return j - 1 - i;
  // \s+
  return j - i;
}

// ---- the byte-to-unicode alphabet

struct Alphabet {
  std::string symbol[256];
  std::unordered_map<char32_t, int> byte_of;
  Alphabet() {
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
      const bool self = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
      const char32_t cp = self ? char32_t(b) : char32_t(256 + extra++);
      std::string& s = symbol[b];
      if (cp < 0x80) {
        s.push_back(static_cast<char>(cp));
      } else {
        s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
        s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
      }
      byte_of[cp] = b;
    }
  }
};
const Alphabet& alphabet() {
  static const Alphabet a;
  return a;
}

// A vocabulary string in the alphabet -> raw bytes; false when a character is not in the alphabet.
bool unmap(std::string_view s, std::string& out) {
  out.clear();
  for (std::size_t i = 0; i < s.size();) {
    const Utf8Char u = utf8_at(s, i);
    const int b = u.cp == kInvalidCodePoint ? -1 : symbol_byte(u.cp);
    if (b < 0) return false;
    out.push_back(static_cast<char>(b));
    i += u.len;
  }
  return true;
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw io::FileFormatError(path + ": cannot open tokenizer");
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The LLaMA-3 pattern as tokenizer.json writes it.
constexpr std::string_view kLlama3Pattern =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

// True when a tokenizer.json pre_tokenizer is the LLaMA-3 one (a Split on kLlama3Pattern followed
// by a ByteLevel without its own regex).
bool is_llama3_pretokenizer(const io::Json& p) {
  if (!p.is_object()) return false;
  const io::Json* type = p.find("type");
  if (!type || !type->is_string() || type->as_string() != "Sequence") return false;
  const io::Json* seq = p.find("pretokenizers");
  if (!seq || !seq->is_array()) return false;
  bool split = false;
  for (const io::Json& s : seq->items()) {
    const io::Json* t = s.find("type");
    if (!t || !t->is_string()) return false;
    if (t->as_string() == "Split") {
      const io::Json* pat = s.find("pattern");
      const io::Json* rx = pat ? pat->find("Regex") : nullptr;
      if (!rx || !rx->is_string() || rx->as_string() != kLlama3Pattern) return false;
      split = true;
    } else if (t->as_string() == "ByteLevel") {
      const io::Json* use = s.find("use_regex");
      if (use && use->is_bool() && use->as_bool()) return false;
    } else {
      return false;
    }
  }
  return split;
}

}  // namespace

std::vector<std::string_view> pretokenize_llama3(std::string_view text) {
  const std::vector<Char> c = classify(text);
  std::vector<std::string_view> out;
  for (std::size_t i = 0; i < c.size();) {
    const std::size_t k = match_at(c, i);
    const std::size_t end = i + k < c.size() ? c[i + k].at : text.size();
    out.push_back(text.substr(c[i].at, end - c[i].at));
    i += k;
  }
  return out;
}

const std::string& byte_symbol(std::uint8_t b) { return alphabet().symbol[b]; }

int symbol_byte(char32_t symbol) {
  const auto& m = alphabet().byte_of;
  const auto it = m.find(symbol);
  return it == m.end() ? -1 : it->second;
}

BpeTokenizer::BpeTokenizer(Vocab v) {
  auto fail = [&](const std::string& why) { throw io::FileFormatError(v.source + ": " + why); };
  bytes_.resize(v.tokens.size());
  std::string raw;
  for (std::size_t i = 0; i < v.tokens.size(); ++i) {
    const bool special = std::find(v.specials.begin(), v.specials.end(), int(i)) != v.specials.end();
    if (special) {
      bytes_[i] = v.tokens[i];  // special tokens are their own text
    } else {
      if (!unmap(v.tokens[i], raw))
        fail("token " + std::to_string(i) + " \"" + v.tokens[i] + "\" is not written in the byte-level alphabet");
      bytes_[i] = raw;
    }
    if (!special) ids_.emplace(bytes_[i], static_cast<int>(i));  // keeps the lower id of duplicates
  }
  for (int b = 0; b < 256; ++b) {
    const auto it = ids_.find(std::string(1, static_cast<char>(b)));
    if (it == ids_.end()) fail("no token for the byte 0x" + std::string(1, "0123456789ABCDEF"[b >> 4]) +
                               std::string(1, "0123456789ABCDEF"[b & 15]) + " (\"" + byte_symbol(std::uint8_t(b)) + "\")");
    byte_token_[b] = it->second;
  }
  merges_.reserve(v.merges.size());
  std::string left, right;
  for (std::size_t r = 0; r < v.merges.size(); ++r) {
    const auto& [a, b] = v.merges[r];
    const std::string what = "merge " + std::to_string(r) + " \"" + a + " " + b + "\"";
    if (!unmap(a, left) || !unmap(b, right)) fail(what + " is not written in the byte-level alphabet");
    const int ia = find(left), ib = find(right), ic = find(left + right);
    if (ia < 0 || ib < 0) fail(what + " names a token that is not in the vocabulary");
    if (ic < 0) fail(what + " makes a token that is not in the vocabulary");
    const std::uint64_t key = (std::uint64_t(std::uint32_t(ia)) << 32) | std::uint32_t(ib);
    merges_.emplace(key, Merge{static_cast<int>(r), ic});  // the first (lowest) rank of a repeated pair
  }
  for (int id : v.specials) {
    if (id < 0 || id >= int(bytes_.size())) fail("special token id " + std::to_string(id) + " is out of range");
    const std::string& s = bytes_[static_cast<std::size_t>(id)];
    if (s.empty()) continue;
    specials_.emplace(s, id);
    special_first_[static_cast<unsigned char>(s[0])] = true;
    special_min_ = special_min_ ? std::min(special_min_, s.size()) : s.size();
    special_max_ = std::max(special_max_, s.size());
  }
  if (v.bos < 0 || v.bos >= int(bytes_.size()))
    fail("the begin-of-text token id " + std::to_string(v.bos) + " is out of range (vocabulary of " +
         std::to_string(bytes_.size()) + ")");
  for (int e : v.ends)
    if (e < 0 || e >= int(bytes_.size())) fail("end-of-text token id " + std::to_string(e) + " is out of range");
  bos_ = v.bos;
  ends_ = v.ends;
  ignore_merges_ = v.ignore_merges;
}

int BpeTokenizer::find(std::string_view bytes) const {
  const auto it = ids_.find(std::string(bytes));
  return it == ids_.end() ? -1 : it->second;
}

bool BpeTokenizer::ends_text(int token) const { return std::find(ends_.begin(), ends_.end(), token) != ends_.end(); }

void BpeTokenizer::encode_piece(std::string_view piece, std::vector<int>& out) const {
  if (ignore_merges_) {
    const int id = find(piece);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  // Symbols as a doubly linked list over the piece's bytes; a heap of candidate merges ordered
  // by (rank, position). An entry is stale when its left symbol was merged away or its right
  // neighbour changed since it was pushed.
  const int n = static_cast<int>(piece.size());
  std::vector<int> id(n), prev(n), next(n);  // (bytes of piece)
  std::vector<char> alive(n, 1);
  for (int i = 0; i < n; ++i) {
    id[i] = byte_token_[static_cast<unsigned char>(piece[i])];
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  struct Cand {
    int rank, left, left_id, right_id;
    bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
  };
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> heap;
  auto push = [&](int l) {
    const int r = next[l];
    if (r < 0) return;
    const auto it = merges_.find((std::uint64_t(std::uint32_t(id[l])) << 32) | std::uint32_t(id[r]));
    if (it != merges_.end()) heap.push({it->second.rank, l, id[l], id[r]});
  };
  for (int i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    const Cand c = heap.top();
    heap.pop();
    const int l = c.left;
    if (!alive[l] || id[l] != c.left_id) continue;
    const int r = next[l];
    if (r < 0 || id[r] != c.right_id) continue;
    id[l] = merges_.at((std::uint64_t(std::uint32_t(c.left_id)) << 32) | std::uint32_t(c.right_id)).result;
    alive[r] = 0;
    next[l] = next[r];
    if (next[r] >= 0) prev[next[r]] = l;
    if (prev[l] >= 0) push(prev[l]);
    push(l);
  }
  for (int i = 0; i >= 0; i = next[i]) out.push_back(id[i]);
}

std::vector<int> BpeTokenizer::encode(std::string_view text, bool bos, bool eos) const {
  std::vector<int> out;
  if (bos) out.push_back(bos_);
  auto plain = [&](std::string_view part) {
    for (std::string_view piece : pretokenize_llama3(part)) encode_piece(piece, out);
  };
  std::size_t start = 0;
  for (std::size_t i = 0; i < text.size() && !specials_.empty();) {
    int special = -1;
    std::size_t len = 0;
    if (special_first_[static_cast<unsigned char>(text[i])]) {
      for (std::size_t k = std::min(special_max_, text.size() - i); k >= special_min_ && k > 0; --k) {
        const auto it = specials_.find(std::string(text.substr(i, k)));
        if (it != specials_.end()) {
          special = it->second;
          len = k;
          break;
        }
      }
    }
    if (special < 0) {
      ++i;
      continue;
    }
    if (i > start) plain(text.substr(start, i - start));
    out.push_back(special);
    i += len;
    start = i;
  }
  if (start < text.size()) plain(text.substr(start));
  if (eos && !ends_.empty()) out.push_back(ends_.front());
  return out;
}

std::string BpeTokenizer::decode(const std::vector<int>& ids) const {
  std::string s;
  for (int id : ids) s += token_bytes(id);
  return s;
}

std::unique_ptr<TextDecoder> BpeTokenizer::start_decoding() const {
  // Holds back the bytes of a trailing character whose sequence is not complete yet.
  struct Stream final : TextDecoder {
    const BpeTokenizer& t;
    std::string pending;
    explicit Stream(const BpeTokenizer& tok) : t(tok) {}
    std::string next(int, int token) override {
      pending += t.token_bytes(token);
      // Find the start of the last character; if it is a lead byte whose sequence is still short,
      // keep it (and what follows) back.
      std::size_t keep = pending.size();
      for (std::size_t back = 1; back <= 3 && back <= pending.size(); ++back) {
        const auto c = static_cast<unsigned char>(pending[pending.size() - back]);
        if ((c & 0xC0) == 0x80) continue;  // continuation byte: look further back
        const std::size_t need = (c >= 0xF0 && c <= 0xF4) ? 4 : (c >= 0xE0 && c <= 0xEF) ? 3 : (c >= 0xC2 && c <= 0xDF) ? 2 : 1;
        if (c >= 0x80 && need > back) keep = pending.size() - back;
        break;
      }
      std::string out = pending.substr(0, keep);
      pending.erase(0, keep);
      return out;
    }
    std::string finish() override {
      std::string out;
      out.swap(pending);
      return out;
    }
  };
  return std::make_unique<Stream>(*this);
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_tokenizer_json(const std::string& path) {
  auto fail = [&](const std::string& why) -> void { throw io::FileFormatError(path + ": " + why); };
  const io::Json j = io::parse_json(read_file(path), path);
  const io::Json* model = j.is_object() ? j.find("model") : nullptr;
  if (!model || !model->is_object()) fail("no \"model\" object (not a tokenizer.json?)");
  const io::Json* type = model->find("type");
  if (!type || !type->is_string() || type->as_string() != "BPE")
    fail("model.type is " + (type && type->is_string() ? "\"" + type->as_string() + "\"" : std::string("missing")) +
         ", expected \"BPE\"");
  const io::Json* pre = j.find("pre_tokenizer");
  if (!pre || !is_llama3_pretokenizer(*pre))
    fail("pre_tokenizer is not the LLaMA-3 one (a Split on its pattern, then ByteLevel); no other is implemented");
  const io::Json* vocab = model->find("vocab");
  const io::Json* merges = model->find("merges");
  if (!vocab || !vocab->is_object()) fail("model.vocab is not an object");
  if (!merges || !merges->is_array()) fail("model.merges is not an array");
  Vocab v;
  v.source = path;
  const io::Json* im = model->find("ignore_merges");
  v.ignore_merges = im && im->is_bool() && im->as_bool();
  // ids: model.vocab, then added_tokens (which may extend it).
  std::vector<std::pair<std::int64_t, std::string>> entries;
  for (const auto& [tok, id] : vocab->members()) {
    if (!id.is_integer() || id.as_int() < 0) fail("model.vocab[\"" + tok + "\"] is not a non-negative integer");
    entries.emplace_back(id.as_int(), tok);
  }
  std::vector<std::pair<std::int64_t, std::string>> added;
  if (const io::Json* at = j.find("added_tokens"); at && at->is_array()) {
    for (const io::Json& a : at->items()) {
      const io::Json* id = a.find("id");
      const io::Json* content = a.find("content");
      if (!id || !id->is_integer() || id->as_int() < 0 || !content || !content->is_string())
        fail("an added_tokens entry lacks an integer id or a string content");
      added.emplace_back(id->as_int(), content->as_string());
    }
  }
  std::int64_t n = 0;
  for (const auto& e : entries) n = std::max(n, e.first + 1);
  for (const auto& e : added) n = std::max(n, e.first + 1);
  if (n > std::int64_t(entries.size() + added.size()))
    fail("token ids are not dense: the largest is " + std::to_string(n - 1) + " for " +
         std::to_string(entries.size() + added.size()) + " tokens");
  v.tokens.assign(static_cast<std::size_t>(n), std::string());
  std::vector<char> seen(static_cast<std::size_t>(n), 0);
  for (const auto& [id, tok] : entries) {
    v.tokens[static_cast<std::size_t>(id)] = tok;
    seen[static_cast<std::size_t>(id)] = 1;
  }
  for (const auto& [id, tok] : added) {
    v.tokens[static_cast<std::size_t>(id)] = tok;  // added tokens are matched literally, as HF does
    v.specials.push_back(static_cast<int>(id));
    seen[static_cast<std::size_t>(id)] = 1;
  }
  for (std::size_t i = 0; i < seen.size(); ++i)
    if (!seen[i]) fail("token id " + std::to_string(i) + " is missing");
  v.merges.reserve(merges->items().size());
  for (std::size_t r = 0; r < merges->items().size(); ++r) {
    const io::Json& m = merges->items()[r];
    if (m.is_string()) {
      const std::string& s = m.as_string();
      const std::size_t sp = s.find(' ');
      if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size() || s.find(' ', sp + 1) != std::string::npos)
        fail("merge " + std::to_string(r) + " \"" + s + "\" is not two tokens separated by one space");
      v.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
    } else if (m.is_array() && m.items().size() == 2 && m.items()[0].is_string() && m.items()[1].is_string()) {
      v.merges.emplace_back(m.items()[0].as_string(), m.items()[1].as_string());
    } else {
      fail("merge " + std::to_string(r) + " is neither \"a b\" nor [\"a\", \"b\"]");
    }
  }
  auto id_of = [&](const std::string& s) {
    for (int id : v.specials)
      if (v.tokens[static_cast<std::size_t>(id)] == s) return id;
    return -1;
  };
  v.bos = id_of("<|begin_of_text|>");
  if (v.bos < 0) fail("no <|begin_of_text|> token among added_tokens");
  for (const char* e : {"<|end_of_text|>", "<|eot_id|>", "<|eom_id|>"})
    if (id_of(e) >= 0) v.ends.push_back(id_of(e));
  return std::make_unique<BpeTokenizer>(std::move(v));
}

std::unique_ptr<BpeTokenizer> BpeTokenizer::from_gguf(const io::GgufFile& g) {
  auto fail = [&](const std::string& why) -> void { throw io::FileFormatError(g.path() + ": " + why); };
  const auto model = g.get_string("tokenizer.ggml.model");
  if (!model || *model != "gpt2") fail("tokenizer.ggml.model is not \"gpt2\"");
  const auto pre = g.get_string("tokenizer.ggml.pre");
  if (!pre || (*pre != "llama-bpe" && *pre != "llama3"))
    fail("key tokenizer.ggml.pre = \"" + pre.value_or("(absent)") +
         "\": only the LLaMA-3 pre-tokeniser (llama-bpe) is implemented");
  const io::GgufValue* tokens = g.find("tokenizer.ggml.tokens");
  const io::GgufValue* merges = g.find("tokenizer.ggml.merges");
  const io::GgufValue* types = g.find("tokenizer.ggml.token_type");
  if (!tokens || !tokens->is_array() || tokens->elem_type != io::GgufValueType::string ||
      std::int64_t(tokens->strings.size()) != tokens->count)
    fail("key tokenizer.ggml.tokens is missing or not an array of strings");
  if (!merges || !merges->is_array() || merges->elem_type != io::GgufValueType::string ||
      std::int64_t(merges->strings.size()) != merges->count)
    fail("key tokenizer.ggml.merges is missing or not an array of strings");
  Vocab v;
  v.source = g.path();
  v.ignore_merges = true;  // llama.cpp's llama-bpe vocabulary (LLaMA-3) ignores merges for whole-token pieces
  v.tokens = tokens->strings;
  if (types) {
    if (!types->is_array() || std::int64_t(types->numbers.size()) != tokens->count)
      fail("key tokenizer.ggml.token_type does not hold one entry per token");
    for (std::size_t i = 0; i < types->numbers.size(); ++i)
      if (types->numbers[i] == 3 || types->numbers[i] == 4) v.specials.push_back(static_cast<int>(i));  // control, user-defined
  }
  for (std::size_t r = 0; r < merges->strings.size(); ++r) {
    const std::string& s = merges->strings[r];
    const std::size_t sp = s.find(' ');
    if (sp == std::string::npos || sp == 0 || sp + 1 >= s.size())
      fail("tokenizer.ggml.merges[" + std::to_string(r) + "] \"" + s + "\" is not two tokens separated by a space");
    v.merges.emplace_back(s.substr(0, sp), s.substr(sp + 1));
  }
  const auto bos = g.get_int("tokenizer.ggml.bos_token_id");
  if (!bos) fail("key tokenizer.ggml.bos_token_id is missing");
  v.bos = static_cast<int>(std::clamp<std::int64_t>(*bos, -1, INT32_MAX));
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (const auto e = g.get_int(k)) v.ends.push_back(static_cast<int>(std::clamp<std::int64_t>(*e, -1, INT32_MAX)));
  return std::make_unique<BpeTokenizer>(std::move(v));
}

}  // namespace wm::model
