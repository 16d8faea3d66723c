#pragma once
// What the generation loop needs from a tokenizer. Two kinds implement it: the llama2.c
// SentencePiece-style `Tokenizer` (tokenizer.hpp; stories260K, LLaMA-2-style vocabularies) and the
// byte-level `BpeTokenizer` (bpe_tokenizer.hpp; LLaMA-3 and BitNet b1.58 2B4T vocabularies).
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace wm::model {

// Turns the tokens of one generated text into bytes to print, token by token. Stateful: a kind
// may hold bytes back (an incomplete UTF-8 character) until a later token completes them.
class TextDecoder {
 public:
  virtual ~TextDecoder() = default;
  // The bytes to print for `token`, which follows `prev` in the text.
  virtual std::string next(int prev, int token) = 0;
  // Bytes still held back at the end of the text.
  virtual std::string finish() = 0;
};

class TextTokenizer {
 public:
  virtual ~TextTokenizer() = default;
  virtual std::int64_t vocab_size() const = 0;
  // The token that starts every text.
  virtual int bos_id() const = 0;
  virtual std::vector<int> encode(std::string_view text, bool bos = true, bool eos = false) const = 0;
  // True when generating `token` ends the text.
  virtual bool ends_text(int token) const = 0;
  virtual std::unique_ptr<TextDecoder> start_decoding() const = 0;
};

}  // namespace wm::model
