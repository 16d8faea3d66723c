#pragma once
// llama2.c BPE tokenizer (file layout and rules: weights/stories260K/README.md).
//
//   file: int32 max_token_length, then per token: float32 score, int32 len, len bytes
//
// encode(text): BOS (1); for a non-empty text the token of " " (dummy prefix); one token per UTF-8
// character (a lead byte and up to 3 continuation bytes), or, when the character has no token,
// one token per byte: the token whose piece is "<0xHH>" (ids 3..258 in llama2.c vocabularies);
// then repeatedly merge the adjacent pair whose concatenation is a token with the highest score
// (first pair on equal scores; a pair whose token scores <= -1e10 or NaN never merges) until no
// pair's concatenation is a token.
//   Example (tok512): "Once upon a time" -> [1, 403 " Once", 407 " upon", 261 " a", 378 " time"].
// encode() finds the merges with a priority queue (O(n log n) for n characters); encode_ref() is
// the plain quadratic loop of llama2.c (rescan every pair after every merge), kept as the
// reference the tests compare it with. Both give the same tokens for every text.
// A character without a token whose bytes have no "<0xHH>" token either (a vocabulary without
// byte tokens) is a UsageError naming the byte offset, the bytes and the tokenizer file: every id
// returned lies in [0, vocab).
//
// decode(prev, token): the bytes the reference prints for `token` following `prev`: one leading
// space is stripped when prev is BOS; a piece "<0xHH>" is the raw byte HH; a piece that is a single
// byte which is neither printable nor whitespace (C locale: 0x20..0x7E, \t \n \v \f \r) is not
// printed (empty result). So UTF-8 characters that fell back to byte tokens decode to nothing,
// exactly as in llama2.c.
//
// Two deliberate fine points: the <0xHH> form must be complete (six characters); llama2.c's sscanf
// also accepts a truncated one, which no vocabulary holds. If two tokens share a string, lookups
// return the lower id (llama2.c's bsearch returns either).
#include <cstdint>
#include <string>
#include <string_view>
#include <array>
#include <functional>
#include <unordered_map>
#include <vector>

#include "wafermesh/model/text_tokenizer.hpp"

namespace wm::model {

class Tokenizer final : public TextTokenizer {
 public:
  static constexpr int kBos = 1;
  static constexpr int kEos = 2;

  // Reads a llama2.c tokenizer file holding exactly `vocab` tokens (at least 3: <unk>, BOS, EOS).
  // Throws UsageError (one line naming the file) when it cannot be opened, is truncated or too
  // long, or holds an impossible token length.
  Tokenizer(const std::string& path, std::int64_t vocab);
  // The same vocabulary given in memory (a GGUF file's SentencePiece tokens, spaces as ' ').
  Tokenizer(std::vector<std::string> pieces, std::vector<float> scores);

  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(pieces_.size()); }
  const std::string& piece(int token) const { return pieces_.at(static_cast<std::size_t>(token)); }
  float score(int token) const { return scores_.at(static_cast<std::size_t>(token)); }
  // Whether every byte 0x00..0xFF has its "<0xHH>" token (so that any text can be encoded).
  bool has_byte_tokens() const;

  std::vector<int> encode(std::string_view text, bool bos = true, bool eos = false) const override;
  std::vector<int> encode_ref(std::string_view text, bool bos = true, bool eos = false) const;
  std::string decode(int prev_token, int token) const;

  // TextTokenizer: BOS starts a text, and the model ends it by producing BOS again; decoding is
  // decode(prev, token), nothing held back.
  int bos_id() const override { return kBos; }
  bool ends_text(int token) const override { return token == kBos; }
  std::unique_ptr<TextDecoder> start_decoding() const override;

 private:
  struct Hash {
    using is_transparent = void;
    std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  int lookup(std::string_view s) const;  // -1 when s is not a token
  void find_byte_tokens();
  // The merged token of a followed by b, or -1 when a + b is not a token or its score never wins
  // (<= -1e10 or NaN, as in llama2.c).
  int merge_of(int a, int b, std::string& scratch) const;
  // BOS, the dummy prefix and one token per character (or per byte): the tokens before merging.
  std::vector<int> characters(std::string_view text, bool bos) const;

  std::string path_;
  std::vector<std::string> pieces_;  // (vocab)
  std::vector<float> scores_;        // (vocab)
  std::unordered_map<std::string, int, Hash, std::equal_to<>> ids_;
  std::array<int, 256> byte_token_{};  // the "<0xHH>" token of each byte, -1 when absent
  std::size_t max_len_ = 0;            // the longest piece
};

}  // namespace wm::model
