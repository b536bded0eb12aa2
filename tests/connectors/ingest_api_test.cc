// POST /v1/events over the query API's HTTP server, producing to librdkafka's in-process cluster
// (the broker test tests/connectors/ingest_test.cc does the same against Apache Kafka through
// `qudao serve`). The ledger is ApiFixture's: East 1 (sub-warehouse) and 2 (store), West 3 and 4,
// North 5.
#include <doctest/doctest.h>

#include "connectors/ingest_api.h"
#include "tests/connectors/api_fixture.h"
#include "tests/connectors/event_json.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;

namespace {

constexpr const char* kEastIngestToken = "qudao-test-ingest-east-token-0123";

struct IngestFixture {
  IngestFixture() {
    REQUIRE(api.broker->create_topic(ApiFixture::kTopic, 4).is_ok());
    auto t = AccessTokens::parse(
        json{{"tokens",
              {{{"name", "hq"}, {"role", "hq"}, {"token", kTestHqToken}},
               {{"name", "east"}, {"role", "regional"}, {"regions", {"East"}}, {"token", kTestEastToken}},
               {{"name", "ingest"}, {"role", "ingest"}, {"token", kTestIngestToken}},
               {{"name", "ingest-east"}, {"role", "ingest"}, {"regions", {"East"}}, {"token", kEastIngestToken}}}}}
            .dump(),
        "ingest test tokens");
    REQUIRE_MESSAGE(t.is_ok(), t.status().message());
    tokens.replace(t.take());
    auto i = EventIngest::open(settings(), IngestOptions{ApiFixture::kTopic, std::chrono::seconds(10)}, api.stock);
    REQUIRE(i.is_ok());
    ingest = i.take();
    HttpOptions http;
    http.port = 0;
    http.body_bytes_max = 64 * 1024;
    auto h = HttpServer::start(http, make_query_api(api.stock, *api.pipeline, *api.store, tokens, ingest.get()));
    REQUIRE(h.is_ok());
    server = h.take();
  }
  ~IngestFixture() {
    server->stop();
    ingest.reset();
  }

  KafkaSettings settings() const { return KafkaSettings{api.broker->bootstrap(), {}}; }

  HttpReply post(const json& body, const std::string& token = kTestIngestToken, const std::string& query = "") {
    return http_post(server->port(), "/v1/events" + query, body.dump(), token);
  }

  // Records on the topic now, over every partition.
  std::int64_t records_on_topic() const {
    std::int64_t n = 0;
    for (int p = 0; p < 4; ++p) {
      auto marks = watermarks(settings(), ApiFixture::kTopic, PartitionId{p}, std::chrono::seconds(10));
      REQUIRE(marks.is_ok());
      n += marks.value().second.value;
    }
    return n;
  }

  ApiFixture api;
  ServedTokens tokens;
  std::unique_ptr<EventIngest> ingest;
  std::unique_ptr<HttpServer> server;
};

// The first `n` records of the topic with their keys and headers, partition by partition.
struct Consumed {
  PartitionId partition;
  std::string key;
  Bytes value;
};
std::vector<Consumed> consume(const KafkaSettings& settings, std::size_t n) {
  auto source = KafkaSource::open(settings, ApiFixture::kTopic, "ingest-test-reader");
  REQUIRE(source.is_ok());
  REQUIRE(source.value()->assign({PartitionId{0}, PartitionId{1}, PartitionId{2}, PartitionId{3}}, {}).is_ok());
  std::vector<Consumed> out;
  const auto deadline = Clock::now() + std::chrono::seconds(10);
  while (out.size() < n && Clock::now() < deadline) {
    auto polled = source.value()->poll(100, std::chrono::milliseconds(100));
    REQUIRE(polled.is_ok());
    for (const Record& r : polled.value()) {
      out.push_back({r.partition, std::string(r.key.begin(), r.key.end()), Bytes(r.value.begin(), r.value.end())});
    }
  }
  return out;
}

}  // namespace

TEST_CASE("ingest: a batch is produced keyed by its locations' regions and answered 202 with the ids in body order") {
  IngestFixture f;
  const HttpReply r = f.post(json::array({scan_out_json(1, kEastStore, 1, 2), scan_out_json(2, kWestStore, 1, 1),
                                          location_json(3, 77, "Store", "North")}));
  REQUIRE_MESSAGE(r.status == 202, r.body);
  CHECK(r.json() == json{{"event_ids", {id_text(1), id_text(2), id_text(3)}}});
  const std::vector<Consumed> got = consume(f.settings(), 3);
  REQUIRE(got.size() == 3);
  std::map<std::string, std::string> key_of;  // event id -> key
  for (const Consumed& c : got) {
    const Event e = must_decode(c.value);
    key_of[fmt::format("{:016x}{:016x}", e.id.hi, e.id.lo)] = c.key;
    // On the partition Java's and qudao's producers choose for the key (murmur2).
    CHECK(c.partition == partition_for_key({reinterpret_cast<const std::uint8_t*>(c.key.data()), c.key.size()}, 4));
  }
  CHECK(key_of[id_text(1)] == "East");   // the region the server knows for store 2
  CHECK(key_of[id_text(2)] == "West");
  CHECK(key_of[id_text(3)] == "North");  // a LocationDefined is keyed by its own region
  CHECK(f.ingest->counters().requests_accepted == 1);
  CHECK(f.ingest->counters().events_delivered == 3);
}

TEST_CASE("ingest: /metrics counts the requests by outcome and the events acknowledged") {
  IngestFixture f;
  REQUIRE(f.post(json::array({scan_out_json(1, kEastStore, 1, 2), scan_out_json(2, kWestStore, 1, 1)})).status == 202);
  REQUIRE(f.post(scan_out_json(3, kEastStore, 1, -5)).status == 400);
  REQUIRE(f.post(scan_out_json(4, kEastStore, 1, 1)).status == 202);
  const HttpReply r = http_get(f.server->port(), "/metrics", kTestHqToken);
  REQUIRE(r.status == 200);
  for (const char* line : {"qudao_ingest_requests_total{outcome=\"accepted\"} 2\n",
                           "qudao_ingest_requests_total{outcome=\"rejected\"} 1\n",
                           "qudao_ingest_requests_total{outcome=\"timed_out\"} 0\n",
                           "qudao_ingest_requests_total{outcome=\"failed\"} 0\n", "qudao_ingest_events_total 3\n",
                           "# TYPE qudao_ingest_requests_total counter\n", "# TYPE qudao_ingest_events_total counter\n"}) {
    CHECK_MESSAGE(r.body.find(line) != std::string::npos, "missing: " << line);
  }
}

TEST_CASE("ingest: one invalid event fails the whole batch with its index, field and reason; nothing is produced") {
  IngestFixture f;
  const HttpReply r = f.post(json::array({scan_out_json(1, kEastStore, 1, 2), scan_out_json(2, kEastStore, 1, -5),
                                          scan_out_json(3, kEastStore, 1, 1)}));
  REQUIRE(r.status == 400);
  const json body = r.json();
  CHECK(body["error"] == "1 of 3 events failed validation; nothing was produced");
  REQUIRE(body["rejected"].size() == 1);
  CHECK(body["rejected"][0] == json{{"index", 1}, {"field", "payload.qty"}, {"reason", "invalid_value"},
                                    {"message", "must be > 0, got -5"}});
  CHECK(f.records_on_topic() == 0);

  // Schema errors name the problem; every failing event is listed.
  json unknown_field = scan_out_json(4, kEastStore, 1, 1);
  unknown_field["payload"]["qtty"] = 1;
  const HttpReply r2 = f.post(json::array({unknown_field, json::array(), scan_out_json(5, kEastStore, 0, 1)}));
  REQUIRE(r2.status == 400);
  const json b2 = r2.json();
  REQUIRE(b2["rejected"].size() == 3);
  CHECK(b2["rejected"][0]["index"] == 0);
  CHECK(b2["rejected"][0]["reason"] == "malformed");
  CHECK(b2["rejected"][0]["message"].get<std::string>().find("qtty") != std::string::npos);
  CHECK(b2["rejected"][1] == json{{"index", 1}, {"field", ""}, {"reason", "malformed"}, {"message", "expected an event object"}});
  CHECK(b2["rejected"][2]["field"] == "payload.sku");
  CHECK(f.records_on_topic() == 0);
  CHECK(f.ingest->counters().requests_refused == 2);
}

TEST_CASE("ingest: a body that is not JSON, not events, empty or over the batch limit is refused whole") {
  IngestFixture f;
  auto raw = [&](const std::string& body) { return http_post(f.server->port(), "/v1/events", body, kTestIngestToken); };
  const HttpReply not_json = raw(R"({"event_id": )");
  CHECK(not_json.status == 400);
  CHECK(not_json.json()["error"].get<std::string>().starts_with("body: not valid JSON: parse error at line 1, column 14"));
  CHECK(raw("42").status == 400);
  CHECK(raw("[]").json()["error"] == "body: an empty array; nothing to produce");
  CHECK(raw(std::string(100, '[') + std::string(100, ']')).json()["error"] == "body: JSON nested deeper than 32");
  json many = json::array();
  for (std::uint64_t i = 1; i <= kIngestBatchEventsMax + 1; ++i) many.push_back(json{{"a", i}});
  const auto answer = std::get<HttpResponse>(validate_ingest(
      HttpRequest{"POST", "/v1/events", {}, "", "application/json", many.dump()}, *f.tokens.authenticate(kTestIngestToken),
      f.api.stock));
  CHECK(answer.status == 413);
  CHECK(answer.body == R"({"error":"body: 1001 events; at most 1000 per request"})");
  // Over the server's body limit (64 KiB here): 413 from the declared length, before the body is read.
  const Received over = raw_exchange(f.server->port(),
                                     "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                                     "Authorization: Bearer " + std::string(kTestIngestToken) +
                                         "\r\nContent-Length: 10000000\r\n\r\n[");
  CHECK(over.status() == 413);
  CHECK(f.records_on_topic() == 0);
}

TEST_CASE("ingest: 415 without application/json, 405 with Allow: POST for another method, 401 and 403 by token") {
  IngestFixture f;
  const std::string one = scan_out_json(1, kEastStore, 1, 1).dump();
  CHECK(http_post(f.server->port(), "/v1/events", one, kTestIngestToken, "text/plain").status == 415);
  CHECK(http_post(f.server->port(), "/v1/events", one, kTestIngestToken, "").status == 415);
  CHECK(http_post(f.server->port(), "/v1/events", one, kTestIngestToken, "Application/JSON; charset=utf-8").status == 202);
  const HttpReply get = http_get(f.server->port(), "/v1/events", kTestIngestToken);
  CHECK(get.status == 405);
  CHECK(get.header("Allow") == "POST");
  const HttpReply anonymous = http_post(f.server->port(), "/v1/events", one, "");
  CHECK(anonymous.status == 401);
  CHECK(anonymous.header("WWW-Authenticate") == R"(Bearer realm="qudao")");
  CHECK(http_post(f.server->port(), "/v1/events", one, "no-such-token-0123456789").status == 401);
  CHECK(http_post(f.server->port(), "/v1/events", one, kTestHqToken).status == 403);   // reading all is not writing
  CHECK(http_post(f.server->port(), "/v1/events", one, kTestEastToken).status == 403);
  // An ingest token reads nothing, and POST is only for /v1/events.
  CHECK(http_get(f.server->port(), "/v1/stock/regions", kTestIngestToken).status == 403);
  CHECK(http_post(f.server->port(), "/v1/stock/regions", "{}", kTestHqToken).status == 405);
  CHECK(f.records_on_topic() == 1);
}

TEST_CASE("ingest: the key is ?region=, a location's own region, or the region the server knows for its location") {
  IngestFixture f;
  // Location 900 is not defined: without ?region= there is no key.
  const HttpReply unknown = f.post(scan_out_json(1, 900, 1, 1));
  REQUIRE(unknown.status == 400);
  CHECK(unknown.json()["rejected"][0]["field"] == "key");
  CHECK(unknown.json()["rejected"][0]["message"] ==
        "no shard key: payload.store 900 is not a location this server knows yet; give ?region=REGION");
  const HttpReply paid = f.post(event_json(2, "OrderPaid", {{"order", 5}, {"payer", 2}, {"amount_fen", 100}}));
  REQUIRE(paid.status == 400);
  CHECK(paid.json()["rejected"][0]["message"] == "no shard key: a OrderPaid event names no location; give ?region=REGION");
  CHECK(f.post(scan_out_json(1, 900, 1, 1), kTestIngestToken, "?region=East").status == 202);
  // A known location keyed to another region would reach a shard without it.
  const HttpReply miskeyed = f.post(scan_out_json(3, kWestStore, 1, 1), kTestIngestToken, "?region=East");
  REQUIRE(miskeyed.status == 400);
  CHECK(miskeyed.json()["rejected"][0]["field"] == "payload.store");
  CHECK(miskeyed.json()["rejected"][0]["message"].get<std::string>().starts_with(
      "location 4 is in region \"West\", not \"East\" (the key)"));
  // A LocationDefined keyed by another region than its own (the rule of `qudao produce`).
  const HttpReply moved = f.post(location_json(4, 78, "Store", "North"), kTestIngestToken, "?region=East");
  REQUIRE(moved.status == 400);
  CHECK(moved.json()["rejected"][0]["field"] == "key");
  CHECK(f.post(json{{"x", 1}}, kTestIngestToken, "?regio=East").status == 400);
  CHECK(f.records_on_topic() == 1);
}

TEST_CASE("ingest: a rebate settlement is accepted under ?region=, and one that settles nothing names its field") {
  IngestFixture f;
  json settle = event_json(1, "RebateSettled", {{"party", 101}, {"period", "2026-01"}, {"amount_fen", 150'000},
                                                {"payment_reference", "FIN-2026-02-000042"}});
  settle["schema_version"] = kSchemaVersion;
  const HttpReply unkeyed = f.post(settle);
  REQUIRE(unkeyed.status == 400);
  CHECK(unkeyed.json()["rejected"][0]["message"] == "no shard key: a RebateSettled event names no location; give ?region=REGION");
  const HttpReply accepted = f.post(settle, kTestIngestToken, "?region=East");
  CHECK(accepted.status == 202);
  json nothing = settle;
  nothing["event_id"]["lo"] = 2;
  nothing["payload"]["amount_fen"] = 0;
  const HttpReply refused = f.post(nothing, kTestIngestToken, "?region=East");
  REQUIRE(refused.status == 400);
  CHECK(refused.json()["rejected"][0]["field"] == "payload.amount_fen");
  CHECK(refused.json()["rejected"][0]["reason"] == "invalid_value");
  CHECK(f.records_on_topic() == 1);
}

TEST_CASE("ingest: a token with regions writes only within them; other regions' locations look unknown") {
  IngestFixture f;
  CHECK(f.post(scan_out_json(1, kEastStore, 1, 1), kEastIngestToken).status == 202);
  CHECK(f.post(location_json(2, 79, "Store", "East"), kEastIngestToken).status == 202);  // a new East location
  const HttpReply west = f.post(scan_out_json(3, kWestStore, 1, 1), kEastIngestToken);
  const HttpReply unknown = f.post(scan_out_json(3, 900, 1, 1), kEastIngestToken, "?region=East");
  const HttpReply west_keyed_east = f.post(scan_out_json(3, kWestStore, 1, 1), kEastIngestToken, "?region=East");
  REQUIRE(west.status == 403);
  REQUIRE(unknown.status == 403);
  REQUIRE(west_keyed_east.status == 403);
  // West's store and a location that does not exist get the same answer.
  CHECK(west.json()["rejected"][0]["message"] == "location 4 is not a location this server knows in the regions of token \"ingest-east\"");
  CHECK(west_keyed_east.json()["rejected"][0]["message"] == west.json()["rejected"][0]["message"]);
  CHECK(unknown.json()["rejected"][0]["message"] == "location 900 is not a location this server knows in the regions of token \"ingest-east\"");
  const HttpReply unknown_unkeyed = f.post(scan_out_json(3, 900, 1, 1), kEastIngestToken);
  REQUIRE(unknown_unkeyed.status == 403);
  CHECK(unknown_unkeyed.json()["rejected"][0]["message"] == unknown.json()["rejected"][0]["message"]);
  CHECK(f.post(scan_out_json(3, kEastStore, 1, 1), kEastIngestToken, "?region=West").status == 403);
  CHECK(f.post(location_json(4, 80, "Store", "West"), kEastIngestToken).status == 403);
  // A dispatch from an East warehouse into a West store moves goods into West: refused.
  const HttpReply into_west = f.post(event_json(5, "ShipmentDispatched",
                                                {{"shipment", 1}, {"from_location", kEastWarehouse},
                                                 {"to_location", kWestStore}, {"lines", {{{"sku", 1}, {"qty", 1}}}}}),
                                     kEastIngestToken);
  REQUIRE(into_west.status == 403);
  CHECK(into_west.json()["rejected"][0]["field"] == "payload.to_location");
  // One forbidden event refuses the batch.
  CHECK(f.post(json::array({scan_out_json(6, kEastStore, 1, 1), scan_out_json(7, kWestStore, 1, 1)}), kEastIngestToken)
            .status == 403);
  // The unscoped ingest token writes anywhere.
  CHECK(f.post(scan_out_json(8, kWestStore, 1, 1)).status == 202);
  CHECK(f.records_on_topic() == 3);
}

TEST_CASE("ingest: a broker that does not acknowledge in time gets 503 with the ids and a note that re-posting is safe") {
  ApiFixture api;
  auto parsed = AccessTokens::parse(test_tokens_json(), "test tokens");
  REQUIRE(parsed.is_ok());
  const ServedTokens tokens(parsed.take());
  // Nothing listens on the port of a socket that was bound and closed: no broker ever answers.
  const std::uint16_t nobody = free_port();
  auto ingest = EventIngest::open(KafkaSettings{fmt::format("127.0.0.1:{}", nobody), {}},
                                  IngestOptions{ApiFixture::kTopic, std::chrono::milliseconds(500)}, api.stock);
  REQUIRE(ingest.is_ok());
  HttpOptions http;
  http.port = 0;
  auto server = HttpServer::start(http, make_query_api(api.stock, *api.pipeline, *api.store, tokens, ingest.value().get()));
  REQUIRE(server.is_ok());
  const auto sent = Clock::now();
  const HttpReply r = http_post(server.value()->port(), "/v1/events", scan_out_json(1, kEastStore, 1, 1).dump(),
                                kTestIngestToken);
  const auto waited = Clock::now() - sent;
  REQUIRE(r.status == 503);
  CHECK(r.header("Retry-After") == "1");
  CHECK(r.json()["event_ids"] == json::array({id_text(1)}));
  const std::string error = r.json()["error"];
  CHECK(error.find("posting the same events again is safe") != std::string::npos);
  CHECK(waited >= std::chrono::milliseconds(400));
  CHECK(waited < std::chrono::seconds(5));
  CHECK(ingest.value()->counters().requests_timed_out == 1);
  CHECK(ingest.value()->counters().requests_failed == 0);
  const std::string metrics = http_get(server.value()->port(), "/metrics", kTestMetricsToken).body;
  CHECK(metrics.find("qudao_ingest_requests_total{outcome=\"timed_out\"} 1\n") != std::string::npos);
  CHECK(metrics.find("qudao_ingest_events_total 0\n") != std::string::npos);
  server.value()->stop();
  ingest.value().reset();
}

}  // namespace qudao
