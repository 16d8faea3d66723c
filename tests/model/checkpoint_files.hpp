#pragma once
// The stories260K checkpoints tests/model/write_checkpoints.py writes (the ctest fixture
// model_checkpoint_files runs it before the tests that need them), in WM_CHECKPOINT_DIR.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

namespace wm::model::testing_support {

inline std::string checkpoint_path(const std::string& name) { return std::string(WM_CHECKPOINT_DIR) + "/" + name; }

inline ::testing::AssertionResult checkpoint_present(const std::string& name) {
  if (std::filesystem::exists(checkpoint_path(name))) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "missing " << checkpoint_path(name)
                                       << ": run the ctest fixture model_checkpoint_files (write_checkpoints.py) first";
}

}  // namespace wm::model::testing_support
