#pragma once
// Study files for `wafermesh sweep` (configs/studies/*.ini):
//
//   command = bench gemm          the wafermesh command every point runs (required)
//   description = ...             free text, recorded in the results (optional)
//   ranks = 1, 2                  rank counts to run every point on (optional; default: all the job's)
//   [vary]                        one axis per key, comma-separated values; the cross product runs
//   algo = meshgemm, cannon, summa
//   P = 4, 8, 16
//   [fixed]                       passed unchanged to every point as --key=value
//   M = 256
//   config = configs/laptop.ini
//
// Keys of [vary] and [fixed] are the command's options (`wafermesh <command> --help`). `#` or `;`
// starts a comment (whole line, or after whitespace). Points run in file order of the [vary] keys,
// the first key outermost, the rank count innermost.
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

namespace wm::cli {

struct Study {
  std::string path, text;  // text: the whole file, recorded in the results
  std::vector<std::string> command;  // {"bench", "gemm"}
  std::string description;
  std::vector<int64_t> ranks;  // empty: the job's rank count
  std::vector<std::pair<std::string, std::string>> fixed;
  std::vector<std::pair<std::string, std::vector<std::string>>> vary;
};

struct StudyPoint {
  std::vector<std::pair<std::string, std::string>> values;  // one per [vary] key
  int ranks = 1;
  std::string key;  // "algo=cannon P=8 ranks=2": identifies the point in a results file
  std::vector<std::string> args;  // arguments after the command's first word
};

// Reads and checks a study file. Throws wm::UsageError with one line naming the file, the line
// and the problem (unreadable file, unknown key or section, empty list, duplicate key, a value or
// rank count given twice, missing or unsweepable command, a rank count above `job_ranks`).
Study read_study(const std::string& path, int job_ranks);
// The cross product, in run order.
std::vector<StudyPoint> expand_study(const Study& s, int job_ranks);
// Command and fixed options as one line: a results file continued by a sweep must have been
// written by a study with the same signature.
std::string study_signature(const Study& s);
std::string join_words(const std::vector<std::string>& w, const std::string& sep = " ");

}  // namespace wm::cli
