// replay --from-file: a simulated channel written to an event file rebuilds to the same state every
// time, whatever the commit interval, through the pipeline's own ingest path.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "connectors/kafka.h"
#include "events/event_file.h"
#include "tests/support.h"
#include "tests/tools/simulate_file.h"
#include "tools/replay.h"
#include "tools/simulate.h"

namespace qudao {
using namespace qudao::test;

namespace {

Replayed replay(const TempDir& dir, const std::string& file, const std::string& name, std::size_t commit_events_max,
                std::chrono::milliseconds commit_interval, int partitions = 8) {
  FileReplayOptions o;
  o.path = file;
  o.partitions = partitions;
  o.data_dir = dir.path() + "/" + name;
  o.commit_events_max = commit_events_max;
  o.commit_interval = commit_interval;
  std::atomic<bool> stop{false};
  auto r = replay_file(o, stop);
  REQUIRE_MESSAGE(r.is_ok(), r.status().message());
  return r.take();
}

}  // namespace

TEST_CASE("replay --from-file: twice, and with other commit intervals, the same digests and SHA-256") {
  TempDir dir;
  const std::string file = dir.path() + "/sim.qev";
  const SimulationSummary summary =
      simulate_to(file, {.seed = 3, .regions = 5, .cities_per_region = 2, .stores_per_city = 4, .skus = 12, .days = 20});
  REQUIRE(summary.events > 1000);

  const Replayed a = replay(dir, file, "a", 200'000, std::chrono::seconds(1));
  CHECK(a.events == summary.events);
  CHECK(a.digests.size() == 8);  // every partition, the empty ones too
  CHECK(a.sha256.size() == 64);
  CHECK(a.digest != 0);
  std::uint64_t sum = 0;
  for (const auto& [p, d] : a.digests) sum += d;
  CHECK(sum == a.digest);

  const Replayed b = replay(dir, file, "b", 200'000, std::chrono::seconds(1));
  CHECK(b.digests == a.digests);
  CHECK(b.sha256 == a.sha256);

  // A commit every 97 records and every 1 ms: other batch boundaries, the same state.
  const Replayed c = replay(dir, file, "c", 97, std::chrono::milliseconds(1));
  CHECK(c.events == a.events);
  CHECK(c.digests == a.digests);
  CHECK(c.sha256 == a.sha256);

  // Another partition count puts regions on other shards: the per-partition digests tell.
  const Replayed d = replay(dir, file, "d", 200'000, std::chrono::seconds(1), 3);
  CHECK(d.digests.size() == 3);
  CHECK(d.sha256 != a.sha256);
}

TEST_CASE("replay --from-file: regions land on murmur2(key) % partitions, as Kafka's producers put them") {
  TempDir dir;
  const std::string file = dir.path() + "/sim.qev";
  simulate_to(file, {.seed = 5, .regions = 3, .cities_per_region = 1, .stores_per_city = 2, .skus = 4, .days = 3});
  const Replayed r = replay(dir, file, "r", 200'000, std::chrono::seconds(1), 4);
  std::map<std::int32_t, bool> used;
  for (std::string_view region : {"East", "North", "South", "HQ"}) {  // HQ: its warehouse, flagships, catalogue
    used[partition_for_key({reinterpret_cast<const std::uint8_t*>(region.data()), region.size()}, 4).value] = true;
  }
  for (const auto& [p, digest] : r.digests) {
    INFO("partition " << p);
    CHECK((digest != 0) == used.contains(p));
  }
}

TEST_CASE("replay --from-file: a keyless record, a corrupt file and a used directory are errors") {
  TempDir dir;
  Events ev;
  std::atomic<bool> stop{false};
  FileReplayOptions o;
  o.path = dir.path() + "/keyless.qev";
  const Bytes location = ev.location(1, fb::LocationKind::SubWarehouse, "East");
  {
    auto w = EventFileWriter::create(o.path);
    REQUIRE(w.is_ok());
    REQUIRE(w.value()->append("East", location).is_ok());
    REQUIRE(w.value()->append("", ev.scan_out(1, 1, 1)).is_ok());
    REQUIRE(w.value()->finish().is_ok());
  }
  o.data_dir = dir.path() + "/k";
  auto r = replay_file(o, stop);
  REQUIRE_FALSE(r.is_ok());
  const std::size_t second = kEventFileHeaderBytes + kEventFileRecordHeaderBytes + 4 + location.size();
  CHECK(r.status().message().find(fmt::format("offset {}: record 2 has no key", second)) != std::string::npos);

  o.path = dir.path() + "/missing.qev";
  o.data_dir = dir.path() + "/m";
  r = replay_file(o, stop);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("cannot open") != std::string::npos);

  o.path = dir.path() + "/keyless.qev";
  o.data_dir = dir.path();  // not empty
  r = replay_file(o, stop);
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message().find("is not empty") != std::string::npos);
}

}  // namespace qudao
