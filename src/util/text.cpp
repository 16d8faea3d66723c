#include "wafermesh/util/text.hpp"

#include <sstream>

namespace wm {

std::string trim(const std::string& s) {
  const size_t a = s.find_first_not_of(" \t\r\n");
  if (a == std::string::npos) return "";
  const size_t b = s.find_last_not_of(" \t\r\n");
  return s.substr(a, b - a + 1);
}

std::vector<std::string> split_trimmed(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string field;
  std::istringstream in(s);
  while (std::getline(in, field, sep)) out.push_back(trim(field));
  if (!s.empty() && s.back() == sep) out.push_back("");
  return out;
}

}  // namespace wm
