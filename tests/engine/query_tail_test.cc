// The contracts that keep queries quick while the engine ingests: the HTTP thread's higher and the
// bulk threads' lower CPU priority, the committer's busy(), and a stock projection writer that lets readers in between
// records.
#include <doctest/doctest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <future>
#include <thread>

#include "engine/apply.h"
#include "engine/committer.h"
#include "engine/thread_priority.h"
#include "projections/stock.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {
int this_thread_nice() { return getpriority(PRIO_PROCESS, static_cast<id_t>(gettid())); }
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

TEST_CASE("thread priority: the HTTP thread is raised to nice -10 by default where the kernel allows it, else left as it was") {
  const int before = this_thread_nice();
  int after = 0;
  bool raised = false;
  std::thread http([&] {
    raised = raise_this_thread_priority();
    after = this_thread_nice();
  });
  http.join();
  if (std::getenv("QUDAO_HTTP_THREAD_NICE") == nullptr) CHECK(latency_thread_nice() == kLatencyThreadNiceDefault);
  if (raised) {
    CHECK(after == latency_thread_nice());
  } else {
    CHECK(after == before);  // refused (no CAP_SYS_NICE) or switched off: quietly unchanged
  }
  CHECK(this_thread_nice() == before);  // only the calling thread changes
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
