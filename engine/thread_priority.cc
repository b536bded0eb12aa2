#include "engine/thread_priority.h"

#include <rocksdb/env.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>

namespace qudao {

namespace {

// A nice value or priority from the environment variable `name`, if it holds an integer in [low, high];
// otherwise (and with a warning if it is set but wrong) `fallback`.
int nice_from_env(const char* name, int low, int high, int fallback) {
  const char* text = std::getenv(name);
  if (text == nullptr) return fallback;
  char* end = nullptr;
  const long n = std::strtol(text, &end, 10);
  if (end == text || *end != '\0' || n < low || n > high) {
    spdlog::warn("{}={}: must be {} to {}; using {}", name, text, low, high, fallback);
    return fallback;
  }
  return static_cast<int>(n);
}

}  // namespace

int bulk_thread_nice() {
  static const int nice = nice_from_env("QUDAO_BULK_THREAD_NICE", 0, 19, kBulkThreadNiceDefault);
  return nice;
}

bool set_this_thread_nice(int nice) {
  // On Linux, PRIO_PROCESS with a thread id sets that one thread's nice value.
  return setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), nice) == 0;
}

void lower_this_thread_priority() {
  const int nice = bulk_thread_nice();
  if (nice == 0 || set_this_thread_nice(nice)) return;
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true)) spdlog::warn("cannot lower a bulk thread's CPU priority: {}", std::strerror(errno));
}

int latency_thread_nice() {
  static const int nice = nice_from_env("QUDAO_HTTP_THREAD_NICE", -20, 0, kLatencyThreadNiceDefault);
  return nice;
}

int latency_thread_rt_priority() {
  static const int priority =
      nice_from_env("QUDAO_HTTP_THREAD_RT_PRIORITY", 0, kLatencyThreadRtPriorityMax, kLatencyThreadRtPriorityDefault);
  return priority;
}

bool set_this_thread_realtime(int priority) {
  // On Linux, sched_setscheduler with a thread id sets that one thread's policy.
  const sched_param param{.sched_priority = priority};
  return sched_setscheduler(static_cast<pid_t>(gettid()), SCHED_RR | SCHED_RESET_ON_FORK, &param) == 0;
}

bool raise_this_thread_priority() {
  if (const int priority = latency_thread_rt_priority(); priority > 0) {
    if (set_this_thread_realtime(priority)) return true;
    static std::atomic<bool> noted{false};
    if (!noted.exchange(true)) {
      spdlog::debug("the HTTP thread is not real-time (SCHED_RR {} refused: {}); trying nice", priority,
                    std::strerror(errno));
    }
  }
  const int nice = latency_thread_nice();
  if (nice == 0) return false;
  if (set_this_thread_nice(nice)) return true;
  // Raising a priority needs CAP_SYS_NICE or an RLIMIT_NICE that allows it: without either the
  // thread keeps the priority it was started with, which is what it had before this existed.
  static std::atomic<bool> noted{false};
  if (!noted.exchange(true)) {
    spdlog::debug("the HTTP thread keeps its CPU priority (nice {} refused: {})", nice, std::strerror(errno));
  }
  return false;
}

void lower_rocksdb_thread_priority() {
  if (bulk_thread_nice() == 0) return;
  rocksdb::Env* env = rocksdb::Env::Default();
  for (auto pool : {rocksdb::Env::Priority::HIGH, rocksdb::Env::Priority::LOW}) {
    if (rocksdb::Status s = env->LowerThreadPoolCPUPriority(pool, rocksdb::CpuPriority::kLow); !s.ok()) {
      spdlog::warn("cannot lower RocksDB's background threads' CPU priority: {}", s.ToString());
    }
  }
}

}  // namespace qudao
