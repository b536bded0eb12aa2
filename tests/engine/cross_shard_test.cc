// Shipments between shards (engine/apply.h): the source leg on the shard of HQ's warehouse posts to
// its clearing account and emits the arrival leg through the outbox; the destination's shard applies
// that leg into transit, and its location receives it as any shipment.
#include <doctest/doctest.h>

#include <map>

#include "engine/apply.h"
#include "engine/store.h"
#include "events/shard_key.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

constexpr std::uint64_t kHqWarehouse = 1, kHqStore = 2, kEastWarehouse = 10, kEastStore = 11;

// One shard for region "HQ" (partition 0) and one for "East" (partition 1), fed by ingest as serve
// feeds them (decode, duplicate window, apply).
struct Shards {
  Shard hq{PartitionId{0}};
  Shard east{PartitionId{1}};
  Applier applier;
  Events ev;
  std::int64_t hq_offset = 0, east_offset = 0;
  std::size_t relayed = 0;  // the hq outbox rows already handed to east

  Shards() {
    REQUIRE(feed_hq(ev.location(kHqWarehouse, fb::LocationKind::Warehouse, "HQ")) == RecordOutcome::applied);
    REQUIRE(feed_hq(ev.location(kHqStore, fb::LocationKind::Store, "HQ")) == RecordOutcome::applied);
    REQUIRE(feed_east(ev.location(kEastWarehouse, fb::LocationKind::SubWarehouse, "East")) == RecordOutcome::applied);
    REQUIRE(feed_east(ev.location(kEastStore, fb::LocationKind::Store, "East")) == RecordOutcome::applied);
  }

  RecordOutcome feed_hq(const Bytes& b) { return applier.ingest(hq, Offset{hq_offset++}, b).outcome; }
  RecordOutcome feed_east(const Bytes& b) { return applier.ingest(east, Offset{east_offset++}, b).outcome; }

  Bytes to_region(std::uint64_t shipment, std::uint64_t from, std::uint64_t to, std::string_view region,
                  std::vector<Line> lines, std::uint64_t order = 0) {
    return copy(ev.writer().shipment_dispatched(ev.next(), ShipmentId{shipment}, LocationId{from}, LocationId{to},
                                                OrderId{order}, lines, region));
  }
  Bytes received(std::uint64_t shipment, std::uint64_t at, std::vector<Line> lines) {
    return copy(ev.writer().shipment_received(ev.next(), ShipmentId{shipment}, LocationId{at}, lines));
  }

  // The arrival legs HQ's outbox emitted since the last call (what the relay would send).
  std::vector<OutboxRow> arrivals() {
    std::vector<OutboxRow> out;
    for (; relayed < hq.outbox_pending().size(); ++relayed) {
      const OutboxRow& row = hq.outbox_pending()[relayed];
      if (row.topic == OutboxTopic::events) out.push_back(row);
    }
    return out;
  }

  static std::int64_t qty(const Shard& s, std::uint64_t location, std::uint64_t sku, Bucket b = Bucket::on_hand) {
    return s.balance(Account{SkuId{sku}, LocationId{location}, b}).value;
  }
  static std::int64_t clearing(const Shard& s, std::uint64_t sku) { return qty(s, 0, sku, Bucket::clearing); }
};

Bytes bytes_of(const OutboxRow& row) { return Bytes(row.value.begin(), row.value.end()); }

// Conservation on one shard: for every sku the sum over its accounts is zero.
void check_conserved(const Shard& s) {
  std::map<std::uint64_t, std::int64_t> sums;
  s.for_each_balance([&](const Account& a, Quantity q) { sums[a.sku.value] += q.value; });
  for (const auto& [sku, sum] : sums) {
    INFO("partition " << s.partition().value << " sku " << sku);
    CHECK(sum == 0);
  }
}

}  // namespace

TEST_CASE("cross-shard: the source leg posts on_hand -> clearing and emits the arrival leg keyed to the destination") {
  Shards s;
  REQUIRE(s.feed_hq(s.ev.production(kHqWarehouse, {line(1, 100), line(2, 40)})) == RecordOutcome::applied);
  const Bytes dispatch = s.to_region(900, kHqWarehouse, kEastWarehouse, "East", {line(1, 30), line(2, 5)});
  REQUIRE(s.feed_hq(dispatch) == RecordOutcome::applied);

  CHECK(Shards::qty(s.hq, kHqWarehouse, 1) == 70);
  CHECK(Shards::qty(s.hq, kHqWarehouse, 2) == 35);
  CHECK(Shards::clearing(s.hq, 1) == 30);
  CHECK(Shards::clearing(s.hq, 2) == 5);
  // Nothing is in transit on the source's books: the goods are the destination's to receive.
  CHECK(Shards::qty(s.hq, kEastWarehouse, 1, Bucket::in_transit) == 0);
  check_conserved(s.hq);
  const Shipment* sh = s.hq.shipment(ShipmentId{900});
  REQUIRE(sh != nullptr);
  CHECK(sh->handed_over);
  CHECK_FALSE(sh->received);

  const auto rows = s.arrivals();
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].key == "East");
  const Bytes arrival = bytes_of(rows[0]);
  const Event e = must_decode(arrival);
  REQUIRE(e.type() == fb::Payload::ShipmentTransferred);
  CHECK(e.envelope->schema_version() == 5);
  CHECK(e.envelope->source()->string_view() == "qudao");
  const EventId dispatch_id = must_decode(dispatch).id;
  CHECK(e.id == Applier::arrival_event_id(dispatch_id));
  CHECK_FALSE(e.id == dispatch_id);
  CHECK(e.occurred_at == must_decode(dispatch).occurred_at);
  const fb::ShipmentTransferred& t = *e.envelope->payload_as_ShipmentTransferred();
  CHECK(t.shipment() == 900);
  CHECK(t.from_location() == kHqWarehouse);
  CHECK(t.from_region()->string_view() == "HQ");
  CHECK(t.to_location() == kEastWarehouse);
  CHECK(t.dispatch_event()->hi() == dispatch_id.hi);
  CHECK(t.dispatch_event()->lo() == dispatch_id.lo);
  REQUIRE(t.lines()->size() == 2);
  CHECK(t.lines()->Get(0)->qty() == 30);
  // The record key is the event's own shard key: the region of the location it is about.
  const auto about = event_location(*e.envelope);
  REQUIRE(about.has_value());
  CHECK(about->location == LocationId{kEastWarehouse});
}

TEST_CASE("cross-shard: the arrival leg posts clearing -> in transit there, the clearing nets out, the receipt receives it") {
  Shards s;
  REQUIRE(s.feed_hq(s.ev.production(kHqWarehouse, {line(1, 100)})) == RecordOutcome::applied);
  REQUIRE(s.feed_hq(s.to_region(900, kHqWarehouse, kEastWarehouse, "East", {line(1, 30)})) == RecordOutcome::applied);
  const auto rows = s.arrivals();
  REQUIRE(rows.size() == 1);
  REQUIRE(s.feed_east(bytes_of(rows[0])) == RecordOutcome::applied);

  CHECK(Shards::qty(s.east, kEastWarehouse, 1, Bucket::in_transit) == 30);
  CHECK(Shards::clearing(s.east, 1) == -30);
  check_conserved(s.hq);
  check_conserved(s.east);
  CHECK(Shards::clearing(s.hq, 1) + Shards::clearing(s.east, 1) == 0);

  // The sub-warehouse receives 28 of the 30: the shortage goes to the destination's losses.
  REQUIRE(s.feed_east(s.received(900, kEastWarehouse, {line(1, 28)})) == RecordOutcome::applied);
  CHECK(Shards::qty(s.east, kEastWarehouse, 1) == 28);
  CHECK(Shards::qty(s.east, kEastWarehouse, 1, Bucket::in_transit) == 0);
  CHECK(Shards::qty(s.east, 0, 1, Bucket::losses) == 2);
  CHECK(s.east.counts().anomalies == 1);
  check_conserved(s.east);
  CHECK(Shards::clearing(s.hq, 1) + Shards::clearing(s.east, 1) == 0);
  // And it is East's stock like any other: it ships on to a store of its own shard.
  REQUIRE(s.feed_east(s.ev.dispatch(kEastWarehouse, kEastStore, {line(1, 10)})) == RecordOutcome::applied);
  CHECK(Shards::qty(s.east, kEastStore, 1, Bucket::in_transit) == 10);
  check_conserved(s.east);
}

TEST_CASE("cross-shard: a re-sent arrival leg is a duplicate; a second dispatch of the shipment id is rejected") {
  Shards s;
  REQUIRE(s.feed_hq(s.ev.production(kHqWarehouse, {line(1, 100)})) == RecordOutcome::applied);
  const Bytes dispatch = s.to_region(900, kHqWarehouse, kEastWarehouse, "East", {line(1, 30)});
  REQUIRE(s.feed_hq(dispatch) == RecordOutcome::applied);
  const Bytes arrival = bytes_of(s.arrivals().at(0));
  REQUIRE(s.feed_east(arrival) == RecordOutcome::applied);
  const std::uint64_t digest = s.east.digest();
  CHECK(s.feed_east(arrival) == RecordOutcome::duplicate);
  CHECK(s.east.digest() == digest);
  CHECK(Shards::qty(s.east, kEastWarehouse, 1, Bucket::in_transit) == 30);
  CHECK(s.east.counts().duplicates == 1);

  // A replay of the source leg emits the very same bytes (the arrival id is the dispatch's function).
  Shards replayed;
  REQUIRE(replayed.feed_hq(replayed.ev.production(kHqWarehouse, {line(1, 100)})) == RecordOutcome::applied);
  REQUIRE(replayed.feed_hq(dispatch) == RecordOutcome::applied);
  CHECK(bytes_of(replayed.arrivals().at(0)) == arrival);

  // The source's shipment ended when it left: a second dispatch with its id, or a receipt sent to the
  // source's shard by mistake, is rejected there.
  CHECK(s.feed_hq(s.to_region(900, kHqWarehouse, kEastWarehouse, "East", {line(1, 1)})) == RecordOutcome::rejected);
  CHECK(s.hq.dead_letters().back().rejection.to_string() ==
        "payload.shipment: shipment 900 already exists (already_exists)");
  CHECK(s.feed_hq(s.received(900, kEastWarehouse, {line(1, 30)})) == RecordOutcome::rejected);
  CHECK(s.hq.dead_letters().back().rejection.to_string() ==
        "payload.shipment: shipment 900 left for another region's shard; its receipt is keyed to location 10's region "
        "(invalid_value)");
  CHECK(Shards::clearing(s.hq, 1) == 30);
}

TEST_CASE("cross-shard: an arrival leg sent again after the duplicate window forgot it is a duplicate by its shipment") {
  Shards s;
  REQUIRE(s.feed_hq(s.ev.production(kHqWarehouse, {line(1, 100)})) == RecordOutcome::applied);
  REQUIRE(s.feed_hq(s.to_region(900, kHqWarehouse, kEastWarehouse, "East", {line(1, 30)})) == RecordOutcome::applied);
  const Bytes arrival = bytes_of(s.arrivals().at(0));
  // East remembers only the last 2 event ids.
  Shard east{PartitionId{1}, 2};
  std::int64_t offset = 0;
  auto feed = [&](const Bytes& b) { return s.applier.ingest(east, Offset{offset++}, b).outcome; };
  REQUIRE(feed(s.ev.location(kEastWarehouse, fb::LocationKind::SubWarehouse, "East")) == RecordOutcome::applied);
  REQUIRE(feed(arrival) == RecordOutcome::applied);
  REQUIRE(feed(s.received(900, kEastWarehouse, {line(1, 30)})) == RecordOutcome::applied);
  for (std::uint64_t id = 20; id < 23; ++id) {
    REQUIRE(feed(s.ev.location(id, fb::LocationKind::Store, "East")) == RecordOutcome::applied);
  }
  REQUIRE_FALSE(east.seen_entry(must_decode(arrival).id).has_value());
  const std::uint64_t digest = east.digest();
  CHECK(feed(arrival) == RecordOutcome::duplicate);
  CHECK(east.digest() == digest);
  CHECK(east.counts().duplicates == 1);
  CHECK(Shards::qty(east, kEastWarehouse, 1) == 30);
  CHECK(Shards::clearing(east, 1) == -30);
  // Another dispatch's arrival that reuses the shipment id (ids must be unique across regions) is not.
  const Line five[] = {line(1, 5)};
  const Bytes other = copy(s.ev.writer().shipment_transferred(s.ev.next(), ShipmentId{900}, LocationId{kHqWarehouse},
                                                              "HQ", LocationId{kEastWarehouse}, five, EventId{7, 999}));
  CHECK(feed(other) == RecordOutcome::rejected);
  CHECK(east.dead_letters().back().rejection.to_string() ==
        "payload.shipment: shipment 900 already exists on this shard (shipment ids must be unique across regions) "
        "(already_exists)");
}

TEST_CASE("cross-shard: a destination the source cannot ship to is rejected with its field and reason") {
  Shards s;
  REQUIRE(s.feed_hq(s.ev.production(kHqWarehouse, {line(1, 100)})) == RecordOutcome::applied);
  REQUIRE(s.feed_hq(s.ev.order(1, kHqStore, {PricedLine{SkuId{1}, Quantity{1}, Fen{100}}})) == RecordOutcome::applied);
  const std::uint64_t digest = s.hq.digest();
  auto rejection = [&](const Bytes& b) {
    REQUIRE(s.feed_hq(b) == RecordOutcome::rejected);
    return s.hq.dead_letters().back().rejection.to_string();
  };
  // No region named: as before, a location this shard does not know.
  CHECK(rejection(s.to_region(901, kHqWarehouse, kEastWarehouse, "", {line(1, 1)})) ==
        "payload.to_location: location 10 is not defined on this shard (a shipment to another region names that "
        "region in payload.to_region) (unknown_location)");
  // The source's own region: it would be defined here.
  CHECK(rejection(s.to_region(902, kHqWarehouse, 77, "HQ", {line(1, 1)})) ==
        "payload.to_location: location 77 is not defined in region \"HQ\" (payload.to_region), which is "
        "from_location's own (unknown_location)");
  // A location of this shard named with another region.
  CHECK(rejection(s.to_region(903, kHqWarehouse, kHqStore, "East", {line(1, 1)})) ==
        "payload.to_region: location 2 is in region \"HQ\", not \"East\" (invalid_value)");
  // Goods leave for another region from a warehouse, with what it has, and for no order.
  CHECK(rejection(s.to_region(904, kHqStore, kEastWarehouse, "East", {line(1, 1)})) ==
        "payload.from_location: goods leave for another region from a warehouse, location 2 is a Store "
        "(wrong_location_kind)");
  CHECK(rejection(s.to_region(905, kHqWarehouse, kEastWarehouse, "East", {line(1, 60), line(1, 41)})) ==
        "payload.lines: location 1 has 100 of sku 1 on hand, the event needs 101 (insufficient_stock)");
  CHECK(rejection(s.to_region(906, kHqWarehouse, kEastWarehouse, "East", {line(1, 1)}, 1)) ==
        "payload.order: a shipment to another region (payload.to_region \"East\") fulfils no order: order 1 lives "
        "on its store's shard; ship to the region's sub-warehouse with order 0 (invalid_value)");
  CHECK(s.hq.digest() == digest);
  CHECK(s.arrivals().empty());
  CHECK(Shards::clearing(s.hq, 1) == 0);

  // A region named for a location of this shard that is in it: an ordinary shipment.
  REQUIRE(s.feed_hq(s.to_region(907, kHqWarehouse, kHqStore, "HQ", {line(1, 3)})) == RecordOutcome::applied);
  CHECK(Shards::qty(s.hq, kHqStore, 1, Bucket::in_transit) == 3);
  CHECK(s.arrivals().empty());
}

TEST_CASE("cross-shard: an arrival for a location the destination does not know is dead-lettered there, the goods stay in clearing") {
  Shards s;
  REQUIRE(s.feed_hq(s.ev.production(kHqWarehouse, {line(1, 100)})) == RecordOutcome::applied);
  REQUIRE(s.feed_hq(s.to_region(900, kHqWarehouse, 12, "East", {line(1, 30)})) == RecordOutcome::applied);
  const Bytes arrival = bytes_of(s.arrivals().at(0));
  REQUIRE(s.feed_east(arrival) == RecordOutcome::rejected);
  CHECK(s.east.dead_letters().back().rejection.to_string() ==
        "payload.to_location: location 12 is not defined on this shard (the goods wait in region \"HQ\"'s clearing "
        "account; define it and re-drive this record) (unknown_location)");
  CHECK(Shards::clearing(s.hq, 1) + Shards::clearing(s.east, 1) == 30);  // what `qudao audit` reports
  // Once the location is defined, the re-driven record (same bytes) is applied: a rejected event never
  // entered the duplicate window.
  REQUIRE(s.feed_east(s.ev.location(12, fb::LocationKind::SubWarehouse, "East")) == RecordOutcome::applied);
  REQUIRE(s.feed_east(arrival) == RecordOutcome::applied);
  CHECK(Shards::qty(s.east, 12, 1, Bucket::in_transit) == 30);
  CHECK(Shards::clearing(s.hq, 1) + Shards::clearing(s.east, 1) == 0);
  check_conserved(s.east);
}

TEST_CASE("cross-shard: the arrival leg is an outbox row committed with the source leg, and survives a restart") {
  TempDir dir;
  Shards s;
  REQUIRE(s.feed_hq(s.ev.production(kHqWarehouse, {line(1, 100)})) == RecordOutcome::applied);
  REQUIRE(s.feed_hq(s.to_region(900, kHqWarehouse, kEastWarehouse, "East", {line(1, 30)})) == RecordOutcome::applied);
  const Bytes arrival = bytes_of(s.arrivals().at(0));
  {
    auto store = Store::open(StoreOptions{dir.path(), "t"});
    REQUIRE(store.is_ok());
    Shard* shards[] = {&s.hq, &s.east};
    REQUIRE(store.value()->commit(shards).is_ok());
  }
  auto store = Store::open(StoreOptions{dir.path(), "t"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load();
  REQUIRE(loaded.is_ok());
  const Shard& hq = loaded.value().at(0);
  CHECK(Shards::clearing(hq, 1) == 30);
  CHECK(hq.digest() == s.hq.digest());
  const Shipment* sh = hq.shipment(ShipmentId{900});
  REQUIRE(sh != nullptr);
  CHECK(sh->handed_over);
  auto rows = store.value()->outbox();
  REQUIRE(rows.is_ok());
  REQUIRE(rows.value()[0].size() == 1);
  CHECK(rows.value()[0][0].topic == OutboxTopic::events);
  CHECK(rows.value()[0][0].key == "East");
  CHECK(bytes_of(rows.value()[0][0]) == arrival);
}

}  // namespace qudao
