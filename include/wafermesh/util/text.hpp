#pragma once
// Small text helpers shared by the readers of options, INI, study and measurement files.
#include <string>
#include <vector>

namespace wm {

// s without leading and trailing spaces, tabs, carriage returns and newlines.
std::string trim(const std::string& s);

// The fields of s between separators `sep`, each trimmed; a trailing separator ends an empty
// field ("a,b," is {"a", "b", ""}), so a reader can refuse it. "" is no field at all.
std::vector<std::string> split_trimmed(const std::string& s, char sep);

}  // namespace wm
