#pragma once
// Compares Librato gauges the way ../fixtures/data/README.md says: by (name, source,
// measure_time); numbers as doubles; sum and sum_squares to 1e-12 relative.

#include <cmath>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "nlohmann/json.hpp"

namespace drainmet::testing {

using GaugeId = std::tuple<std::string, std::string, std::int64_t>;

inline GaugeId IdOf(const nlohmann::json& g) {
  return {g.at("name").get<std::string>(), g.value("source", std::string()),
          g.at("measure_time").get<std::int64_t>()};
}

inline std::string IdText(const GaugeId& id) {
  return std::get<0>(id) + " source=" + std::get<1>(id) + " t=" + std::to_string(std::get<2>(id));
}

inline bool NumbersMatch(const std::string& field, double want, double got) {
  if (field == "sum" || field == "sum_squares") {
    const double scale = std::max(std::abs(want), std::abs(got));
    return std::abs(want - got) <= 1e-12 * scale;
  }
  return want == got;
}

/// Differences between two gauge lists, one line each; empty when they match exactly
/// (same identities, same fields, same values).
inline std::vector<std::string> DiffGauges(const std::vector<nlohmann::json>& want,
                                           const std::vector<nlohmann::json>& got) {
  std::vector<std::string> diffs;
  std::map<GaugeId, nlohmann::json> w, g;
  for (const auto& x : want) w[IdOf(x)] = x;
  for (const auto& x : got) {
    if (g.count(IdOf(x))) diffs.push_back("posted twice: " + IdText(IdOf(x)));
    g[IdOf(x)] = x;
  }
  for (const auto& [id, x] : w) {
    auto it = g.find(id);
    if (it == g.end()) {
      diffs.push_back("missing: " + x.dump());
      continue;
    }
    const nlohmann::json& y = it->second;
    for (const auto& [field, value] : x.items()) {
      if (!y.contains(field)) {
        diffs.push_back(IdText(id) + ": missing field " + field);
      } else if (value.is_number()) {
        if (!y[field].is_number() || !NumbersMatch(field, value.get<double>(), y[field].get<double>())) {
          diffs.push_back(IdText(id) + ": " + field + " want " + value.dump() + " got " + y[field].dump());
        }
      } else if (value != y[field]) {
        diffs.push_back(IdText(id) + ": " + field + " want " + value.dump() + " got " + y[field].dump());
      }
    }
    for (const auto& [field, value] : y.items()) {
      if (!x.contains(field))
        diffs.push_back(IdText(id) + ": unexpected field " + field + "=" + value.dump());
    }
  }
  for (const auto& [id, y] : g) {
    if (!w.count(id)) diffs.push_back("unexpected: " + y.dump());
  }
  return diffs;
}

}  // namespace drainmet::testing
