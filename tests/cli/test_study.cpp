// Study files for `wafermesh sweep`: parsing, the cross product's order and arguments, errors;
// the progress line's duration format.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <string>

#include "wafermesh/cli/study.hpp"
#include "wafermesh/io/progress.hpp"
#include "wafermesh/util/error.hpp"

namespace {

std::string write(const std::string& name, const std::string& text) {
  const std::string path = testing::TempDir() + name;
  std::ofstream(path) << text;
  return path;
}

using wm::cli::expand_study;
using wm::cli::read_study;

TEST(Study, CrossProductInFileOrderRanksInnermost) {
  const auto p = write("s1.ini",
                       "# comment\ncommand = bench gemm   # inline comment\nranks = 1, 2\n"
                       "[vary]\nalgo = meshgemm, cannon\nP = 4, 8, 16\n[fixed]\nM = 64\nnoc.beta_cycles = 20\n");
  const auto s = read_study(p, 2);
  ASSERT_EQ(s.command, (std::vector<std::string>{"bench", "gemm"}));
  const auto pts = expand_study(s, 2);
  ASSERT_EQ(pts.size(), 2u * 3u * 2u);
  EXPECT_EQ(pts[0].key, "algo=meshgemm P=4 ranks=1");
  EXPECT_EQ(pts[1].key, "algo=meshgemm P=4 ranks=2");
  EXPECT_EQ(pts[2].key, "algo=meshgemm P=8 ranks=1");
  EXPECT_EQ(pts[11].key, "algo=cannon P=16 ranks=2");
  EXPECT_EQ(pts[3].args, (std::vector<std::string>{"gemm", "--M=64", "--noc.beta_cycles=20", "--algo=meshgemm", "--P=8"}));
  EXPECT_EQ(pts[3].ranks, 2);
  EXPECT_EQ(wm::cli::study_signature(s), "bench gemm --M=64 --noc.beta_cycles=20");
}

TEST(Study, DefaultRanksAreTheJobsAndNoVaryIsOnePoint) {
  const auto s = read_study(write("s2.ini", "command = demo\n[fixed]\ntile_bytes = 64\n"), 3);
  const auto pts = expand_study(s, 3);
  ASSERT_EQ(pts.size(), 1u);
  EXPECT_EQ(pts[0].key, "ranks=3");
  EXPECT_EQ(pts[0].args, (std::vector<std::string>{"--tile_bytes=64"}));
}

void expect_usage(const std::string& text, const std::string& needle, int job_ranks = 2) {
  const auto p = write("bad.ini", text);
  try {
    read_study(p, job_ranks);
    FAIL() << "no error for: " << text;
  } catch (const wm::UsageError& e) {
    EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos) << "one line: " << e.what();
  }
}

TEST(Study, ErrorsNameTheProblem) {
  expect_usage("command = demo\n[vary]\nP =\n", "line 3: [vary] P has an empty list");
  expect_usage("command = demo\n[vary]\nP = 1,,2\n", "has an empty value");
  expect_usage("command = demo\n[vary]\nP = 1,1\n", "repeats a value");
  // Two points with one key (P=1 ranks=1) would overwrite each other's place in the file.
  expect_usage("command = demo\nranks = 1, 1\n", "line 2: ranks = '1, 1' repeats the rank count 1");
  expect_usage("command = demo\nspeed = 1\n", "unknown key 'speed'");
  expect_usage("command = demo\n[other]\n", "unknown section [other]");
  expect_usage("[vary]\nP = 1\n", "no 'command = ...'");
  expect_usage("command = demo\nranks = 0\n", "'0' is not a rank count >= 1");
  expect_usage("command = demo\nranks = 4\n", "ranks = 4 exceeds the job's 2 rank(s)");
  expect_usage("command = info\n", "cannot be swept");
  expect_usage("command = bench kernel\n", "run it on its own, not in a sweep");
  expect_usage("command = sweep\n", "cannot be swept");
  expect_usage("command = demo\n[fixed]\noutput = x\n", "option 'output' cannot be set by a study");
  expect_usage("command = demo\n[vary]\nP = 1\n[fixed]\nP = 2\n", "key 'P' given twice");
  expect_usage("command = demo\nthis is not ini\n", "expected key = value");
  EXPECT_THROW(read_study(testing::TempDir() + "does_not_exist.ini", 1), wm::UsageError);
}

TEST(Progress, DurationFormat) {
  EXPECT_EQ(wm::io::format_duration(0), "0:00");
  EXPECT_EQ(wm::io::format_duration(59.4), "0:59");
  EXPECT_EQ(wm::io::format_duration(61), "1:01");
  EXPECT_EQ(wm::io::format_duration(3600 + 62), "1:01:02");
  EXPECT_EQ(wm::io::format_duration(-5), "0:00");
}

}  // namespace
