#include "wafermesh/util/param_spec.hpp"

#include <cstdio>
#include <sstream>

namespace wm {

ParamSpec param_int(std::string name, int64_t* v, std::string unit, std::string help, int64_t min, int64_t max) {
  ParamSpec s{std::move(name), std::move(unit), std::move(help), v, -1e300, 1e300, false, {}};
  s.min = double(min);
  s.max = double(max);
  return s;
}
ParamSpec param_real(std::string name, double* v, std::string unit, std::string help, double min, double max,
                     bool min_exclusive) {
  ParamSpec s{std::move(name), std::move(unit), std::move(help), v, -1e300, 1e300, false, {}};
  s.min = min;
  s.max = max;
  s.min_exclusive = min_exclusive;
  return s;
}
ParamSpec param_text(std::string name, std::string* v, std::string help, std::vector<std::string> choices) {
  ParamSpec s{std::move(name), "", std::move(help), v, -1e300, 1e300, false, {}};
  s.choices = std::move(choices);
  return s;
}
ParamSpec param_flag(std::string name, bool* v, std::string help) {
  return ParamSpec{std::move(name), "", std::move(help), v, -1e300, 1e300, false, {}};
}
ParamSpec param_int_list(std::string name, std::vector<int64_t>* v, std::string unit, std::string help,
                         int64_t min, int64_t max) {
  ParamSpec s{std::move(name), std::move(unit), std::move(help), v, -1e300, 1e300, false, {}};
  s.min = double(min);
  s.max = double(max);
  return s;
}
ParamSpec param_text_list(std::string name, std::vector<std::string>* v, std::string help,
                          std::vector<std::string> choices) {
  ParamSpec s{std::move(name), "", std::move(help), v, -1e300, 1e300, false, {}};
  s.choices = std::move(choices);
  return s;
}

std::string param_value_text(const ParamSpec& s) {
  struct V {
    std::string operator()(int64_t* p) const { return std::to_string(*p); }
    std::string operator()(double* p) const {
      char b[64];
      std::snprintf(b, sizeof b, "%.10g", *p);
      return b;
    }
    std::string operator()(std::string* p) const { return *p; }
    std::string operator()(bool* p) const { return *p ? "true" : "false"; }
    std::string operator()(std::vector<int64_t>* p) const {
      std::ostringstream o;
      for (size_t i = 0; i < p->size(); ++i) o << (i ? "," : "") << (*p)[i];
      return o.str();
    }
    std::string operator()(std::vector<std::string>* p) const {
      std::ostringstream o;
      for (size_t i = 0; i < p->size(); ++i) o << (i ? "," : "") << (*p)[i];
      return o.str();
    }
  };
  return std::visit(V{}, s.target);
}

}  // namespace wm
