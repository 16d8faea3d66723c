#pragma once
// The byte-level BPE tokenizer of the LLaMA-3 family (also BitNet b1.58 2B4T's vocabulary).
//
// encode(text):
//   1. Special tokens (<|begin_of_text|>, <|eot_id|>, ...: the vocabulary's control tokens) found
//      literally in the text become their ids; the text between them is encoded as follows.
//   2. Pre-tokenisation by the LLaMA-3 pattern (pretokenize_llama3 below), matched by hand:
//        (?i:'s|'t|'re|'ve|'m|'ll|'d) | [^\r\n\p{L}\p{N}]?\p{L}+ | \p{N}{1,3}
//        | ' '?[^\s\p{L}\p{N}]+[\r\n]* | \s*[\r\n]+ | \s+(?!\S) | \s+
//      (first alternative that matches at the current position, each greedy; the case-insensitive
//      contractions fold ASCII letters only; classes: unicode_class.hpp).
//   3. Each piece's UTF-8 bytes. When the vocabulary says ignore_merges (LLaMA-3 does) and the
//      piece is a token, that token; otherwise one token per byte, then BPE: repeatedly merge the
//      adjacent pair with the lowest merge rank (the leftmost of equal ones) until no adjacent pair
//      has a merge. A heap of candidate pairs with lazy invalidation: O(n log n) per piece.
//   Example (LLaMA-3): "Hello world" -> [9906 "Hello", 1917 " world"].
//
// Tokens are written in the GPT-2 byte-to-unicode alphabet in vocabularies ("Ġworld" for
// " world"): bytes 0x21-0x7E, 0xA1-0xAC and 0xAE-0xFF stand for themselves, the other 68 bytes for
// U+0100.. in byte order (so ' ' is U+0120 'Ġ'). The tokenizer works on raw bytes throughout.
//
// decode: the bytes of the tokens, concatenated (special tokens as their text); exact, so
// decode(encode(s)) == s for every s. Streaming (start_decoding) holds back a trailing incomplete
// UTF-8 character until the token that completes it, so every piece printed is whole characters;
// bytes that can never form a character are passed through as they are.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

#include "wafermesh/model/text_tokenizer.hpp"

namespace wm::io {
class GgufFile;
}

namespace wm::model {

// Pieces of `text` by the LLaMA-3 pattern (views into text), in order; their concatenation is text.
std::vector<std::string_view> pretokenize_llama3(std::string_view text);

// The GPT-2 byte-to-unicode alphabet: the UTF-8 text standing for byte b, and back (-1 when
// `symbol` is not one of the 256).
const std::string& byte_symbol(std::uint8_t b);
int symbol_byte(char32_t symbol);

class BpeTokenizer final : public TextTokenizer {
 public:
  struct Vocab {
    std::vector<std::string> tokens;                          // (vocab) in the byte-to-unicode alphabet
    std::vector<std::pair<std::string, std::string>> merges;  // in rank order, same alphabet
    std::vector<int> specials;                                // ids matched literally in text
    int bos = -1;
    std::vector<int> ends;                                    // ids that end a generated text
    bool ignore_merges = false;
    std::string source;                                       // the file, for messages
  };

  // Throws FileFormatError (naming vocab.source) when a token is not in the alphabet, a byte has
  // no single-byte token, a merge names a token that does not exist or makes one that does not,
  // or bos is out of range.
  explicit BpeTokenizer(Vocab v);

  // A Hugging Face tokenizer.json with a BPE model and the LLaMA-3 pre-tokeniser. BOS is
  // <|begin_of_text|>, the text ends at <|end_of_text|>, <|eot_id|> or <|eom_id|> (those present).
  static std::unique_ptr<BpeTokenizer> from_tokenizer_json(const std::string& path);
  // A GGUF file's tokenizer.ggml.* keys with model "gpt2" and pre-tokeniser "llama-bpe".
  static std::unique_ptr<BpeTokenizer> from_gguf(const io::GgufFile& g);

  std::int64_t vocab_size() const override { return static_cast<std::int64_t>(bytes_.size()); }
  int bos_id() const override { return bos_; }
  std::vector<int> encode(std::string_view text, bool bos = true, bool eos = false) const override;
  bool ends_text(int token) const override;
  std::unique_ptr<TextDecoder> start_decoding() const override;

  // The raw bytes of a token.
  const std::string& token_bytes(int id) const { return bytes_.at(static_cast<std::size_t>(id)); }
  std::string decode(const std::vector<int>& ids) const;
  // Token id of raw bytes, or -1.
  int find(std::string_view bytes) const;

 private:
  void encode_piece(std::string_view piece, std::vector<int>& out) const;

  std::vector<std::string> bytes_;                  // (vocab) raw bytes of each token
  std::unordered_map<std::string, int> ids_;        // raw bytes -> lowest id
  int byte_token_[256];                             // the single-byte token of each byte
  struct Merge {
    int rank;
    int result;
  };
  std::unordered_map<std::uint64_t, Merge> merges_;  // (left id << 32 | right id) -> merge
  std::unordered_map<std::string, int> specials_;    // raw text -> id
  std::size_t special_min_ = 0, special_max_ = 0;
  bool special_first_[256] = {};                     // bytes a special token can begin with
  int bos_ = -1;
  std::vector<int> ends_;
  bool ignore_merges_ = false;
};

}  // namespace wm::model
