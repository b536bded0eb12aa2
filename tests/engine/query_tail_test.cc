// The contracts that keep queries quick while the engine ingests: the HTTP thread's higher (real-time
// where allowed) and the bulk threads' lower CPU priority, the projections' priority-inheriting lock,
// the committer's busy(), and a stock projection writer that lets readers in between records.
#include <doctest/doctest.h>
#include <sched.h>
#include <sys/resource.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <mutex>
#include <shared_mutex>
#include <sstream>
#include <string>
#include <future>
#include <thread>

#include "engine/apply.h"
#include "engine/committer.h"
#include "engine/pi_mutex.h"
#include "engine/thread_priority.h"
#include "projections/stock.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {
int this_thread_nice() { return getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())); }

// The kernel's effective priority of a thread of this process (/proc/self/task/<tid>/stat, field 18):
// 0..39 for an ordinary thread (20 + nice), -2 for one running at real-time priority 1, boosted or not.
int effective_priority(pid_t tid) {
  std::ifstream in("/proc/self/task/" + std::to_string(tid) + "/stat");
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::istringstream fields(text.substr(text.rfind(')') + 2));  // after "pid (comm) "
  std::string field;
  for (int i = 3; i <= 18 && fields >> field; ++i) {
  }
  return std::stoi(field);
}
}  // namespace

TEST_CASE("thread priority: a thread's nice value is its own; its creator keeps its own, and nothing is lowered by default") {
  const int before = this_thread_nice();
  int lowered = 0;
  std::thread bulk([&] {
    REQUIRE(set_this_thread_nice(10));
    lowered = this_thread_nice();
  });
  bulk.join();
  CHECK(lowered == 10);
  CHECK(this_thread_nice() == before);
  if (std::getenv("QUDAO_BULK_THREAD_NICE") == nullptr) {
    CHECK(bulk_thread_nice() == 0);
    lower_this_thread_priority();
    CHECK(this_thread_nice() == before);
  }
}

TEST_CASE("thread priority: the HTTP thread is made real-time (SCHED_RR 1) where the kernel allows it, else nice -10, else left as it was; a thread it starts is ordinary") {
  const int before = this_thread_nice();
  int after = 0, policy = -1, priority = -1, child_policy = -1;
  bool raised = false;
  std::thread http([&] {
    raised = raise_this_thread_priority();
    after = this_thread_nice();
    policy = sched_getscheduler(static_cast<pid_t>(gettid()));
    sched_param param{};
    if (sched_getparam(static_cast<pid_t>(gettid()), &param) == 0) priority = param.sched_priority;
    std::thread child([&] { child_policy = sched_getscheduler(static_cast<pid_t>(gettid())); });
    child.join();
  });
  http.join();
  if (std::getenv("QUDAO_HTTP_THREAD_NICE") == nullptr) CHECK(latency_thread_nice() == kLatencyThreadNiceDefault);
  if (std::getenv("QUDAO_HTTP_THREAD_RT_PRIORITY") == nullptr) {
    CHECK(latency_thread_rt_priority() == kLatencyThreadRtPriorityDefault);
  }
  CHECK(child_policy == SCHED_OTHER);  // SCHED_RESET_ON_FORK: what the HTTP thread starts is ordinary
  if (raised && (policy & ~SCHED_RESET_ON_FORK) == SCHED_RR) {
    CHECK(priority == latency_thread_rt_priority());
  } else if (raised) {
    CHECK((policy & ~SCHED_RESET_ON_FORK) == SCHED_OTHER);
    CHECK(after == latency_thread_nice());
  } else {
    CHECK(after == before);  // refused (no CAP_SYS_NICE) or switched off: quietly unchanged
  }
  CHECK(this_thread_nice() == before);  // only the calling thread changes
  CHECK(sched_getscheduler(0) == SCHED_OTHER);
}

TEST_CASE("pi mutex: a shared lock excludes another, and a real-time waiter lends its priority to the holder until it unlocks") {
  PiMutex mutex;
  std::shared_lock held(mutex);
  CHECK_FALSE(mutex.try_lock_shared());  // one HTTP thread reads: shared is exclusive here
  held.unlock();

  std::atomic<pid_t> holder_tid{0};
  std::atomic<bool> release{false};
  std::thread holder([&] {
    std::unique_lock lock(mutex);
    holder_tid = static_cast<pid_t>(gettid());
    while (!release) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  });
  while (holder_tid == 0) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const int ordinary = effective_priority(holder_tid);
  CHECK(ordinary >= 0);
  std::atomic<bool> realtime{false}, got{false};
  std::thread waiter([&] {
    realtime = set_this_thread_realtime(1);
    std::shared_lock lock(mutex);
    got = true;
  });
  int boosted = ordinary;
  for (int i = 0; i < 5000 && boosted == ordinary; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    if (realtime) boosted = effective_priority(holder_tid);
  }
  CHECK_FALSE(got);  // still held
  if (realtime) {
    CHECK(boosted == -2);  // real-time priority 1, lent by the waiter
  } else {
    MESSAGE("not allowed to make a thread real-time here: priority inheritance not checked");
  }
  release = true;
  holder.join();
  waiter.join();
  CHECK(got);
}

TEST_CASE("committer: busy while a submitted commit is being written, not once it is written") {
  TempDir dir;
  auto store = Store::open(StoreOptions{dir.path(), "events"});
  REQUIRE(store.is_ok());
  Events ev;
  Applier applier;
  Shard shard{PartitionId{0}};
  REQUIRE(applier.apply(shard, must_decode(ev.location(1, fb::LocationKind::SubWarehouse, "East"))).kind ==
          OutcomeKind::applied);
  Committer committer(*store.value());
  CHECK_FALSE(committer.busy());  // nothing submitted
  std::vector<Shard*> shards{&shard};
  committer.submit(store.value()->prepare(shards));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (committer.busy() && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  CHECK_FALSE(committer.busy());  // written: wait() returns at once
  auto written = committer.wait();
  REQUIRE(written.is_ok());
  CHECK(written.value().has_value());
  CHECK_FALSE(committer.busy());
}

TEST_CASE("stock projection: a writer holds the lock from its first change until release(), then readers get in") {
  Events ev;
  Applier applier;
  Shard shard{PartitionId{0}};
  StockProjection stock;
  StockProjection::Writer w(stock);
  REQUIRE(applier.apply(shard, must_decode(ev.location(1, fb::LocationKind::SubWarehouse, "East"))).kind ==
          OutcomeKind::applied);
  w.define_location(LocationId{1}, *shard.location(LocationId{1}));
  REQUIRE(applier.apply(shard, must_decode(ev.production(1, {line(7, 5)}))).kind == OutcomeKind::applied);
  w.project(applier.postings());

  auto read = [&] { return stock.location_stock(LocationId{1}, SkuId{7}, RegionScope::all()); };
  auto blocked = std::async(std::launch::async, read);
  CHECK(blocked.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);  // the record is not done
  w.release();
  REQUIRE(blocked.wait_for(std::chrono::seconds(30)) == std::future_status::ready);
  const auto seen = blocked.get();
  REQUIRE(seen.has_value());
  REQUIRE(seen->rows.size() == 1);
  CHECK(seen->rows[0].levels.on_hand == Quantity{5});
  // Released, the writer stays usable: the next change takes the lock again.
  REQUIRE(applier.apply(shard, must_decode(ev.production(1, {line(7, 2)}))).kind == OutcomeKind::applied);
  w.project(applier.postings());
  w.release();
  CHECK(read()->rows[0].levels.on_hand == Quantity{7});
}

}  // namespace qudao
