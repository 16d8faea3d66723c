#pragma once
// A parameter declared once: name, unit, help, default and limits. The CLI turns these into
// command-line options and INI keys (section.key), `info` prints them with their source, and
// results files record them. Components own their specs next to the fields they describe.
#include <cstdint>
#include <string>
#include <variant>
#include <vector>

namespace wm {

struct ParamSpec {
  using Target = std::variant<int64_t*, double*, std::string*, bool*, std::vector<int64_t>*,
                              std::vector<std::string>*>;
  std::string name;          // "noc.alpha_cycles": INI section "noc", key "alpha_cycles"
  std::string unit;          // "cycles/hop"; empty for unitless text
  std::string help;          // one sentence
  Target target;             // where the parsed value goes; also holds the default on entry
  double min = -1e300;       // numeric lower bound (inclusive unless min_exclusive)
  double max = 1e300;        // numeric upper bound (inclusive)
  bool min_exclusive = false;
  std::vector<std::string> choices;  // allowed values for text options (and text lists)
};

// Convenience constructors (keep declarations one line each at the call site).
ParamSpec param_int(std::string name, int64_t* v, std::string unit, std::string help, int64_t min, int64_t max);
ParamSpec param_real(std::string name, double* v, std::string unit, std::string help, double min, double max,
                     bool min_exclusive = false);
ParamSpec param_text(std::string name, std::string* v, std::string help, std::vector<std::string> choices = {});
ParamSpec param_flag(std::string name, bool* v, std::string help);
ParamSpec param_int_list(std::string name, std::vector<int64_t>* v, std::string unit, std::string help,
                         int64_t min, int64_t max);
ParamSpec param_text_list(std::string name, std::vector<std::string>* v, std::string help,
                          std::vector<std::string> choices = {});

// The value currently held by the target, as text ("750", "1.1", "a,b").
std::string param_value_text(const ParamSpec& s);

}  // namespace wm
