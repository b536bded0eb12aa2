// The outbox: what the engine asks warehouses to ship when an order is paid, what it dead-letters,
// and how the rows are stored until the relay has delivered them.
#include <doctest/doctest.h>

#include "engine/apply.h"
#include "engine/store.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

constexpr std::uint64_t kCityWarehouse = 1, kStore = 2, kOtherCityWarehouse = 3, kHq = 4, kDistributor = 500;

struct Ledger {
  Shard shard{PartitionId{3}};
  Applier applier;
  Events ev;
  std::int64_t offset = 0;

  RecordOutcome feed(const Bytes& b) { return applier.ingest(shard, Offset{offset++}, b).outcome; }
  // The DispatchRequested rows emitted since the last call.
  std::vector<fb::DispatchRequestedT> dispatches() {
    std::vector<fb::DispatchRequestedT> out;
    for (; seen_ < shard.outbox_pending().size(); ++seen_) {
      const OutboxRow& row = shard.outbox_pending()[seen_];
      if (row.topic != OutboxTopic::dispatch) continue;
      const Bytes bytes(row.value.begin(), row.value.end());
      const Event e = must_decode(bytes);
      REQUIRE(e.type() == fb::Payload::DispatchRequested);
      CHECK(row.key == std::to_string(e.envelope->payload_as_DispatchRequested()->warehouse()));
      fb::DispatchRequestedT t;
      e.envelope->payload_as_DispatchRequested()->UnPackTo(&t);
      out.push_back(t);
    }
    return out;
  }

 private:
  std::size_t seen_ = 0;
};

const std::vector<PricedLine> kSix{PricedLine{SkuId{1}, Quantity{6}, Fen{100}}};

}  // namespace

TEST_CASE("outbox: a paid order is sent to the warehouse in the store's city that has its stock") {
  Ledger l;
  REQUIRE(l.feed(l.ev.location(kCityWarehouse, fb::LocationKind::SubWarehouse, "East", "Hangzhou")) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.location(kOtherCityWarehouse, fb::LocationKind::SubWarehouse, "East", "Ningbo")) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.location(kStore, fb::LocationKind::Store, "East", "Hangzhou")) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.production(kOtherCityWarehouse, {line(1, 100)})) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.production(kCityWarehouse, {line(1, 6)})) == RecordOutcome::applied);

  REQUIRE(l.feed(l.ev.order(7, kStore, kSix)) == RecordOutcome::applied);
  CHECK(l.dispatches().empty());  // placed, not paid: nothing to ship yet
  REQUIRE(l.feed(l.ev.paid(7, 300)) == RecordOutcome::applied);
  CHECK(l.dispatches().empty());  // half paid
  REQUIRE(l.feed(l.ev.paid(7, 300)) == RecordOutcome::applied);
  const auto d = l.dispatches();
  REQUIRE(d.size() == 1);
  CHECK(d[0].order == 7);
  CHECK(d[0].store == kStore);
  CHECK(d[0].warehouse == kCityWarehouse);
  REQUIRE(d[0].lines.size() == 1);
  CHECK(d[0].lines[0].sku() == 1);
  CHECK(d[0].lines[0].qty() == 6);
}

TEST_CASE("outbox: without a city warehouse that has the stock, HQ ships; warehouse 0 when HQ is on another shard") {
  Ledger l;
  REQUIRE(l.feed(l.ev.location(kCityWarehouse, fb::LocationKind::SubWarehouse, "East", "Hangzhou")) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.location(kStore, fb::LocationKind::Store, "East", "Hangzhou")) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.production(kCityWarehouse, {line(1, 5)})) == RecordOutcome::applied);  // one short
  REQUIRE(l.feed(l.ev.order(7, kStore, kSix)) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.paid(7, 600)) == RecordOutcome::applied);
  auto d = l.dispatches();
  REQUIRE(d.size() == 1);
  CHECK(d[0].warehouse == 0);

  REQUIRE(l.feed(l.ev.location(kHq, fb::LocationKind::Warehouse, "East", "Shanghai")) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.order(8, kStore, kSix)) == RecordOutcome::applied);
  REQUIRE(l.feed(l.ev.paid(8, 600)) == RecordOutcome::applied);
  d = l.dispatches();
  REQUIRE(d.size() == 1);
  CHECK(d[0].warehouse == kHq);
}

TEST_CASE("outbox: a proxy order ships from where it holds its reservation; the request's id is the same on replay") {
  auto run = [] {
    Ledger l;
    REQUIRE(l.feed(l.ev.location(kCityWarehouse, fb::LocationKind::SubWarehouse, "East", "Hangzhou")) == RecordOutcome::applied);
    REQUIRE(l.feed(l.ev.location(kStore, fb::LocationKind::Store, "East", "Hangzhou")) == RecordOutcome::applied);
    REQUIRE(l.feed(l.ev.production(kCityWarehouse, {line(1, 6)})) == RecordOutcome::applied);
    REQUIRE(l.feed(l.ev.proxy_order(7, kStore, kDistributor, kCityWarehouse, l.ev.time_after(100), kSix)) ==
            RecordOutcome::applied);
    // All six are reserved: the free stock is 0, yet the order's own reservation covers it.
    REQUIRE(l.feed(l.ev.paid(7, 600)) == RecordOutcome::applied);
    const auto d = l.dispatches();
    REQUIRE(d.size() == 1);
    CHECK(d[0].warehouse == kCityWarehouse);
    const OutboxRow& row = l.shard.outbox_pending().back();
    return row.value;
  };
  CHECK(run() == run());  // same log, same bytes (and so the same event id)
}

TEST_CASE("outbox: a DispatchRequested on the events topic is rejected; every rejection is a dead-letter row") {
  Ledger l;
  Events other;
  const Bytes request = copy(other.writer().dispatch_requested(other.next(), OrderId{7}, LocationId{kStore},
                                                               LocationId{kCityWarehouse}, std::vector{line(1, 1)}));
  REQUIRE(l.feed(request) == RecordOutcome::rejected);
  REQUIRE(l.feed(Bytes{1, 2, 3}) == RecordOutcome::rejected);
  REQUIRE(l.shard.outbox_pending().size() == 2);
  const OutboxRow& first = l.shard.outbox_pending()[0];
  CHECK(first.topic == OutboxTopic::dead_letters);
  CHECK(first.value == std::string(request.begin(), request.end()));
  auto header = [](const OutboxRow& r, const std::string& name) {
    for (const auto& [n, v] : r.headers) if (n == name) return v;
    return std::string();
  };
  CHECK(header(first, "qudao-reason") == "invalid_value");
  CHECK(header(first, "qudao-field") == "payload_type");
  CHECK(header(first, "qudao-source-offset") == "0");
  CHECK(header(l.shard.outbox_pending()[1], "qudao-reason") == "malformed");
  CHECK(header(l.shard.outbox_pending()[1], "qudao-source-offset") == "1");
  CHECK(l.shard.outbox_pending()[1].seq == 1);
}

TEST_CASE("outbox: rows are committed with the state and stay in the store until the relay has delivered them") {
  TempDir dir;
  Ledger l;
  REQUIRE(l.feed(Bytes{1}) == RecordOutcome::rejected);
  REQUIRE(l.feed(Bytes{2}) == RecordOutcome::rejected);
  REQUIRE(l.feed(Bytes{3}) == RecordOutcome::rejected);
  {
    auto store = Store::open(StoreOptions{dir.path(), "t"});
    REQUIRE(store.is_ok());
    Shard* shards[] = {&l.shard};
    PreparedCommit c = store.value()->prepare(shards);
    CHECK(c.outbox.size() == 3);
    REQUIRE(store.value()->write(c).is_ok());
    CHECK(l.shard.outbox_pending().empty());
    auto rows = store.value()->outbox();
    REQUIRE(rows.is_ok());
    REQUIRE(rows.value()[3].size() == 3);
    CHECK(rows.value()[3][2].seq == 2);
    CHECK(rows.value()[3][2].value == std::string(1, '\3'));
    CHECK(rows.value()[3][2].created_ms > 0);

    l.shard.mark_relayed(1);  // the relay has delivered seqs 0 and 1
    REQUIRE(store.value()->commit(shards).is_ok());
  }
  auto store = Store::open(StoreOptions{dir.path(), "t"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load();
  REQUIRE(loaded.is_ok());
  CHECK(loaded.value().at(3).outbox_next_seq() == 3);
  auto rows = store.value()->outbox();
  REQUIRE(rows.is_ok());
  REQUIRE(rows.value()[3].size() == 1);
  CHECK(rows.value()[3][0].seq == 2);
}

}  // namespace qudao
