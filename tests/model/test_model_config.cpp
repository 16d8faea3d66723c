// Model files: every required key named when missing, ranges that keep every size in 64 bits, a
// directory refused; and validate() on configs built in code.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "stories260K.hpp"
#include "wafermesh/model/model_config.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {
namespace {

using namespace testing_support;

std::string load_error(const std::string& path) {
  try {
    (void)load_model_config(path);
  } catch (const UsageError& e) {
    return e.what();
  }
  return "";
}

const char* kKeys[] = {"name", "dim", "hidden_dim", "layers", "heads", "kv_heads", "vocab", "seq_len"};

std::string model_file(const std::string& path, const std::string& skip, const std::string& extra = "") {
  std::ofstream out(path);
  out << "[model]\n";
  const char* values[] = {"m", "64", "172", "5", "8", "4", "512", "512"};
  for (int i = 0; i < 8; ++i)
    if (skip != kKeys[i]) out << kKeys[i] << " = " << values[i] << "\n";
  out << extra;
  return path;
}

TEST(ModelConfigFile, EveryRequiredKeyIsNamedWhenMissing) {
  const std::string dir = scratch_dir("model_config");
  EXPECT_EQ(load_error(model_file(dir + "/all.ini", "")), "");
  for (const char* key : kKeys) {
    const std::string path = model_file(dir + "/no_" + key + ".ini", key);
    EXPECT_EQ(load_error(path), path + ": no " + key +
                                    " = ... under [model] (a model file sets name, dim, hidden_dim, layers, heads, "
                                    "kv_heads, vocab and seq_len)");
  }
  std::filesystem::remove_all(dir);
}

TEST(ModelConfigFile, DirectoryAndOutOfRangeDimsAreRefused) {
  const std::string dir = scratch_dir("model_config_ranges");
  EXPECT_EQ(load_error(dir), "model file '" + dir + "' is a directory");
  // dim = 2^40 once passed the range check and wrapped the checkpoint's byte count.
  std::string path = model_file(dir + "/huge.ini", "dim", "dim = 1099511627776\n");
  EXPECT_EQ(load_error(path), "option --model.dim = '1099511627776' (from " + path + "): must be <= 1048576");
  path = model_file(dir + "/vocab2.ini", "vocab", "vocab = 2\n");
  EXPECT_EQ(load_error(path), "option --model.vocab = '2' (from " + path + "): must be >= 3");
  path = model_file(dir + "/zero.ini", "hidden_dim", "hidden_dim = 0\n");
  EXPECT_EQ(load_error(path), "option --model.hidden_dim = '0' (from " + path + "): must be >= 1");
  std::filesystem::remove_all(dir);
}

// Configs built in code skip the file's ranges; validate() still refuses sizes near 2^63.
TEST(ModelConfigValidate, ProductsBeyondTwoToTheSixtyAreRefusedWithTheDims) {
  ModelConfig m;
  m.dim = int64_t(1) << 31;
  m.heads = 1;
  m.kv_heads = 1;
  m.hidden_dim = 8;
  m.layers = 1 << 16;
  try {
    m.validate("code");
    ADD_FAILURE() << "no error";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()), "code: the model's tensors hold more than 2^60 values (dim 2147483648, "
                                     "hidden_dim 8, layers 65536, vocab 32, seq_len 512)");
  }
  // The largest dims the file ranges allow still validate.
  ModelConfig big;
  big.dim = ModelConfig::kMaxDim;
  big.hidden_dim = ModelConfig::kMaxHiddenDim;
  big.layers = 64;
  big.heads = 64;
  big.kv_heads = 8;
  big.vocab = ModelConfig::kMaxVocab;
  big.seq_len = ModelConfig::kMaxSeqLen;
  EXPECT_NO_THROW(big.validate("code"));
  EXPECT_NO_THROW(stories_config().validate("stories"));
}

}  // namespace
}  // namespace wm::model
