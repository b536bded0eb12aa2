#include <doctest/doctest.h>

#include "engine/apply.h"
#include "engine/store.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

struct Feeder {
  Applier applier;
  std::int64_t offset = 0;
  RecordOutcome operator()(Shard& shard, const Bytes& b) { return applier.ingest(shard, Offset{offset++}, b).outcome; }
};

}  // namespace

TEST_CASE("dedup: a re-sent event (same id, same bytes) is a duplicate and changes nothing") {
  Events ev;
  Feeder feed;
  Shard shard{PartitionId{0}};
  REQUIRE(feed(shard, ev.location(1, fb::LocationKind::SubWarehouse, "East")) == RecordOutcome::applied);
  const Bytes production = ev.production(1, {line(1, 10)});
  REQUIRE(feed(shard, production) == RecordOutcome::applied);
  const std::uint64_t digest = shard.digest();

  CHECK(feed(shard, production) == RecordOutcome::duplicate);
  CHECK(shard.balance(Account{SkuId{1}, LocationId{1}, Bucket::on_hand}) == Quantity{10});
  CHECK(shard.digest() == digest);
  const OutcomeCounts& c = shard.counts();
  CHECK(c.duplicates == 1);
  CHECK(c.consumed == 3);
  CHECK(c.consumed == c.applied + c.duplicates + c.rejected);
  CHECK(shard.next_offset() == Offset{3});
}

TEST_CASE("dedup: the same id with different bytes is rejected as a conflict") {
  Events ev;
  Feeder feed;
  Shard shard{PartitionId{0}};
  REQUIRE(feed(shard, ev.location(1, fb::LocationKind::SubWarehouse, "East")) == RecordOutcome::applied);
  const Header h = ev.next();
  const Bytes first = copy(ev.writer().production_completed(h, 1, LocationId{1}, std::vector{line(1, 10)}));
  const Bytes changed = copy(ev.writer().production_completed(h, 1, LocationId{1}, std::vector{line(1, 99)}));
  REQUIRE(feed(shard, first) == RecordOutcome::applied);
  CHECK(feed(shard, changed) == RecordOutcome::rejected);
  REQUIRE(shard.dead_letters().size() == 1);
  CHECK(shard.dead_letters()[0].rejection.reason == RejectReason::conflicting_duplicate);
  CHECK(shard.dead_letters()[0].rejection.field == "event_id");
  CHECK(shard.balance(Account{SkuId{1}, LocationId{1}, Bucket::on_hand}) == Quantity{10});
}

TEST_CASE("dedup: a rejected event is not remembered, so re-driving it after a fix applies it") {
  Events ev;
  Feeder feed;
  Shard shard{PartitionId{0}};
  const Bytes early = ev.production(1, {line(1, 10)});  // names a location not defined yet
  CHECK(feed(shard, early) == RecordOutcome::rejected);
  REQUIRE(feed(shard, ev.location(1, fb::LocationKind::SubWarehouse, "East")) == RecordOutcome::applied);
  CHECK(feed(shard, early) == RecordOutcome::applied);
  CHECK(shard.balance(Account{SkuId{1}, LocationId{1}, Bucket::on_hand}) == Quantity{10});
}

TEST_CASE("dedup: the window keeps the newest ids; an id older than the window is applied again") {
  Events ev;
  Feeder feed;
  Shard shard{PartitionId{0}, 2};
  const Bytes a = ev.location(1, fb::LocationKind::SubWarehouse, "East");
  const Bytes b = ev.location(2, fb::LocationKind::Store, "East");
  const Bytes c = ev.location(3, fb::LocationKind::Store, "East");
  REQUIRE(feed(shard, a) == RecordOutcome::applied);
  REQUIRE(feed(shard, b) == RecordOutcome::applied);
  REQUIRE(feed(shard, c) == RecordOutcome::applied);
  CHECK(feed(shard, c) == RecordOutcome::duplicate);
  CHECK(feed(shard, b) == RecordOutcome::duplicate);
  CHECK(feed(shard, a) == RecordOutcome::applied);  // out of the window: documented limit
}

TEST_CASE("dedup: the window survives a restart, and evicted ids stay evicted") {
  TempDir dir;
  Events ev;
  const Bytes a = ev.location(1, fb::LocationKind::SubWarehouse, "East");
  const Bytes b = ev.location(2, fb::LocationKind::Store, "East");
  const Bytes c = ev.location(3, fb::LocationKind::Store, "East");
  {
    Feeder feed;
    Shard shard{PartitionId{0}, 2};
    for (const Bytes* e : {&a, &b, &c}) REQUIRE(feed(shard, *e) == RecordOutcome::applied);
    auto store = Store::open(StoreOptions{dir.path(), "events"});
    REQUIRE(store.is_ok());
    std::vector<Shard*> shards{&shard};
    REQUIRE(store.value()->commit(shards).is_ok());
  }
  auto store = Store::open(StoreOptions{dir.path(), "events"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load(100);  // a larger window now: the evicted id must not come back
  REQUIRE(loaded.is_ok());
  Shard& shard = loaded.value().at(0);
  Feeder feed;
  feed.offset = 3;
  CHECK(feed(shard, c) == RecordOutcome::duplicate);
  CHECK(feed(shard, b) == RecordOutcome::duplicate);
  CHECK(feed(shard, a) == RecordOutcome::applied);
  // And the new window order continues after the restored one.
  CHECK(shard.seen_entry(EventId{7, 1})->seq > shard.seen_entry(EventId{7, 3})->seq);
}

}  // namespace qudao
