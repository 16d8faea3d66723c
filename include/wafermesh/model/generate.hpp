#pragma once
// The generation loop of llama2.c (weights/stories260K/README.md), independent of how
// logits are computed: the reference transformer and the mesh transformer plug in the same way.
//
//   tokens = encode(prompt)            (BOS first; [BOS] for an empty prompt)
//   token = tokens[0]
//   for pos = 0 .. steps-1:            steps counts positions, prompt included
//     logits = forward(token, pos)
//     next = pos + 1 < len(tokens) ? tokens[pos + 1] : sampler.sample(logits)
//     if next ends the text: stop          (llama2.c: next == BOS; LLaMA-3: an end-of-text token)
//     emit(decode(token, next)); token = next
//   emit(bytes the decoder held back); emit("\n")
//
// So at most `steps` tokens are printed, the prompt's own tokens after BOS included (the prompt is
// echoed, its first token with the dummy-prefix space stripped). Empty pieces (filtered bytes) are
// not emitted. The bytes emitted are exactly what llama2.c writes to stdout.
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "wafermesh/model/sampler.hpp"
#include "wafermesh/model/text_tokenizer.hpp"
#include "wafermesh/model/tokenizer.hpp"

namespace wm::model {

// Logits (vocab floats) for `token` at `pos`; called with pos = 0, 1, 2, ... in order. The
// pointer must stay valid until the next call.
using ForwardFn = std::function<const float*(int token, int pos)>;
// Logits of the last of `tokens` (positions 0 .. n-1) computed all at once; the next position is n.
using PrefillFn = std::function<const float*(const std::vector<int>& tokens)>;
// Receives the output bytes piece by piece, as they are produced (print and flush here).
using EmitFn = std::function<void(std::string_view bytes)>;

struct GenerateStats {
  std::int64_t positions = 0;      // forward() calls
  std::int64_t prompt_tokens = 0;  // including BOS
  std::int64_t sampled_tokens = 0; // tokens chosen by the sampler (not taken from the prompt)
  bool stopped_at_bos = false;    // the text ended (the tokenizer's end-of-text token)
};

// The prompt's tokens, BOS first ([BOS] for an empty prompt), after the checks of generate():
// steps must be in [1, seq_len] (the KV cache holds seq_len positions), and the prompt's tokens
// must fit in the steps positions (they count towards them) and in the context; otherwise a
// UsageError names both numbers (never a silent cut). With tokenizer == nullptr the prompt must be
// empty. Characters the tokenizer cannot spell are a UsageError too (Tokenizer::encode).
std::vector<int> encode_prompt(const TextTokenizer* tokenizer, std::string_view prompt, std::int64_t steps,
                               std::int64_t seq_len);

// A prompt of `n` token ids without text: `bos` first, then ids 3, 4, 5, ... (wrapping below
// `vocab`), for runs whose figures depend on the prompt's length only (timing-only runs, models
// without a tokenizer). The same checks as encode_prompt.
std::vector<int> synthetic_prompt(std::int64_t n, int bos, std::int64_t vocab, std::int64_t steps,
                                  std::int64_t seq_len);

// Runs the loop above on encode_prompt(tokenizer, prompt, steps, seq_len), or on `prompt_ids`
// when given (the prompt text is then ignored). With tokenizer ==
// nullptr (model.tokenizer empty) each token is emitted as its decimal id plus a space.
// With `prefill`, the prompt's positions run as one prefill call instead of that many forward()
// calls (when there are at least two); the output is the same loop's.
GenerateStats generate(const ForwardFn& forward, const TextTokenizer* tokenizer, Sampler& sampler,
                       std::string_view prompt, std::int64_t steps, std::int64_t seq_len,
                       const EmitFn& emit, const PrefillFn* prefill = nullptr,
                       const std::vector<int>* prompt_ids = nullptr);

// Same, collecting the output bytes.
std::string generate_text(const ForwardFn& forward, const TextTokenizer* tokenizer, Sampler& sampler,
                          std::string_view prompt, std::int64_t steps, std::int64_t seq_len,
                          GenerateStats* stats = nullptr, const PrefillFn* prefill = nullptr);

}  // namespace wm::model
