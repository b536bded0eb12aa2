#include "engine/thread_priority.h"

#include <rocksdb/env.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

namespace qudao {

void lower_this_thread_priority() {
  // On Linux, PRIO_PROCESS with a thread id sets that one thread's nice value.
  if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), kBulkThreadNice) != 0) {
    static std::atomic<bool> warned{false};
    if (!warned.exchange(true)) spdlog::warn("cannot lower a bulk thread's CPU priority: {}", std::strerror(errno));
  }
}

void lower_rocksdb_thread_priority() {
  rocksdb::Env* env = rocksdb::Env::Default();
  for (auto pool : {rocksdb::Env::Priority::HIGH, rocksdb::Env::Priority::LOW}) {
    if (rocksdb::Status s = env->LowerThreadPoolCPUPriority(pool, rocksdb::CpuPriority::kLow); !s.ok()) {
      spdlog::warn("cannot lower RocksDB's background threads' CPU priority: {}", s.ToString());
    }
  }
}

}  // namespace qudao
