// The query API served over real objects with no Kafka broker: a RocksDB store in a temp dir holding
// committed state, a pipeline opened over it (its source points at librdkafka's in-process mock
// cluster and is never polled; Pipeline::open only needs it to exist), the projection rebuilt from
// the store, the test tokens, and the HTTP server on a free port. Plus raw-socket helpers for
// sending what a well-behaved client would not, and the access-table check (check_access). ServedStore
// serves any store so (tests/connectors/forecast_api_test.cc serves a replayed one).
// Tests may append events of their own to partition 0 (`more_p0`) and 1 (`more_p1`), applied after the ones below.
//
// The ledger: partition 0 holds East (1: sub-warehouse, 2: store) and West (3: sub-warehouse,
// 4: store) and one dead letter, then the channel's parties, targets, payments and a store claimed
// twice (see below); partition 1 holds North (5: sub-warehouse).
#pragma once

#include <poll.h>
#include <sys/socket.h>

#include "connectors/kafka.h"
#include "connectors/pipeline.h"
#include "connectors/query_api.h"
#include "tests/process.h"
#include "tests/support.h"

namespace qudao::test {

inline constexpr std::uint64_t kEastWarehouse = 1, kEastStore = 2, kWestWarehouse = 3, kWestStore = 4,
                               kNorthWarehouse = 5, kNoSuchLocation = 999;
inline constexpr std::uint64_t kEastAgent = 100, kEastDistributor = 101, kEastRival = 102, kWestDistributor = 201,
                               kNoSuchParty = 999'999;

// A store served as `qudao serve` serves it: an embedded broker for the pipeline's source (never
// polled: Pipeline::open only needs it to exist), the pipeline opened over the store, the projection
// rebuilt from it, the test tokens and the HTTP server on a free port.
struct ServedStore {
  // Call once `store` holds the committed state.
  void serve(const char* topic, HttpOptions http) {
    http.port = 0;
    auto b = EmbeddedBroker::start();
    REQUIRE(b.is_ok());
    broker = b.take();
    auto s = KafkaSource::open(KafkaSettings{broker->bootstrap(), {}}, topic, "qudao-test");
    REQUIRE(s.is_ok());
    source = s.take();
    auto p = Pipeline::open(*store, *source, stock, PipelineOptions{});
    REQUIRE(p.is_ok());
    pipeline = p.take();
    auto t = AccessTokens::parse(test_tokens_json(), "test tokens");
    REQUIRE_MESSAGE(t.is_ok(), t.status().message());
    tokens.replace(t.take());
    auto h = HttpServer::start(http, make_query_api(stock, *pipeline, *store, tokens));
    REQUIRE(h.is_ok());
    server = h.take();
  }
  std::uint16_t port() const { return server->port(); }

  TempDir dir;
  std::unique_ptr<Store> store;
  std::unique_ptr<EmbeddedBroker> broker;
  std::unique_ptr<KafkaSource> source;
  StockProjection stock;
  std::unique_ptr<Pipeline> pipeline;
  ServedTokens tokens;
  std::unique_ptr<HttpServer> server;  // last: stops before what its handler reads
};

// The expected status of one request for each caller (the access tables of the endpoint tests).
struct AccessRow {
  std::string target;
  unsigned hq, east, west, metrics, ingest, none;
};

inline void check_access(std::uint16_t port, const std::vector<AccessRow>& rows) {
  const std::map<std::string, std::string> tokens{{"hq", kTestHqToken}, {"east", kTestEastToken},
                                                  {"west", kTestWestToken}, {"metrics", kTestMetricsToken},
                                                  {"ingest", kTestIngestToken}, {"none", ""}};
  for (const AccessRow& r : rows) {
    for (const auto& [name, expected] : {std::pair{"hq", r.hq}, std::pair{"east", r.east}, std::pair{"west", r.west},
                                         std::pair{"metrics", r.metrics}, std::pair{"ingest", r.ingest},
                                         std::pair{"none", r.none}}) {
      INFO("GET " << r.target << " as " << name);
      CHECK(http_get(port, r.target, tokens.at(name)).status == expected);
    }
  }
}

struct ApiFixture : ServedStore {
  explicit ApiFixture(HttpOptions http = {}, const std::vector<Bytes>& more_p0 = {}, const std::vector<Bytes>& more_p1 = {}) {
    http.port = 0;
    Events ev;
    Applier applier;
    Shard p0{PartitionId{0}}, p1{PartitionId{1}};
    std::int64_t o0 = 0, o1 = 0;
    auto feed = [&](Shard& shard, std::int64_t& offset, const Bytes& b) { applier.ingest(shard, Offset{offset++}, b); };
    feed(p0, o0, ev.location(kEastWarehouse, fb::LocationKind::SubWarehouse, "East"));
    feed(p0, o0, ev.location(kEastStore, fb::LocationKind::Store, "East"));
    feed(p0, o0, ev.location(kWestWarehouse, fb::LocationKind::SubWarehouse, "West"));
    feed(p0, o0, ev.location(kWestStore, fb::LocationKind::Store, "West"));
    feed(p1, o1, ev.location(kNorthWarehouse, fb::LocationKind::SubWarehouse, "North"));
    feed(p0, o0, ev.production(kEastWarehouse, {line(1, 100), line(2, 40)}));
    feed(p0, o0, ev.production(kWestWarehouse, {line(1, 7)}));
    feed(p1, o1, ev.production(kNorthWarehouse, {line(3, 11)}));
    feed(p0, o0, ev.dispatch(kEastWarehouse, kEastStore, {line(1, 30)}));
    feed(p0, o0, ev.receive(kEastStore, {line(1, 30)}));
    feed(p0, o0, ev.dispatch(kWestWarehouse, kWestStore, {line(1, 2)}));
    feed(p0, o0, ev.receive(kWestStore, {line(1, 2)}));
    feed(p0, o0, ev.production(kNoSuchLocation, {line(1, 1)}));  // rejected: the one dead letter
    REQUIRE(p0.counts().rejected == 1);
    // The channel (engine/channel.h): East agent 100 with distributors 101 and 102, West distributor
    // 201; store 2 is 101's (102 claims it too: a conflict), store 4 is 201's. In January 2026, 101
    // reaches tier 1 of its policy (50 % of target) and 201 reaches 200 % of its target.
    EventWriter& w = ev.writer();
    feed(p0, o0, copy(w.party_registered(ev.next(), kEastAgent, fb::PartyKind::Agent, 0, "east agent", "East", "", LocationId{0})));
    for (std::uint64_t d : {kEastDistributor, kEastRival}) {
      feed(p0, o0, copy(w.party_registered(ev.next(), d, fb::PartyKind::Distributor, kEastAgent, "east d", "East", "", LocationId{0})));
    }
    feed(p0, o0, copy(w.party_registered(ev.next(), kWestDistributor, fb::PartyKind::Distributor, 0, "west d", "West", "", LocationId{0})));
    feed(p0, o0, copy(w.store_assigned(ev.next(), LocationId{kEastStore}, kEastDistributor)));
    feed(p0, o0, copy(w.store_assigned(ev.next(), LocationId{kEastStore}, kEastRival)));
    feed(p0, o0, copy(w.store_assigned(ev.next(), LocationId{kWestStore}, kWestDistributor)));
    feed(p0, o0, copy(w.target_set(ev.next(), kEastDistributor, "2026-01", Fen{100'000})));
    const std::array<RebateTierBp, 2> tiers{{{5'000, 100}, {10'000, 300}}};
    feed(p0, o0, copy(w.rebate_policy_set(ev.next(), kEastDistributor, "2026-01", tiers)));
    feed(p0, o0, copy(w.target_set(ev.next(), kWestDistributor, "2026-01", Fen{10'000})));
    feed(p0, o0, ev.order(1, kEastStore, {PricedLine{SkuId{1}, Quantity{10}, Fen{5'000}}}));
    feed(p0, o0, ev.paid(1, 50'000));
    feed(p0, o0, ev.order(2, kWestStore, {PricedLine{SkuId{1}, Quantity{4}, Fen{5'000}}}));
    feed(p0, o0, ev.paid(2, 20'000));
    feed(p0, o0, copy(w.rebate_adjusted(ev.next(), kEastDistributor, "2026-01", Fen{-200}, "display fee")));
    feed(p0, o0, copy(w.feedback_recorded(ev.next(), LocationId{kEastStore}, kEastDistributor, 4, "")));
    REQUIRE(p0.counts().rejected == 1);
    for (const Bytes& b : more_p0) feed(p0, o0, b);
    for (const Bytes& b : more_p1) feed(p1, o1, b);

    auto opened = Store::open(StoreOptions{dir.path(), kTopic});
    REQUIRE(opened.is_ok());
    store = opened.take();
    std::vector<Shard*> shards{&p0, &p1};
    REQUIRE(store->commit(shards).is_ok());
    serve(kTopic, http);
  }

  static constexpr const char* kTopic = "qudao.events";
};

using Clock = std::chrono::steady_clock;
using boost::asio::ip::tcp;

inline tcp::socket raw_connect(boost::asio::io_context& io, std::uint16_t port) {
  tcp::socket s(io);
  s.connect({boost::asio::ip::make_address("127.0.0.1"), port});
  return s;
}

inline void raw_send(tcp::socket& s, std::string_view bytes) { boost::asio::write(s, boost::asio::buffer(bytes)); }

struct Received {
  std::string bytes;
  bool closed = false;  // the server closed (or reset) the connection
  unsigned status() const {  // of the first response in `bytes`; 0 if none
    if (bytes.size() < 12 || !bytes.starts_with("HTTP/1.1 ")) return 0;
    return static_cast<unsigned>(std::stoul(bytes.substr(9, 3)));
  }
};

// Reads until the server closes the connection or `deadline` passes.
inline Received read_until_closed(tcp::socket& s, Clock::time_point deadline) {
  Received r;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return r;
    pollfd p{s.native_handle(), POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) continue;
    char buf[4096];
    const ssize_t got = ::recv(s.native_handle(), buf, sizeof buf, 0);
    if (got <= 0) {  // 0: an orderly close; < 0: a reset
      r.closed = true;
      return r;
    }
    r.bytes.append(buf, static_cast<std::size_t>(got));
  }
}

// Sends `request` on a new connection and reads until the server closes it (requests here carry
// Connection: close, or provoke an answer after which the server closes).
inline Received raw_exchange(std::uint16_t port, std::string_view request,
                             std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
  boost::asio::io_context io;
  tcp::socket s = raw_connect(io, port);
  raw_send(s, request);
  return read_until_closed(s, Clock::now() + timeout);
}

}  // namespace qudao::test
