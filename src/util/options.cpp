#include "wafermesh/util/options.hpp"

#include <boost/program_options.hpp>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "wafermesh/util/error.hpp"
#include "wafermesh/util/text.hpp"

namespace po = boost::program_options;

namespace wm {

namespace {

struct Where {
  std::string name, text, source;
  [[noreturn]] void fail(const std::string& why) const {
    throw UsageError("option --" + name + " = '" + text + "'" +
                     (source == "command line" ? "" : " (from " + source + ")") + ": " + why);
  }
};

int64_t to_int(const Where& w, const std::string& t, const ParamSpec& s) {
  int64_t v = 0;
  const std::string u = trim(t);
  auto [p, ec] = std::from_chars(u.data(), u.data() + u.size(), v);
  if (u.empty() || ec != std::errc() || p != u.data() + u.size()) w.fail("not an integer");
  if (double(v) < s.min) w.fail("must be >= " + std::to_string(int64_t(s.min)));
  if (double(v) > s.max) w.fail("must be <= " + std::to_string(int64_t(s.max)));
  return v;
}

double to_real(const Where& w, const std::string& t, const ParamSpec& s) {
  const std::string u = trim(t);
  char* end = nullptr;
  const double v = u.empty() ? 0.0 : std::strtod(u.c_str(), &end);
  if (u.empty() || end != u.c_str() + u.size() || !std::isfinite(v)) w.fail("not a number");
  std::ostringstream lim;
  if (s.min_exclusive ? v <= s.min : v < s.min) {
    lim << "must be " << (s.min_exclusive ? "> " : ">= ") << s.min;
    w.fail(lim.str());
  }
  if (v > s.max) {
    lim << "must be <= " << s.max;
    w.fail(lim.str());
  }
  return v;
}

void check_choice(const Where& w, const std::string& v, const ParamSpec& s) {
  if (s.choices.empty()) return;
  for (const auto& c : s.choices)
    if (c == v) return;
  std::string all;
  for (const auto& c : s.choices) all += (all.empty() ? "" : ", ") + c;
  w.fail("must be one of: " + all);
}

void assign(const ParamSpec& s, const std::string& text, const std::string& source) {
  const Where w{s.name, text, source};
  struct V {
    const Where& w;
    const ParamSpec& s;
    const std::string& t;
    void operator()(int64_t* p) const { *p = to_int(w, t, s); }
    void operator()(double* p) const { *p = to_real(w, t, s); }
    void operator()(std::string* p) const {
      check_choice(w, trim(t), s);
      *p = trim(t);
    }
    void operator()(bool* p) const {
      const std::string u = trim(t);
      if (u == "true" || u == "1" || u == "yes" || u == "on") *p = true;
      else if (u == "false" || u == "0" || u == "no" || u == "off") *p = false;
      else w.fail("not a boolean (true/false)");
    }
    void operator()(std::vector<int64_t>* p) const {
      std::vector<int64_t> v;
      for (const auto& item : split_trimmed(t, ',')) v.push_back(to_int(w, item, s));
      if (v.empty()) w.fail("empty list");
      *p = v;
    }
    void operator()(std::vector<std::string>* p) const {
      std::vector<std::string> v = split_trimmed(t, ',');
      for (const auto& item : v) check_choice(w, item, s);
      if (v.empty()) w.fail("empty list");
      *p = v;
    }
  };
  std::visit(V{w, s, text}, s.target);
}

// A number of a range for help: integers in full, reals in %g.
std::string range_number(const ParamSpec& s, double v) {
  const bool integer = std::holds_alternative<int64_t*>(s.target) || std::holds_alternative<std::vector<int64_t>*>(s.target);
  if (integer) return std::to_string(int64_t(v));
  std::ostringstream o;
  o << v;
  return o.str();
}

// "default 750 [PEs] (1 to 1048576): mesh width W" -- default, unit and range first, so wrapping
// never splits them.
std::string help_line(const ParamSpec& s, const std::string& def) {
  std::string h = "default " + (def.empty() ? std::string("\"\"") : def);
  if (!s.unit.empty()) h += " [" + s.unit + "]";
  const bool has_min = s.min > -1e300, has_max = s.max < 1e300;
  if (has_min || has_max)
    h += " (" + (has_min ? std::string(s.min_exclusive ? "> " : "") + range_number(s, s.min) : std::string("..")) +
         (has_max ? " to " + range_number(s, s.max) : std::string(" or more")) + ")";
  if (!s.choices.empty()) {
    std::string all;
    for (const auto& c : s.choices) all += (all.empty() ? "" : "|") + c;
    h += " {" + all + "}";
  }
  return h + ": " + s.help;
}

bool is_flag(const ParamSpec& s) { return std::holds_alternative<bool*>(s.target); }

po::options_description make_desc(const std::vector<ParamSpec>& specs, const std::vector<std::string>& defs,
                                  bool with_cli_only) {
  po::options_description d("", 100, 50);
  if (with_cli_only) {
    d.add_options()("help,h", "print this help and exit")("config", po::value<std::string>(),
                                                          "INI file with option values; command-line values win");
  }
  for (size_t i = 0; i < specs.size(); ++i) {
    const ParamSpec& s = specs[i];
    if (is_flag(s))
      d.add_options()(s.name.c_str(), po::value<std::string>()->implicit_value("true"), help_line(s, defs[i]).c_str());
    else
      d.add_options()(s.name.c_str(), po::value<std::string>(), help_line(s, defs[i]).c_str());
  }
  return d;
}

}  // namespace

void OptionSet::add(ParamSpec s) {
  for (const auto& o : specs_)
    if (o.name == s.name) throw std::logic_error("option declared twice: " + s.name);
  defaults_.push_back(param_value_text(s));
  specs_.push_back(std::move(s));
}

void OptionSet::add(std::vector<ParamSpec> v) {
  for (auto& s : v) add(std::move(s));
}

const std::string& OptionSet::source(const std::string& name) const {
  static const std::string def = "default";
  auto it = sources_.find(name);
  return it == sources_.end() ? def : it->second;
}

void OptionSet::parse(const std::vector<std::string>& args) {
  po::variables_map cli, file;
  try {
    // No prefix guessing: "--mesh.w" must not silently mean "--mesh.width_pes".
    const int style = po::command_line_style::default_style & ~po::command_line_style::allow_guessing;
    const po::options_description desc = make_desc(specs_, defaults_, true);  // `parsed` points into it
    const po::parsed_options parsed = po::command_line_parser(args).options(desc).style(style).run();
    // A word that is no option's value (a typo, a missing "--", an unquoted space) would
    // otherwise be dropped without a word.
    for (const auto& o : parsed.options)
      if (o.position_key >= 0)
        throw UsageError("unexpected argument '" + (o.value.empty() ? std::string() : o.value.front()) +
                         "' (options are --name value or --name=value; see --help)");
    po::store(parsed, cli);
  } catch (const po::error& e) {
    throw UsageError(std::string(e.what()) + " (see --help)");
  }
  help_ = cli.count("help") > 0;
  if (help_) return;
  if (cli.count("config")) {
    config_ = cli["config"].as<std::string>();
    std::error_code ec;
    // A directory opens and reads as an empty file: every option would silently keep its default.
    if (std::filesystem::is_directory(config_, ec)) throw UsageError("config file '" + config_ + "' is a directory");
    std::ifstream in(config_);
    if (!in) throw UsageError("cannot read config file '" + config_ + "'");
    try {
      po::store(po::parse_config_file(in, make_desc(specs_, defaults_, false), /*allow_unregistered=*/false), file);
    } catch (const po::error& e) {
      throw UsageError(config_ + ": " + e.what());
    }
  }
  for (const ParamSpec& s : specs_) {
    if (cli.count(s.name)) {
      assign(s, cli[s.name].as<std::string>(), "command line");
      sources_[s.name] = "command line";
    } else if (file.count(s.name)) {
      assign(s, file[s.name].as<std::string>(), config_);
      sources_[s.name] = config_;
    }
  }
}

void OptionSet::print_help(std::ostream& out, const std::string& usage) const {
  out << usage << "\n\nOptions (also accepted as INI keys: [section] key = value):\n"
      << make_desc(specs_, defaults_, true);
}

void OptionSet::print_values(std::ostream& out) const {
  size_t w = 0;
  for (const auto& s : specs_) w = std::max(w, s.name.size());
  for (const auto& s : specs_) {
    std::string v = param_value_text(s);
    out << "  " << std::left << std::setw(int(w)) << s.name << " = " << std::setw(10) << v << " "
        << std::setw(13) << (s.unit.empty() ? "" : "[" + s.unit + "]") << " (" << source(s.name) << ")\n";
  }
}

}  // namespace wm
