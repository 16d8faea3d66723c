#pragma once
// Which reader a model's `weights` needs, the shape a self-describing checkpoint carries, and the
// tokenizer a model's `tokenizer` names.
//
//   weights = "synthetic"                     seeded weights of the config's shape
//           = a file beginning with "GGUF"    GGUF (llama.cpp / bitnet.cpp): shape and, usually,
//             (or named *.gguf)               vocabulary in its metadata
//           = a directory holding config.json and model.safetensors or
//             model.safetensors.index.json    a Hugging Face checkpoint (tokenizer.json beside it)
//           = any other file                  a llama2.c checkpoint (the config gives the shape)
//
// GGUF architectures: "llama" (SwiGLU FFN, RoPE on adjacent pairs as llama.cpp stores it) and
// "bitnet-b1.58" / "bitnet-25" (BitNet b1.58 2B4T: gated squared-ReLU FFN with sub-norms, W_q/W_k
// stored for split-half RoPE, classifier = token embedding). Keys read (prefix = the arch):
//   block_count, embedding_length, feed_forward_length, attention.head_count,
//   attention.head_count_kv (default head_count), context_length, rope.freq_base (10000),
//   attention.layer_norm_rms_epsilon (1e-5), rope.dimension_count (must be the head size);
//   vocab = rows of token_embd.weight. Tensors: token_embd, output_norm, blk.N.{attn_norm, attn_q,
//   attn_k, attn_v, attn_output, ffn_norm, ffn_gate, ffn_down, ffn_up[, attn_sub_norm,
//   ffn_sub_norm]}.weight, each of the exact shape the metadata implies.
// Hugging Face (config.json): model_type "llama" or "bitnet"; hidden_size, intermediate_size,
//   num_hidden_layers, num_attention_heads, num_key_value_heads, vocab_size,
//   max_position_embeddings, rope_theta, rms_norm_eps, hidden_act ("silu" or "relu2"),
//   tie_word_embeddings; tensors model.embed_tokens, model.norm, model.layers.N.{input_layernorm,
//   self_attn.{q,k,v,o}_proj, post_attention_layernorm, mlp.{gate,up,down}_proj,
//   self_attn.attn_sub_norm, mlp.ffn_sub_norm}.weight; W_q/W_k always split-half RoPE. BitNet's
//   packed U8 projections come with a `<name>_scale` tensor (file_weight_source.hpp).
//
// Not supported, each one line naming the file and what: a separate classifier (output.weight /
// lm_head.weight with untied embeddings: the model layer has only the tied one), RoPE scaling
// (rope_freqs.weight, rope_scaling, a rope.scaling.type other than none or linear 1.0), other
// architectures, tensor types other than F32, F16, BF16, TQ1_0, TQ2_0, I2_S (and packed U8).
// All are FileFormatError (exit code 2).
#include <cstdint>
#include <memory>
#include <string>

#include "wafermesh/model/model_config.hpp"
#include "wafermesh/model/text_tokenizer.hpp"
#include "wafermesh/model/weights.hpp"

namespace wm::model {

enum class CheckpointFormat { synthetic, llama2c, gguf, safetensors };
CheckpointFormat checkpoint_format(const std::string& weights);
// True for gguf and safetensors: formats that carry the model's shape.
bool checkpoint_has_shape(const std::string& weights);

// The model a GGUF file or Hugging Face directory describes: its shape, ffn, ternary (BitNet
// architectures, or ternary-typed projections), weights = the path, tokenizer = the file that
// holds its vocabulary (the GGUF itself; the directory's tokenizer.json), or "" when there is none.
ModelConfig read_checkpoint_config(const std::string& weights);

// With a model config given separately (--model) and a self-describing checkpoint: every shape
// field must agree. Throws UsageError naming the field, both values and both sources.
void check_config_matches(const ModelConfig& given, const std::string& given_source, const ModelConfig& file);

// Opens a GGUF or Hugging Face checkpoint as a WeightSource for `cfg` (whose shape must be the
// file's). Throws FileFormatError.
std::unique_ptr<WeightSource> open_checkpoint(const ModelConfig& cfg);

// The tokenizer cfg.tokenizer names ("" -> nullptr): a GGUF file's vocabulary (SentencePiece
// "llama" -> Tokenizer; "gpt2" -> BpeTokenizer), a tokenizer.json (BpeTokenizer), or a llama2.c
// tokenizer file. Its size must be cfg.vocab.
std::unique_ptr<TextTokenizer> open_tokenizer(const ModelConfig& cfg);

}  // namespace wm::model
