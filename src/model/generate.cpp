#include "wafermesh/model/generate.hpp"

#include <algorithm>
#include <stdexcept>
#include <string>
#include <vector>

#include "wafermesh/util/error.hpp"

namespace wm::model {

namespace {

void check_steps(std::int64_t steps, std::int64_t seq_len) {
  if (steps < 1 || steps > seq_len)
    throw UsageError("generate: steps = " + std::to_string(steps) +
                     " must be in [1, " + std::to_string(seq_len) +
                     "] (positions, prompt included; model.seq_len = " + std::to_string(seq_len) + ")");
}

void check_prompt_length(std::int64_t n, std::int64_t steps, std::int64_t seq_len) {
  if (n > seq_len)
    throw UsageError("generate: the prompt is " + std::to_string(n) +
                     " tokens (BOS included), more than the model's context seq_len = " + std::to_string(seq_len));
  if (n > steps)
    throw UsageError("generate: the prompt is " + std::to_string(n) + " tokens (BOS included), more than steps = " +
                     std::to_string(steps) + " positions (the prompt counts towards them: raise --steps, at most " +
                     std::to_string(seq_len) + ")");
}

}  // namespace

std::vector<int> encode_prompt(const TextTokenizer* tokenizer, std::string_view prompt, std::int64_t steps,
                               std::int64_t seq_len) {
  check_steps(steps, seq_len);
  if (!tokenizer) {
    if (!prompt.empty())
      throw UsageError("generate: a prompt needs a tokenizer, and model.tokenizer is empty");
    return {Tokenizer::kBos};
  }
  std::vector<int> tokens = tokenizer->encode(prompt, /*bos=*/true, /*eos=*/false);
  check_prompt_length(static_cast<std::int64_t>(tokens.size()), steps, seq_len);
  return tokens;
}

std::vector<int> synthetic_prompt(std::int64_t n, int bos, std::int64_t vocab, std::int64_t steps,
                                  std::int64_t seq_len) {
  check_steps(steps, seq_len);
  if (n < 1) throw UsageError("generate: a prompt of " + std::to_string(n) + " tokens: must be >= 1 (BOS)");
  if (vocab < 4) throw UsageError("generate: a synthetic prompt needs a vocabulary of at least 4 tokens");
  check_prompt_length(n, steps, seq_len);
  std::vector<int> tokens(static_cast<std::size_t>(n));
  tokens[0] = bos;
  for (std::size_t i = 1; i < tokens.size(); ++i) tokens[i] = int(3 + std::int64_t(i - 1) % (vocab - 3));
  return tokens;
}

GenerateStats generate(const ForwardFn& forward, const TextTokenizer* tokenizer, Sampler& sampler,
                       std::string_view prompt, std::int64_t steps, std::int64_t seq_len,
                       const EmitFn& emit, const PrefillFn* prefill, const std::vector<int>* prompt_ids) {
  // (prompt tokens) BOS first
  const std::vector<int> tokens = prompt_ids ? *prompt_ids : encode_prompt(tokenizer, prompt, steps, seq_len);
  if (tokens.empty()) throw std::logic_error("generate: an empty prompt (BOS missing)");

  const std::unique_ptr<TextDecoder> decoder = tokenizer ? tokenizer->start_decoding() : nullptr;
  GenerateStats stats;
  stats.prompt_tokens = static_cast<std::int64_t>(tokens.size());
  int token = tokens[0];
  // Prefilled positions: 0 .. m-1 in one call; the loop still walks them to emit the prompt.
  const std::int64_t m = prefill ? stats.prompt_tokens : 0;
  const float* prefilled = m > 1 ? (*prefill)(std::vector<int>(tokens.begin(), tokens.begin() + m)) : nullptr;
  for (std::int64_t pos = 0; pos < steps; ++pos) {
    const float* logits = nullptr;
    if (prefilled && pos < m - 1) {
      // inside the prefilled prompt: the next token is forced, no logits needed
    } else if (prefilled && pos == m - 1) {
      logits = prefilled;
    } else {
      logits = forward(token, static_cast<int>(pos));
    }
    ++stats.positions;
    int next;
    if (pos + 1 < stats.prompt_tokens) {
      next = tokens[static_cast<std::size_t>(pos + 1)];  // still inside the prompt: force it
    } else {
      next = sampler.sample(logits);
      ++stats.sampled_tokens;
    }
    if (tokenizer ? tokenizer->ends_text(next) : next == Tokenizer::kBos) {  // the model ends the text
      stats.stopped_at_bos = true;
      break;
    }
    const std::string piece = decoder ? decoder->next(token, next) : std::to_string(next) + " ";
    if (!piece.empty()) emit(piece);
    token = next;
  }
  if (decoder) {
    const std::string rest = decoder->finish();
    if (!rest.empty()) emit(rest);
  }
  emit("\n");
  return stats;
}

std::string generate_text(const ForwardFn& forward, const TextTokenizer* tokenizer, Sampler& sampler,
                          std::string_view prompt, std::int64_t steps, std::int64_t seq_len,
                          GenerateStats* stats, const PrefillFn* prefill) {
  std::string out;
  const GenerateStats s = generate(forward, tokenizer, sampler, prompt, steps, seq_len,
                                   [&](std::string_view bytes) { out.append(bytes); }, prefill);
  if (stats) *stats = s;
  return out;
}

}  // namespace wm::model
