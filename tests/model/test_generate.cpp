// The generation loop with a scripted stand-in for the transformer: which (token, pos) pairs it is
// asked for, when it stops, what it prints. The real model's output is test_reference_transformer.
#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

#include "stories260K.hpp"
#include "wafermesh/model/generate.hpp"
#include "wafermesh/util/error.hpp"

namespace wm::model {
namespace {

using namespace testing_support;

// Predicts script[pos] (one-hot logits) and records every call.
struct ScriptedModel {
  explicit ScriptedModel(std::vector<int> s) : script(std::move(s)) {}
  std::vector<int> script;
  std::vector<std::pair<int, int>> calls;  // (token, pos)
  std::vector<float> logits = std::vector<float>(512);
  ForwardFn fn() {
    return [this](int token, int pos) {
      calls.emplace_back(token, pos);
      std::fill(logits.begin(), logits.end(), 0.0f);
      logits[static_cast<std::size_t>(script.at(static_cast<std::size_t>(pos)))] = 1.0f;
      return logits.data();
    };
  }
};

class Generate : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(stories_present("tok512.bin"));
    tok_ = std::make_unique<Tokenizer>(stories_path("tok512.bin"), 512);
  }
  std::unique_ptr<Tokenizer> tok_;
  Sampler greedy_{512, 0.0f, 0.9f, 1};
};

// 403 " Once", 407 " upon", 13 "<0x0A>", then BOS ends the sequence.
TEST_F(Generate, StopsAtBosAndPrintsWithTheDecodingRules) {
  ScriptedModel m({403, 407, 13, 1, 378, 378});
  GenerateStats st;
  const std::string out = generate_text(m.fn(), tok_.get(), greedy_, "", 6, 512, &st);
  EXPECT_EQ(out, "Once upon\n\n");
  EXPECT_EQ(m.calls, (std::vector<std::pair<int, int>>{{1, 0}, {403, 1}, {407, 2}, {13, 3}}));
  EXPECT_TRUE(st.stopped_at_bos);
  EXPECT_EQ(st.positions, 4);
  EXPECT_EQ(st.sampled_tokens, 4);
  EXPECT_EQ(st.prompt_tokens, 1);
}

// steps counts positions: 2 steps from BOS print 2 tokens.
TEST_F(Generate, StepsCountPositions) {
  ScriptedModel m({403, 407, 378});
  const std::string out = generate_text(m.fn(), tok_.get(), greedy_, "", 2, 512);
  EXPECT_EQ(out, "Once upon\n");
  EXPECT_EQ(m.calls.size(), 2u);
}

// Inside the prompt the next token is the prompt's, whatever the model says; the prompt counts
// towards steps and is echoed.
TEST_F(Generate, PromptIsForcedEchoedAndCounted) {
  ScriptedModel m({378, 378, 378, 378, 378, 378});  // always " time"
  GenerateStats st;
  const std::string out = generate_text(m.fn(), tok_.get(), greedy_, "Once upon", 5, 512, &st);
  EXPECT_EQ(out, "Once upon time time time\n");
  EXPECT_EQ(m.calls,
            (std::vector<std::pair<int, int>>{{1, 0}, {403, 1}, {407, 2}, {378, 3}, {378, 4}}));
  EXPECT_EQ(st.prompt_tokens, 3);
  EXPECT_EQ(st.sampled_tokens, 3);
  EXPECT_FALSE(st.stopped_at_bos);
}

// With a prefill function the prompt's positions 0 .. m-1 (m = min(prompt, steps)) are one call
// that returns the logits of position m-1; the output is the loop's without it, and forward() is
// called only for the positions after the prompt.
TEST_F(Generate, PrefillReplacesThePromptsForwardCalls) {
  ScriptedModel m({378, 378, 378, 378, 378, 378});
  std::vector<std::vector<int>> prefills;
  const PrefillFn prefill = [&](const std::vector<int>& tokens) {
    prefills.push_back(tokens);
    return m.fn()(tokens.back(), int(tokens.size()) - 1);  // the logits at position m-1
  };
  m.calls.clear();
  GenerateStats st;
  const std::string out = generate_text(m.fn(), tok_.get(), greedy_, "Once upon", 5, 512, &st, &prefill);
  EXPECT_EQ(out, "Once upon time time time\n");  // as without prefill (PromptIsForcedEchoedAndCounted)
  EXPECT_EQ(prefills, (std::vector<std::vector<int>>{{1, 403, 407}}));
  // The scripted call inside prefill (position 2), then forward() for positions 3 and 4 only.
  EXPECT_EQ(m.calls, (std::vector<std::pair<int, int>>{{407, 2}, {378, 3}, {378, 4}}));
  EXPECT_EQ(st.positions, 5);
  EXPECT_EQ(st.sampled_tokens, 3);
  // As many steps as prompt tokens: the whole prompt is prefilled and one token is sampled.
  prefills.clear();
  EXPECT_EQ(generate_text(m.fn(), tok_.get(), greedy_, "Once upon", 3, 512, nullptr, &prefill), "Once upon time\n");
  EXPECT_EQ(prefills, (std::vector<std::vector<int>>{{1, 403, 407}}));
  // A one-token prompt (BOS) never calls prefill.
  prefills.clear();
  (void)generate_text(m.fn(), tok_.get(), greedy_, "", 2, 512, nullptr, &prefill);
  EXPECT_TRUE(prefills.empty());
}

// A prompt is never cut: more prompt tokens than steps (or than the context) is an error naming
// both numbers, raised before any forward() call.
TEST_F(Generate, PromptLongerThanStepsOrContextIsAUsageError) {
  ScriptedModel m({378, 378, 378});
  try {
    generate_text(m.fn(), tok_.get(), greedy_, "Once upon", 2, 512);  // 3 tokens: BOS " Once" " upon"
    ADD_FAILURE() << "no error for a 3-token prompt in 2 steps";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "generate: the prompt is 3 tokens (BOS included), more than steps = 2 positions (the prompt counts "
              "towards them: raise --steps, at most 512)");
  }
  try {
    generate_text(m.fn(), tok_.get(), greedy_, "Once upon a time", 2, 4);  // 5 tokens, context 4
    ADD_FAILURE() << "no error for a 5-token prompt in a 4-token context";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "generate: the prompt is 5 tokens (BOS included), more than the model's context seq_len = 4");
  }
  EXPECT_TRUE(m.calls.empty());
  EXPECT_EQ(encode_prompt(tok_.get(), "Once upon", 3, 512), (std::vector<int>{1, 403, 407}));
}

TEST_F(Generate, WithoutTokenizerPrintsIds) {
  ScriptedModel m({5, 7, 1});
  EXPECT_EQ(generate_text(m.fn(), nullptr, greedy_, "", 3, 512), "5 7 \n");
  EXPECT_THROW(generate_text(m.fn(), nullptr, greedy_, "hi", 3, 512), UsageError);
}

TEST_F(Generate, StepsOutsideTheContextAreAUsageError) {
  ScriptedModel m({5});
  EXPECT_THROW(generate_text(m.fn(), tok_.get(), greedy_, "", 0, 512), UsageError);
  try {
    generate_text(m.fn(), tok_.get(), greedy_, "", 513, 512);
    ADD_FAILURE() << "no error for 513 steps";
  } catch (const UsageError& e) {
    EXPECT_EQ(std::string(e.what()),
              "generate: steps = 513 must be in [1, 512] (positions, prompt included; model.seq_len = 512)");
  }
  EXPECT_TRUE(m.calls.empty());
}

}  // namespace
}  // namespace wm::model
