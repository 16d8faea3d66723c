#pragma once
// Errors that reach the user as one line. Every rank that detects a usage or configuration error
// detects the same one (inputs are identical on all ranks, and run-time limit checks are made
// collective), so every rank throws, rank 0 prints, and all exit with the same code: no hang.
#include <stdexcept>
#include <string>

namespace wm {

// Bad input: options, config, model and study files, impossible meshes, broken or mismatched
// weight and tokenizer files, prompts the tokenizer cannot spell or that do not fit, output
// paths that cannot take a results file. Exit code 2.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& what) : std::runtime_error(what) {}
};

// A limit of the emulated machine was exceeded: a PE's SRAM, its route table, a model that no
// region of the mesh holds. Exit code 3 (and a sweep records the point as `limit: ...`). Thrown
// on every rank at once. Never for broken input files: those are UsageErrors.
class LimitError : public std::runtime_error {
 public:
  explicit LimitError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace wm
