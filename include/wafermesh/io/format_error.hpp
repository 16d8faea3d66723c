#pragma once
// The error of a weight or tokenizer file that cannot be read as what it claims to be: truncated,
// a header field out of range, a count that does not fit the file, a tensor of an unsupported
// type or of the wrong shape. One line naming the file, the tensor (if any) and the problem,
// e.g.
//   model.gguf: tensor blk.3.attn_q.weight: data [4096, 70000) lies outside the file (65536 bytes)
// It is bad input from the user, so it is a UsageError (exit code 2).
#include <string>

#include "wafermesh/util/error.hpp"

namespace wm::io {

class FileFormatError : public UsageError {
 public:
  explicit FileFormatError(const std::string& what) : UsageError(what) {}
};

}  // namespace wm::io
