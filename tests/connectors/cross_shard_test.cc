// Shipments between shards against the real broker started by tools/kafka.sh (engine/apply.h,
// connectors/relay.h): HQ's warehouse, keyed "HQ", ships to a sub-warehouse of a region on another
// partition. `qudao serve` applies the source leg on HQ's partition, its relay writes the arrival
// leg to the events topic keyed by the region, serve applies it on the region's partition, and the
// sub-warehouse's receipt there receives it. A kill -9 in the middle of the relay's sends leaves
// every arrival leg on the topic once, and applied once.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "connectors/kafka.h"
#include "engine/apply.h"
#include "events/shard_key.h"
#include "tests/process.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;
using std::chrono::seconds;

namespace {

constexpr int kPartitions = 4;
constexpr std::uint64_t kHqWarehouse = 1, kSubWarehouse = 10;

PartitionId partition_of(std::string_view region) {
  return partition_for_key({reinterpret_cast<const std::uint8_t*>(region.data()), region.size()}, kPartitions);
}

struct Env {
  std::string bin = required_env("QUDAO_BIN");
  KafkaSettings kafka;
  std::string topic = fmt::format("qudao-xshard-{}-{}", getpid(),
                                  std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'007);
  TempDir dir;
  std::string tokens_file = write_tokens_file(dir.path());
  std::uint16_t port = free_port();
  std::string region;  // the destination: a region on another partition than "HQ"
  std::unique_ptr<KafkaProducer> producer;
  Events ev;

  Env() {
    kafka.brokers = required_env("QUDAO_TEST_BROKERS");
    for (const char* r : {"East", "West", "North", "South", "Central"}) {
      if (partition_of(r) != partition_of("HQ")) {
        region = r;
        break;
      }
    }
    REQUIRE(!region.empty());
    REQUIRE(ensure_topic(kafka, topic, kPartitions, seconds(30)).is_ok());
    auto p = KafkaProducer::open(kafka);
    REQUIRE(p.is_ok());
    producer = p.take();
  }

  void produce(std::string_view key, const Bytes& value) {
    REQUIRE(producer->produce(topic, {reinterpret_cast<const std::uint8_t*>(key.data()), key.size()}, value).is_ok());
  }
  void flush() { REQUIRE(producer->flush(seconds(30)).is_ok()); }

  // The two warehouses, and `units` of skus 1 and 2 produced at HQ's.
  void define_world(std::int64_t units) {
    produce("HQ", ev.location(kHqWarehouse, fb::LocationKind::Warehouse, "HQ"));
    produce(region, ev.location(kSubWarehouse, fb::LocationKind::SubWarehouse, region.c_str()));
    produce("HQ", ev.production(kHqWarehouse, {line(1, units), line(2, units)}));
  }
  Bytes transfer(std::uint64_t shipment, std::vector<Line> lines) {
    return copy(ev.writer().shipment_dispatched(ev.next(), ShipmentId{shipment}, LocationId{kHqWarehouse},
                                                LocationId{kSubWarehouse}, OrderId{0}, lines, region));
  }

  std::unique_ptr<Child> serve(const std::vector<std::string>& env = {}) {
    return std::make_unique<Child>(
        std::vector<std::string>{bin, "serve", "-b", kafka.brokers, "-t", topic, "--data", dir.path() + "/data",
                                 "--http-port", std::to_string(port), "--commit-interval-ms", "20", "--tokens",
                                 tokens_file},
        dir.path() + "/serve.log", env);
  }

  // What a failed wait prints: the sub-warehouse's stock, the status and serve's log.
  std::string diagnosis() {
    std::ifstream in(dir.path() + "/serve.log");
    std::stringstream log;
    log << in.rdbuf();
    return fmt::format("stock {}\nstatus {}\nserve.log:\n{}",
                       http_get(port, fmt::format("/v1/stock?location={}", kSubWarehouse)).body,
                       http_get(port, "/v1/status").body, log.str());
  }

  json status() {
    const HttpReply r = http_get(port, "/v1/status");
    return r.status == 200 ? r.json() : json();
  }

  // The sub-warehouse's levels of `sku` (on_hand, in_transit), or nothing before it is known.
  std::optional<std::pair<std::int64_t, std::int64_t>> levels(std::uint64_t location, std::uint64_t sku) {
    const HttpReply r = http_get(port, fmt::format("/v1/stock?location={}&sku={}", location, sku));
    if (r.status != 200) return std::nullopt;
    const json body = r.json();
    for (const json& row : body["skus"]) {
      if (row["sku"] == sku) return std::pair{row["on_hand"].get<std::int64_t>(), row["in_transit"].get<std::int64_t>()};
    }
    return std::pair<std::int64_t, std::int64_t>{0, 0};
  }

  // The arrival legs on the events topic, by event id: (partition, count).
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::pair<int, int>> arrivals_on_topic() {
    auto records = read_topic(kafka, topic, seconds(60));
    REQUIRE_MESSAGE(records.is_ok(), records.status().message());
    std::map<std::pair<std::uint64_t, std::uint64_t>, std::pair<int, int>> out;
    for (const TopicRecord& r : records.value()) {
      Bytes b(r.record.value.begin(), r.record.value.end());
      const Decoded d = decode(b);
      const Event* e = std::get_if<Event>(&d);
      if (e == nullptr || e->type() != fb::Payload::ShipmentTransferred) continue;
      CHECK(r.record.header("qudao-source-topic") == topic);
      CHECK(r.record.header("qudao-source-partition") == std::to_string(partition_of("HQ").value));
      auto& [partition, count] = out[{e->id.hi, e->id.lo}];
      partition = r.partition.value;
      ++count;
    }
    return out;
  }
};

}  // namespace

TEST_CASE("cross-shard: a dispatch from HQ is applied, relayed to the events topic, applied on the region's shard and received there") {
  Env env;
  env.define_world(100);
  const Bytes dispatch = env.transfer(900, {line(1, 30), line(2, 5)});
  env.produce("HQ", dispatch);
  env.flush();
  auto serve = env.serve();

  // The arrival leg reaches the sub-warehouse: in transit there, nothing at HQ but what is left.
  REQUIRE_MESSAGE(eventually([&] { return env.levels(kSubWarehouse, 1) == std::pair<std::int64_t, std::int64_t>{0, 30}; },
                             seconds(60)),
                  "the arrival leg was not applied: " << env.diagnosis());
  CHECK(env.levels(kSubWarehouse, 2) == std::pair<std::int64_t, std::int64_t>{0, 5});
  CHECK(env.levels(kHqWarehouse, 1) == std::pair<std::int64_t, std::int64_t>{70, 0});
  // The status is published at each commit: 4 produced + the arrival leg.
  REQUIRE(eventually([&] { return env.status()["totals"]["consumed"] == 5; }, seconds(30)));
  json s = env.status();
  CHECK(s["totals"]["applied"] == 5);
  CHECK(s["outbox"]["delivered_events"] == 1);

  // The region's warehouse system receives it, short of one unit of sku 2: a loss, on its shard.
  env.produce(env.region, copy(env.ev.writer().shipment_received(env.ev.next(), ShipmentId{900},
                                                                  LocationId{kSubWarehouse},
                                                                  std::vector<Line>{line(1, 30), line(2, 4)})));
  env.flush();
  REQUIRE(eventually([&] { return env.levels(kSubWarehouse, 1) == std::pair<std::int64_t, std::int64_t>{30, 0}; },
                     seconds(60)));
  CHECK(env.levels(kSubWarehouse, 2) == std::pair<std::int64_t, std::int64_t>{4, 0});
  REQUIRE(eventually([&] { return env.status()["totals"]["consumed"] == 6; }, seconds(30)));
  const HttpReply anomalies = http_get(env.port, fmt::format("/v1/anomalies?location={}", kSubWarehouse));
  REQUIRE(anomalies.status == 200);
  CHECK(anomalies.body.find("receipt_shortage") != std::string::npos);
  s = env.status();
  CHECK(s["totals"]["applied"] == 6);
  CHECK(s["totals"]["rejected"] == 0);

  // The arrival leg is on the region's partition once, with the id derived from the dispatch.
  const auto arrivals = env.arrivals_on_topic();
  REQUIRE(arrivals.size() == 1);
  const EventId id = Applier::arrival_event_id(must_decode(dispatch).id);
  REQUIRE(arrivals.count({id.hi, id.lo}) == 1);
  CHECK(arrivals.at({id.hi, id.lo}) == std::pair{partition_of(env.region).value, 1});

  serve->kill(SIGTERM);
  REQUIRE(serve->wait() == 0);
  // The audit: each partition conserves stock, the clearing accounts net out, a replay from Kafka
  // (which reads the arrival leg from the topic) reaches the same state.
  auto [rc, out] = run({env.bin, "audit", "-b", env.kafka.brokers, "-t", env.topic, "--data", env.dir.path() + "/data"},
                       env.dir.path());
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find("ok    clearing accounts net out across partitions: 0 units") != std::string::npos);
  CHECK(out.find("PASS") != std::string::npos);

  // A restart sends nothing again: the relay delivered its row, and the store no longer holds it.
  serve = env.serve();
  REQUIRE(eventually([&] { return !env.status().is_null(); }, seconds(60)));
  serve->kill(SIGTERM);
  REQUIRE(serve->wait() == 0);
  CHECK(env.arrivals_on_topic().size() == 1);
}

TEST_CASE("cross-shard: crash_during_outbox_send of arrival legs leaves each on the topic once and applied once") {
  Env env;
  constexpr int kTransfers = 200, kFirstWave = 100;
  env.define_world(kTransfers * 3);
  std::int64_t sent = 0;
  auto produce_transfers = [&](int from, int to) {
    for (int i = from; i < to; ++i) {
      const std::int64_t qty = 1 + i % 3;
      env.produce("HQ", env.transfer(1000 + i, {line(1, qty)}));
      sent += qty;
    }
    env.flush();
  };
  produce_transfers(0, kFirstWave);
  const std::uint64_t produced = 3 + kTransfers;

  // The relay kills the process in the middle of its 160th send (the arrival legs are its only
  // rows): the first wave's 100 are delivered by then (their delivered marks may not be committed:
  // the restart's tail check must find them), the second wave's first 60 queued, not all sent.
  auto crashing = env.serve({"QUDAO_CRASH_POINT=outbox_relay_mid_send:" + std::to_string(kFirstWave + 60)});
  REQUIRE_MESSAGE(eventually([&] {
                    const json s = env.status();
                    return !s.is_null() && s.contains("outbox") && s["outbox"]["delivered_events"] == kFirstWave;
                  }, seconds(60)),
                  "the first wave was not relayed: " << env.diagnosis());
  produce_transfers(kFirstWave, kTransfers);
  const std::optional<int> rc = crashing->wait_for(seconds(120));
  REQUIRE_MESSAGE(rc.has_value(), "serve did not reach its crash point; see " << env.dir.path() << "/serve.log");
  CHECK(*rc == 128 + SIGKILL);
  const auto before_restart = env.arrivals_on_topic();
  MESSAGE(before_restart.size() << " arrival legs were on the topic at the crash");
  CHECK(before_restart.size() >= static_cast<std::size_t>(kFirstWave));
  CHECK(before_restart.size() < static_cast<std::size_t>(kTransfers));

  auto serve = env.serve();
  REQUIRE_MESSAGE(eventually(
                      [&] {
                        const json s = env.status();
                        return !s.is_null() && s["totals"]["consumed"].get<std::uint64_t>() >= produced + kTransfers &&
                               s["outbox"]["undelivered"] == 0;
                      },
                      seconds(120)),
                  "not every arrival leg was applied: " << env.diagnosis());
  const json s = env.status();
  MESSAGE("the restart's tail check found " << s["outbox"]["found_sent"] << " arrival legs already sent");
  CHECK(s["totals"]["consumed"] == produced + kTransfers);
  CHECK(s["totals"]["applied"] == produced + kTransfers);
  CHECK(s["totals"]["duplicates"] == 0);
  CHECK(s["totals"]["rejected"] == 0);
  CHECK(env.levels(kSubWarehouse, 1) == std::pair<std::int64_t, std::int64_t>{0, sent});
  CHECK(env.levels(kHqWarehouse, 1) == std::pair<std::int64_t, std::int64_t>{kTransfers * 3 - sent, 0});

  // Every arrival leg exactly once on the topic: the restart's tail check found what the crashed
  // relay had sent, and sent only the rest.
  const auto arrivals = env.arrivals_on_topic();
  CHECK(arrivals.size() == static_cast<std::size_t>(kTransfers));
  for (const auto& [id, where] : arrivals) {
    INFO("arrival " << id.first << "/" << id.second);
    CHECK(where.second == 1);
    CHECK(where.first == partition_of(env.region).value);
  }
  serve->kill(SIGTERM);
  REQUIRE(serve->wait() == 0);
  auto [audit_rc, out] =
      run({env.bin, "audit", "-b", env.kafka.brokers, "-t", env.topic, "--data", env.dir.path() + "/data"},
          env.dir.path());
  INFO(out);
  CHECK(audit_rc == 0);
}

}  // namespace qudao
