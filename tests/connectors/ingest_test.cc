// Broker test: POST /v1/events into `qudao serve` against the real Apache Kafka broker that
// tools/kafka.sh starts. Posted events come back through the topic into the ledger; a refused batch
// leaves the topic untouched; a batch posted twice is applied once.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "connectors/kafka.h"
#include "tests/connectors/api_fixture.h"
#include "tests/connectors/event_json.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;

namespace {

constexpr int kPartitions = 4;

struct Env {
  std::string bin = required_env("QUDAO_BIN");
  std::string brokers = required_env("QUDAO_TEST_BROKERS");
  std::string topic = fmt::format("qudao-ingest-{}-{}", getpid(),
                                  std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'007);
  TempDir dir;
  std::string tokens_file = write_tokens_file(dir.path());
  std::uint16_t port = free_port();

  KafkaSettings settings() const { return KafkaSettings{brokers, {}}; }

  std::unique_ptr<Child> serve() {
    return std::make_unique<Child>(
        std::vector<std::string>{bin, "serve", "-b", brokers, "-t", topic, "--data", dir.path() + "/data",
                                 "--http-port", std::to_string(port), "--commit-interval-ms", "20",
                                 "--http-body-bytes-max", "65536", "--tokens", tokens_file},
        dir.path() + "/serve.log");
  }

  HttpReply post(const json& body, const std::string& token = kTestIngestToken) {
    return http_post(port, "/v1/events", body.dump(), token);
  }

  json totals() {
    const HttpReply r = http_get(port, "/v1/status");
    return r.status == 200 ? r.json()["totals"] : json();
  }
  bool consumed(std::uint64_t n) {
    const json t = totals();
    return !t.is_null() && t["consumed"] == n;
  }

  std::int64_t records_on_topic() const {
    std::int64_t n = 0;
    for (int p = 0; p < kPartitions; ++p) {
      auto marks = watermarks(settings(), topic, PartitionId{p}, std::chrono::seconds(30));
      REQUIRE_MESSAGE(marks.is_ok(), marks.status().message());
      n += marks.value().second.value;
    }
    return n;
  }
};

json ids(std::initializer_list<std::uint64_t> ns) {
  json out = json::array();
  for (std::uint64_t n : ns) out.push_back(id_text(n));
  return out;
}

}  // namespace

TEST_CASE("ingest: events posted to serve are produced to the real broker, applied once, and a refused batch produces nothing") {
  Env env;
  REQUIRE(ensure_topic(env.settings(), env.topic, kPartitions, std::chrono::seconds(30)).is_ok());
  auto serve = env.serve();
  REQUIRE_MESSAGE(eventually([&] { return http_get(env.port, "/health", "").status == 200; }, std::chrono::seconds(30)),
                  serve->log());

  // Locations first: the server keys later events by the regions it knows for their locations.
  const HttpReply defined = env.post(json::array({location_json(1, 1, "SubWarehouse", "East"),
                                                  location_json(2, 2, "Store", "East")}));
  REQUIRE_MESSAGE(defined.status == 202, defined.body);
  CHECK(defined.json()["event_ids"] == ids({1, 2}));
  REQUIRE_MESSAGE(eventually([&] { return env.consumed(2); }, std::chrono::seconds(30)), serve->log());

  const json movements = json::array(
      {production_json(3, 1, 7, 100),
       event_json(4, "ShipmentDispatched",
                  {{"shipment", 1}, {"from_location", 1}, {"to_location", 2}, {"lines", {{{"sku", 7}, {"qty", 30}}}}}),
       event_json(5, "ShipmentReceived", {{"shipment", 1}, {"location", 2}, {"lines", {{{"sku", 7}, {"qty", 30}}}}}),
       scan_out_json(6, 2, 7, 5)});
  const HttpReply moved = env.post(movements);
  REQUIRE_MESSAGE(moved.status == 202, moved.body);
  CHECK(moved.json()["event_ids"] == ids({3, 4, 5, 6}));
  REQUIRE_MESSAGE(eventually([&] { return env.consumed(6); }, std::chrono::seconds(30)), serve->log());
  CHECK(env.totals()["applied"] == 6);
  auto store_stock = [&] {
    const HttpReply r = http_get(env.port, "/v1/stock?location=2&sku=7");
    REQUIRE(r.status == 200);
    return r.json()["skus"][0]["on_hand"].get<std::int64_t>();
  };
  CHECK(store_stock() == 25);
  const std::int64_t on_topic = env.records_on_topic();
  CHECK(on_topic == 6);

  // Every record carries the headers the contract asks producers for.
  {
    auto records = read_topic(env.settings(), env.topic, std::chrono::seconds(30));
    REQUIRE(records.is_ok());
    REQUIRE(records.value().size() == 6);
    for (const TopicRecord& r : records.value()) {
      CHECK(r.record.header("qudao-schema-version") == "1");
      CHECK(r.record.header("content-type") == "application/x-qudao-flatbuffer");
    }
  }

  // One bad event: 400 naming it, and the topic does not move.
  const HttpReply bad = env.post(json::array({scan_out_json(20, 2, 7, 1), scan_out_json(21, 2, 7, -5)}));
  REQUIRE(bad.status == 400);
  CHECK(bad.json()["rejected"] == json::array({json{{"index", 1}, {"field", "payload.qty"}, {"reason", "invalid_value"},
                                                    {"message", "must be > 0, got -5"}}}));
  // A body over --http-body-bytes-max: 413 from its declared length, before it is read.
  const Received over = raw_exchange(env.port, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                               "Authorization: Bearer " + std::string(kTestIngestToken) +
                                                   "\r\nContent-Length: 1000000\r\n\r\n[");
  CHECK(over.status() == 413);
  CHECK(env.post(scan_out_json(22, 2, 7, 1), "").status == 401);
  CHECK(env.post(scan_out_json(22, 2, 7, 1), kTestHqToken).status == 403);
  CHECK(env.records_on_topic() == on_topic);

  // The same batch again: accepted, produced again, and counted as duplicates; nothing applied twice.
  const HttpReply again = env.post(movements);
  REQUIRE(again.status == 202);
  CHECK(again.json()["event_ids"] == ids({3, 4, 5, 6}));
  REQUIRE_MESSAGE(eventually([&] { return env.consumed(10); }, std::chrono::seconds(30)), serve->log());
  const json t = env.totals();
  CHECK(t["applied"] == 6);
  CHECK(t["duplicates"] == 4);
  CHECK(t["rejected"] == 0);
  CHECK(store_stock() == 25);

  // A clean stop flushes the ingest's producer and exits 0.
  serve->kill(SIGTERM);
  CHECK(serve->wait() == 0);
}

}  // namespace qudao
