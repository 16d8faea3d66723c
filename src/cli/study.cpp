#include "wafermesh/cli/study.hpp"

#include <charconv>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "wafermesh/util/error.hpp"
#include "wafermesh/util/text.hpp"

namespace wm::cli {

namespace {

// Drops a comment: from '#' or ';' at the start of the line or after whitespace.
std::string strip_comment(const std::string& line) {
  for (size_t i = 0; i < line.size(); ++i)
    if ((line[i] == '#' || line[i] == ';') && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t'))
      return line.substr(0, i);
  return line;
}

bool valid_key(const std::string& k) {
  if (k.empty()) return false;
  for (char c : k)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) return false;
  return true;
}

}  // namespace

std::string join_words(const std::vector<std::string>& w, const std::string& sep) {
  std::string s;
  for (size_t i = 0; i < w.size(); ++i) s += (i ? sep : "") + w[i];
  return s;
}

Study read_study(const std::string& path, int job_ranks) {
  Study s;
  s.path = path;
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) throw UsageError("study file '" + path + "' is a directory");
  std::ifstream in(path);
  if (!in) throw UsageError("cannot read study file '" + path + "'");
  std::ostringstream all;
  all << in.rdbuf();
  s.text = all.str();
  std::istringstream lines(s.text);
  std::string raw, section;
  int lineno = 0;
  std::set<std::string> seen;
  auto fail = [&](const std::string& why) -> void {
    throw UsageError("study file '" + path + "'" + (lineno > 0 ? " line " + std::to_string(lineno) : "") + ": " + why);
  };
  bool have_command = false;
  while (std::getline(lines, raw)) {
    ++lineno;
    const std::string line = trim(strip_comment(raw));
    if (line.empty()) continue;
    if (line.front() == '[') {
      if (line.back() != ']') fail("malformed section header '" + line + "'");
      section = trim(line.substr(1, line.size() - 2));
      if (section != "vary" && section != "fixed")
        fail("unknown section [" + section + "] (sections: [vary], [fixed])");
      continue;
    }
    const size_t eq = line.find('=');
    if (eq == std::string::npos) fail("expected key = value, got '" + line + "'");
    const std::string key = trim(line.substr(0, eq)), value = trim(line.substr(eq + 1));
    if (!valid_key(key)) fail("bad key '" + key + "'");
    const std::string where = section.empty() ? key : section + "." + key;
    if (!seen.insert(section == "fixed" || section == "vary" ? "opt:" + key : where).second)
      fail("key '" + key + "' given twice");
    if (section.empty()) {
      if (key == "command") {
        std::istringstream w(value);
        std::string word;
        while (w >> word) s.command.push_back(word);
        if (s.command.empty()) fail("empty command");
        have_command = true;
      } else if (key == "description") {
        s.description = value;
      } else if (key == "ranks") {
        for (const std::string& v : split_trimmed(value, ',')) {
          int64_t r = 0;
          auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), r);
          if (v.empty() || ec != std::errc() || p != v.data() + v.size() || r < 1)
            fail("ranks = '" + value + "': '" + v + "' is not a rank count >= 1");
          if (r > job_ranks)
            fail("ranks = " + v + " exceeds the job's " + std::to_string(job_ranks) +
                 " rank(s) (start the sweep with at least " + v + " ranks)");
          for (int64_t earlier : s.ranks)  // two points would share one key
            if (earlier == r) fail("ranks = '" + value + "' repeats the rank count " + std::to_string(r));
          s.ranks.push_back(r);
        }
      } else {
        fail("unknown key '" + key + "' before the first section (keys: command, description, ranks)");
      }
      continue;
    }
    if (key == "output" || key == "help")
      fail("option '" + key + "' cannot be set by a study (the sweep writes one results file: sweep --output)");
    if (section == "fixed") {
      s.fixed.push_back({key, value});
    } else {
      std::vector<std::string> vals = split_trimmed(value, ',');
      if (value.empty()) fail("[vary] " + key + " has an empty list of values");
      for (const auto& v : vals)
        if (v.empty()) fail("[vary] " + key + " = '" + value + "' has an empty value");
      std::set<std::string> uniq(vals.begin(), vals.end());
      if (uniq.size() != vals.size()) fail("[vary] " + key + " = '" + value + "' repeats a value");
      s.vary.push_back({key, vals});
    }
  }
  lineno = 0;
  if (!have_command) fail("no 'command = ...' (the wafermesh command every point runs, e.g. 'command = bench gemm')");
  const std::string c = join_words(s.command);
  if (c == "sweep" || c.rfind("sweep ", 0) == 0 || c == "info" || c.rfind("info ", 0) == 0)
    fail("command '" + c + "' writes no results table and cannot be swept (try demo, bench gemm, bench gemv, bench kv)");
  // The host's kernels on rank 0: the same at every rank count, and its lists of shapes, tokens and
  // threads already make the cross product a study would.
  if (c.rfind("bench kernel", 0) == 0)
    fail("command '" + c + "' measures the host's kernels, whatever the ranks, and takes lists of shapes, tokens "
         "and threads itself: run it on its own, not in a sweep");
  return s;
}

std::vector<StudyPoint> expand_study(const Study& s, int job_ranks) {
  const std::vector<int64_t> ranks = s.ranks.empty() ? std::vector<int64_t>{job_ranks} : s.ranks;
  std::vector<StudyPoint> points;
  std::vector<size_t> idx(s.vary.size(), 0);
  for (;;) {
    for (int64_t r : ranks) {
      StudyPoint p;
      p.ranks = int(r);
      p.args.assign(s.command.begin() + 1, s.command.end());
      for (const auto& [k, v] : s.fixed) p.args.push_back("--" + k + "=" + v);
      for (size_t i = 0; i < s.vary.size(); ++i) {
        const std::string& v = s.vary[i].second[idx[i]];
        p.values.push_back({s.vary[i].first, v});
        p.args.push_back("--" + s.vary[i].first + "=" + v);
        p.key += s.vary[i].first + "=" + v + " ";
      }
      p.key += "ranks=" + std::to_string(r);
      points.push_back(std::move(p));
    }
    // Odometer over the [vary] lists, last key fastest.
    size_t d = s.vary.size();
    while (d > 0) {
      --d;
      if (++idx[d] < s.vary[d].second.size()) break;
      idx[d] = 0;
      if (d == 0) return points;
    }
    if (s.vary.empty()) return points;
  }
}

std::string study_signature(const Study& s) {
  std::string sig = join_words(s.command);
  for (const auto& [k, v] : s.fixed) sig += " --" + k + "=" + v;
  return sig;
}

}  // namespace wm::cli
