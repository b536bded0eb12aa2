#include <doctest/doctest.h>

#include <deque>
#include <map>
#include <random>

#include "engine/apply.h"
#include "engine/dedup_window.h"
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

// Three events in order, a, b and c.
struct ThreeEvents {
  Events ev;
  Bytes a = ev.location(1, fb::LocationKind::SubWarehouse, "East");
  Bytes b = ev.location(2, fb::LocationKind::Store, "East");
  Bytes c = ev.location(3, fb::LocationKind::Store, "East");
};

// Applies `events` (each must apply) to a shard with a window of `window_events`, commits it to a
// store in `dir` in one commit, and loads that store back with a window of `load_window_events`.
std::map<std::int32_t, Shard> applied_committed_loaded(const TempDir& dir, std::size_t window_events,
                                                       std::initializer_list<const Bytes*> events,
                                                       std::size_t load_window_events) {
  {
    Feeder feed;
    Shard shard{PartitionId{0}, window_events};
    for (const Bytes* e : events) REQUIRE(feed(shard, *e) == RecordOutcome::applied);
    auto store = Store::open(StoreOptions{dir.path(), "events"});
    REQUIRE(store.is_ok());
    std::vector<Shard*> shards{&shard};
    REQUIRE(store.value()->commit(shards).is_ok());
  }
  auto store = Store::open(StoreOptions{dir.path(), "events"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load(load_window_events);
  REQUIRE(loaded.is_ok());
  return loaded.take();
}

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
  const ThreeEvents ev;
  const Bytes &a = ev.a, &b = ev.b, &c = ev.c;
  // A larger window after the restart: the evicted id must not come back.
  auto loaded = applied_committed_loaded(dir, 2, {&a, &b, &c}, 100);
  Shard& shard = loaded.at(0);
  Feeder feed;
  feed.offset = 3;
  CHECK(feed(shard, c) == RecordOutcome::duplicate);
  CHECK(feed(shard, b) == RecordOutcome::duplicate);
  CHECK(feed(shard, a) == RecordOutcome::applied);
  // And the new window order continues after the restored one.
  CHECK(shard.seen_entry(EventId{7, 1})->seq > shard.seen_entry(EventId{7, 3})->seq);
}

TEST_CASE("dedup: an id applied again after it left the window is remembered across a restart") {
  TempDir dir;
  const ThreeEvents ev;
  const Bytes &a = ev.a, &b = ev.b, &c = ev.c;
  // The second a is out of the window of 2, so applied again; the one stored segment holds a twice.
  auto loaded = applied_committed_loaded(dir, 2, {&a, &b, &c, &a}, 100);
  Shard& shard = loaded.at(0);
  Feeder feed;
  feed.offset = 4;
  CHECK(feed(shard, a) == RecordOutcome::duplicate);  // its second application is in the window
  CHECK(feed(shard, c) == RecordOutcome::duplicate);
  CHECK(feed(shard, b) == RecordOutcome::applied);
}

// The window against the plainest model of it: a queue of the last N (id, hash, seq), searched
// from the newest. Ids are drawn from a small range so that lookups hit, miss, and ids recur after
// they left the window; windows small and large enough to wrap the ring and grow the index.
TEST_CASE("dedup window: holds exactly the last N ids with their hashes and seqs, whatever the wraps") {
  for (std::size_t n : {0u, 1u, 2u, 3u, 7u, 64u, 1000u}) {
    CAPTURE(n);
    DedupWindow w(n);
    std::deque<std::pair<EventId, SeenEvent>> model;
    std::uint64_t seq = 0;
    std::mt19937_64 rng(n);
    auto model_find = [&](const EventId& id) -> std::optional<SeenEvent> {
      for (auto it = model.rbegin(); it != model.rend(); ++it) {
        if (it->first == id) return it->second;
      }
      return std::nullopt;
    };
    for (int step = 0; step < 20'000; ++step) {
      const EventId id{rng() % 3, rng() % (3 * n + 5)};
      const auto expected = model_find(id);
      const auto got = w.find(id);
      REQUIRE(got.has_value() == expected.has_value());
      if (got) {
        CHECK(got->seq == expected->seq);
        CHECK(got->bytes_hash == expected->bytes_hash);
        continue;  // a known id is never pushed again (the shard calls it a duplicate)
      }
      const std::uint64_t hash = rng();
      CHECK(w.push(id, hash));
      model.emplace_back(id, SeenEvent{hash, seq++});
      if (model.size() > n) model.pop_front();
      REQUIRE(w.size() == model.size());
      REQUIRE(w.next_seq() == seq);
      REQUIRE(w.oldest_seq() == (model.empty() ? seq : model.front().second.seq));
    }
  }
}

TEST_CASE("dedup window: a restore drops what had left the stored window and continues its seqs") {
  DedupWindow w(4);
  w.continue_at(10);
  for (std::uint64_t i = 0; i < 6; ++i) (void)w.push(EventId{1, i}, 100 + i);  // seqs 10..15; 10 and 11 drop
  CHECK(w.size() == 4);
  w.drop_older_than(13);
  CHECK(w.size() == 3);
  CHECK(w.oldest_seq() == 13);
  CHECK_FALSE(w.find(EventId{1, 2}).has_value());
  REQUIRE(w.find(EventId{1, 3}).has_value());
  CHECK(w.find(EventId{1, 3})->seq == 13);
  CHECK(w.find(EventId{1, 5})->bytes_hash == 105);
  CHECK(w.push(EventId{1, 6}, 106));
  CHECK(w.find(EventId{1, 6})->seq == 16);
  CHECK(w.find(EventId{1, 3}).has_value());  // 4 ids: 13..16
  CHECK(w.push(EventId{1, 7}, 107));
  CHECK_FALSE(w.find(EventId{1, 3}).has_value());
  DedupWindow copy(w);
  CHECK(copy.find(EventId{1, 7})->seq == 17);
  CHECK(copy.push(EventId{1, 8}, 108));
  CHECK_FALSE(copy.find(EventId{1, 4}).has_value());
  CHECK(w.find(EventId{1, 4}).has_value());  // the original is untouched
}

}  // namespace qudao
