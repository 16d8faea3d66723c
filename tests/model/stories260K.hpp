#pragma once
// Where the model tests find the stories260K model (weights/stories260K/), its expected outputs
// (tests/data/stories260K/) and its config. The files are required:
// a missing file is a test failure naming the path, never a skip (a skipped golden test would let
// the end-to-end check silently disappear).
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "wafermesh/model/model_config.hpp"

namespace wm::model::testing_support {

// Model files (weights/stories260K/) and expected outputs (tests/data/stories260K/, names
// beginning with "expected").
inline std::string stories_path(const std::string& file) {
  const bool expected = file.rfind("expected", 0) == 0;
  return std::string(expected ? WM_STORIES260K_DATA_DIR : WM_STORIES260K_DIR) + "/" + file;
}

// Use as ASSERT_TRUE(stories_present("stories260K.bin")).
inline ::testing::AssertionResult stories_present(const std::string& file) {
  const std::string p = stories_path(file);
  if (std::filesystem::is_regular_file(p)) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "missing " << p << ": the model tests need the repository's stories260K files "
            "(weights/stories260K/ and tests/data/stories260K/)";
}

inline std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// configs/models/stories260K.ini (so the shipped config is what is tested), with the file paths
// made absolute: the ini's paths are relative to the project root, tests run in the build tree.
inline ModelConfig stories_config() {
  ModelConfig cfg =
      load_model_config(std::string(WM_PROJECT_SOURCE_DIR) + "/configs/models/stories260K.ini");
  cfg.weights = stories_path("stories260K.bin");
  cfg.tokenizer = stories_path("tok512.bin");
  return cfg;
}

// A fresh empty directory for files a test writes.
inline std::string scratch_dir(const std::string& name) {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("wm_model_" + name + "_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir.string();
}

}  // namespace wm::model::testing_support
