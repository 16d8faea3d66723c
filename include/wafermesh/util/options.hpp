#pragma once
// Options from ParamSpecs (generic: used by commands and by model configs): the same declaration drives --help, the command line, the INI
// file given with --config (key "a.b" is key b of section [a]) and the value/source listing.
// Precedence: command line, then the config file, then the built-in default.
#include <iosfwd>
#include <map>
#include <string>
#include <vector>

#include "wafermesh/util/param_spec.hpp"

namespace wm {

class OptionSet {
 public:
  void add(ParamSpec s);
  void add(std::vector<ParamSpec> v);

  // Parses `args` (everything after the subcommand). Throws UsageError with one line on unknown
  // options, malformed INI, non-numeric or out-of-range values.
  void parse(const std::vector<std::string>& args);

  bool help_requested() const { return help_; }
  const std::string& config_path() const { return config_; }
  const std::vector<ParamSpec>& specs() const { return specs_; }
  // "default", the config file's path, or "command line".
  const std::string& source(const std::string& name) const;

  void print_help(std::ostream& out, const std::string& usage) const;
  // name = value [unit] (source), one per line.
  void print_values(std::ostream& out) const;

 private:
  std::vector<ParamSpec> specs_;
  std::vector<std::string> defaults_;  // default text per spec, captured at add()
  std::map<std::string, std::string> sources_;
  std::string config_;
  bool help_ = false;
};

}  // namespace wm
