// Named crash points for crash-safety tests. With QUDAO_CRASH_POINT=<name>:<n> in the environment,
// the n-th time the process passes crash_point("<name>") it kills itself with SIGKILL, exactly as
// `kill -9` would at that instant. Without the variable a crash point costs one branch.
//
// Points (tests name them; grep crash_point for where they sit):
//   mid_batch                          after applying part of a poll batch, before the commit
//   after_commit_before_offset_commit  after the RocksDB commit, before the Kafka offset commit
#pragma once

#include <csignal>
#include <cstdlib>
#include <string>
#include <string_view>

namespace qudao {

namespace detail {
struct CrashPlan {
  std::string name;
  long hits_left = -1;  // -1: disarmed
  CrashPlan() {
    const char* v = std::getenv("QUDAO_CRASH_POINT");
    if (v == nullptr) return;
    const std::string s(v);
    const auto colon = s.rfind(':');
    name = s.substr(0, colon);
    hits_left = colon == std::string::npos ? 1 : std::strtol(s.c_str() + colon + 1, nullptr, 10);
  }
};
inline CrashPlan& crash_plan() {
  static CrashPlan plan;
  return plan;
}
}  // namespace detail

inline void crash_point(std::string_view name) {
  detail::CrashPlan& plan = detail::crash_plan();
  if (plan.hits_left < 0 || name != plan.name) return;
  if (--plan.hits_left <= 0) std::raise(SIGKILL);
}

}  // namespace qudao
