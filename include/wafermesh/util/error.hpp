#pragma once
// Errors that reach the user as one line. Every rank that detects a usage or configuration error
// detects the same one (inputs are identical on all ranks, and run-time limit checks are made
// collective), so every rank throws, rank 0 prints, and all exit with the same code: no hang.
#include <stdexcept>
#include <string>

namespace wm {

// Bad input from the user: options, config files, impossible meshes. Exit code 2.
class UsageError : public std::runtime_error {
 public:
  explicit UsageError(const std::string& what) : std::runtime_error(what) {}
};

// A limit of the emulated machine was exceeded (SRAM, routes) or input data is invalid
// (weight files). Exit code 3. Thrown on every rank at once.
class LimitError : public std::runtime_error {
 public:
  explicit LimitError(const std::string& what) : std::runtime_error(what) {}
};

}  // namespace wm
