#include "wafermesh/dist/allreduce.hpp"

#include <cmath>

#include "wafermesh/mesh/geometry.hpp"

namespace wm::dist {

AllreduceAlgo allreduce_algo_from_name(const std::string& name) {
  if (name == "pipeline") return AllreduceAlgo::pipeline;
  if (name == "ring") return AllreduceAlgo::ring;
  if (name == "ktree") return AllreduceAlgo::ktree;
  throw UsageError("unknown allreduce '" + name + "' (choose pipeline, ring or ktree)");
}

const char* allreduce_algo_name(AllreduceAlgo a) {
  switch (a) {
    case AllreduceAlgo::pipeline: return "pipeline";
    case AllreduceAlgo::ring: return "ring";
    case AllreduceAlgo::ktree: return "ktree";
  }
  return "?";
}

std::vector<std::vector<TreeGroup>> ktree_levels(int32_t P, int levels, int groups) {
  if (levels < 1) throw UsageError("ktree levels K = " + std::to_string(levels) + ": must be >= 1");
  if (groups < 0) throw UsageError("ktree groups = " + std::to_string(groups) + ": must be >= 0 (0 = automatic)");
  std::vector<int32_t> members;
  for (int32_t i = 0; i < P; ++i) members.push_back(i);
  std::vector<std::vector<TreeGroup>> out;
  for (int l = 1; l <= levels; ++l) {
    int64_t ng = 1;
    if (l < levels) {
      ng = (l == 1 && groups > 0) ? groups
                                   : int64_t(std::llround(std::pow(double(P), double(levels - l) / double(levels))));
    }
    ng = std::clamp<int64_t>(ng, 1, int64_t(members.size()));
    const Block1D split(int64_t(members.size()), ng);
    std::vector<TreeGroup> level;
    std::vector<int32_t> roots;
    for (int64_t g = 0; g < ng; ++g) {
      TreeGroup tg;
      for (int64_t i = split.start(g); i < split.start(g) + split.size(g); ++i) tg.members.push_back(members[size_t(i)]);
      tg.root = (tg.members.size() - 1) / 2;
      roots.push_back(tg.members[tg.root]);
      level.push_back(std::move(tg));
    }
    out.push_back(std::move(level));
    members = roots;
    if (members.size() == 1) break;
  }
  // Whatever K, the last level must leave one root.
  if (out.back().size() > 1) {
    TreeGroup tg;
    tg.members = members;
    tg.root = (members.size() - 1) / 2;
    out.push_back({tg});
  }
  return out;
}

}  // namespace wm::dist
