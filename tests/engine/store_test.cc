#include "engine/store.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <tuple>
#include <set>

#include "engine/apply.h"
#include "tests/engine/raw_store.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

void feed(Shard& shard, Applier& applier, const Bytes& b, std::int64_t offset) {
  Outcome o = applier.apply(shard, must_decode(b));
  if (o.kind == OutcomeKind::applied) {
    shard.record_applied(Offset{offset}, o.anomaly);
  } else {
    shard.record_rejected(Offset{offset}, o.rejection, std::string(b.begin(), b.end()));
  }
}

}  // namespace

TEST_CASE("store: a commit makes balances, locations, offsets, counts and dead letters durable") {
  TempDir dir;
  Events ev;
  Applier applier;
  Shard p0{PartitionId{0}}, p3{PartitionId{3}};
  feed(p0, applier, ev.location(1, fb::LocationKind::SubWarehouse, "East"), 0);
  feed(p0, applier, ev.production(1, {line(1, 10), line(2, 7)}), 1);
  const Bytes bad = ev.production(9, {line(1, 1)});  // unknown location: dead-lettered
  feed(p0, applier, bad, 5);                          // offsets may have gaps (transaction markers)
  feed(p3, applier, ev.location(2, fb::LocationKind::Store, "West"), 0);
  feed(p3, applier, ev.scan_out(2, 4, 1), 1);         // an anomaly

  {
    auto store = Store::open(StoreOptions{dir.path(), "events"});
    REQUIRE(store.is_ok());
    std::vector<Shard*> shards{&p0, &p3};
    auto stats = store.value()->commit(shards);
    REQUIRE(stats.is_ok());
    CHECK(stats.value().balances == 6);
    CHECK(stats.value().locations == 2);
    CHECK(stats.value().dead_letters == 1);
    CHECK(p0.dirty_balances().empty());
    CHECK(p0.dead_letters().empty());
    // Nothing changed: nothing is written.
    auto again = store.value()->commit(shards);
    REQUIRE(again.is_ok());
    CHECK(again.value().bytes == 0);
  }

  auto store = Store::open(StoreOptions{dir.path(), "events"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load();
  REQUIRE_MESSAGE(loaded.is_ok(), loaded.status().message());
  REQUIRE(loaded.value().size() == 2);
  const Shard& l0 = loaded.value().at(0);
  const Shard& l3 = loaded.value().at(3);
  CHECK(l0.next_offset() == Offset{6});
  CHECK(l0.balance(Account{SkuId{2}, LocationId{1}, Bucket::on_hand}) == Quantity{7});
  CHECK(l0.balance(Account{SkuId{1}, kVirtualLocation, Bucket::production}) == Quantity{-10});
  CHECK(l0.location(LocationId{1})->region == "East");
  CHECK(l0.counts().consumed == 3);
  CHECK(l0.counts().applied == 2);
  CHECK(l0.counts().rejected == 1);
  CHECK(l0.digest() == p0.digest());
  CHECK(l3.counts().anomalies == 1);
  CHECK(l3.digest() == p3.digest());

  auto letters = store.value()->dead_letters(PartitionId{0}, Offset{0}, 10);
  REQUIRE(letters.is_ok());
  REQUIRE(letters.value().size() == 1);
  CHECK(letters.value()[0].offset == Offset{5});
  CHECK(letters.value()[0].rejection.reason == RejectReason::unknown_location);
  CHECK(letters.value()[0].rejection.field == "payload.location");
  CHECK(letters.value()[0].bytes == std::string(bad.begin(), bad.end()));
}

TEST_CASE("store: balances changed out of key order are committed in key order, and settle() leaves them in a "
          "table file that loads unchanged") {
  TempDir dir;
  Events ev;
  Applier applier;
  Shard p0{PartitionId{0}};
  feed(p0, applier, ev.location(1, fb::LocationKind::SubWarehouse, "East"), 0);
  feed(p0, applier, ev.production(1, {line(9, 3), line(1, 10), line(5, 7)}), 1);  // skus first changed 9, 1, 5
  {
    auto store = Store::open(StoreOptions{dir.path(), "events"});
    REQUIRE(store.is_ok());
    std::vector<Shard*> shards{&p0};
    REQUIRE(store.value()->commit(shards).is_ok());
    REQUIRE(store.value()->settle().is_ok());
    std::size_t tables = 0;
    for (const auto& entry : std::filesystem::directory_iterator(dir.path())) tables += entry.path().extension() == ".sst";
    CHECK(tables >= 1);  // flushed: the memtable was written out, not left to the next open's log replay
  }
  auto store = Store::open(StoreOptions{dir.path(), "events"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load();
  REQUIRE_MESSAGE(loaded.is_ok(), loaded.status().message());
  const Shard& l0 = loaded.value().at(0);
  CHECK(l0.balance(Account{SkuId{9}, LocationId{1}, Bucket::on_hand}) == Quantity{3});
  CHECK(l0.balance(Account{SkuId{1}, LocationId{1}, Bucket::on_hand}) == Quantity{10});
  CHECK(l0.balance(Account{SkuId{5}, LocationId{1}, Bucket::on_hand}) == Quantity{7});
  CHECK(l0.balance(Account{SkuId{5}, kVirtualLocation, Bucket::production}) == Quantity{-7});
  CHECK(l0.digest() == p0.digest());
}

TEST_CASE("store: a store made for one topic refuses another") {
  TempDir dir;
  REQUIRE(Store::open(StoreOptions{dir.path(), "events"}).is_ok());
  auto other = Store::open(StoreOptions{dir.path(), "other"});
  REQUIRE_FALSE(other.is_ok());
  CHECK(other.status().message().find("follows topic \"events\", not \"other\"") != std::string::npos);
}

TEST_CASE("store: a stored state that does not match its digest is refused on load") {
  TempDir dir;
  Events ev;
  Applier applier;
  Shard p0{PartitionId{0}};
  feed(p0, applier, ev.location(1, fb::LocationKind::SubWarehouse, "East"), 0);
  feed(p0, applier, ev.production(1, {line(1, 10)}), 1);
  {
    auto store = Store::open(StoreOptions{dir.path(), "events"});
    REQUIRE(store.is_ok());
    std::vector<Shard*> shards{&p0};
    REQUIRE(store.value()->commit(shards).is_ok());
  }
  {
    // Corrupt one balance behind the store's back.
    RawStore raw(dir.path());
    rocksdb::DB* db = &raw.db();
    std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      if (it->key()[0] == 'B') {
        std::string v = it->value().ToString();
        v[0] ^= 1;
        REQUIRE(db->Put(rocksdb::WriteOptions(), it->key(), v).ok());
        break;
      }
    }
  }
  auto store = Store::open(StoreOptions{dir.path(), "events"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load();
  REQUIRE_FALSE(loaded.is_ok());
  CHECK(loaded.status().message().find("does not match its digest") != std::string::npos);
}

TEST_CASE("store: the buckets of one (location, sku) are listed and reloaded one account each and committed in one "
          "key; a bucket never posted is not listed, one posted back to zero is") {
  TempDir dir;
  Events ev;
  Applier applier;
  Shard shard{PartitionId{0}};
  feed(shard, applier, ev.location(1, fb::LocationKind::SubWarehouse, "East"), 0);
  feed(shard, applier, ev.location(2, fb::LocationKind::Store, "East"), 1);
  feed(shard, applier, ev.production(1, {line(7, 10)}), 2);
  feed(shard, applier, ev.dispatch(1, 2, {line(7, 4)}), 3);
  feed(shard, applier, ev.receive(2, {line(7, 4)}), 4);  // in transit to the store: back to zero
  REQUIRE(shard.counts().applied == 5);

  using Listed = std::vector<std::pair<Account, std::int64_t>>;
  auto listed = [](const Shard& s) {
    Listed out;
    s.for_each_balance([&](const Account& a, Quantity q) { out.emplace_back(a, q.value); });
    std::sort(out.begin(), out.end());
    return out;
  };
  const Listed before = listed(shard);
  CHECK(std::count(before.begin(), before.end(), std::pair{Account{SkuId{7}, LocationId{2}, Bucket::in_transit}, std::int64_t{0}}) == 1);
  CHECK(std::count(before.begin(), before.end(), std::pair{Account{SkuId{7}, LocationId{2}, Bucket::on_hand}, std::int64_t{4}}) == 1);
  CHECK(std::count(before.begin(), before.end(), std::pair{Account{SkuId{7}, LocationId{1}, Bucket::on_hand}, std::int64_t{6}}) == 1);
  CHECK(std::none_of(before.begin(), before.end(), [](const auto& e) { return e.first.bucket == Bucket::reserved; }));
  CHECK(shard.balance(Account{SkuId{7}, LocationId{2}, Bucket::reserved}) == Quantity{0});

  {
    auto store = Store::open(StoreOptions{dir.path(), "events"});
    REQUIRE(store.is_ok());
    std::vector<Shard*> shards{&shard};
    auto stats = store.value()->commit(shards);
    REQUIRE(stats.is_ok());
    // One key per (sku, location) with stock buckets, one per virtual account.
    std::set<std::pair<SkuId, LocationId>> pairs;
    std::size_t virtual_accounts = 0;
    for (const auto& [a, qty] : before) {
      if (a.bucket == Bucket::on_hand || a.bucket == Bucket::reserved || a.bucket == Bucket::in_transit) {
        pairs.emplace(a.sku, a.location);
      } else {
        ++virtual_accounts;
      }
    }
    CHECK(pairs.size() == 2);
    CHECK(stats.value().balances == pairs.size() + virtual_accounts);
    CHECK(shard.dirty_balances().empty());
  }
  auto store = Store::open(StoreOptions{dir.path(), "events"});
  REQUIRE(store.is_ok());
  auto loaded = store.value()->load();
  REQUIRE_MESSAGE(loaded.is_ok(), loaded.status().message());
  const Shard& l = loaded.value().at(0);
  CHECK(listed(l) == before);
  CHECK(l.digest() == shard.digest());
  for (const auto& [a, qty] : before) CHECK(l.balance(a) == Quantity{qty});
}

TEST_CASE("store: loading on one thread or several restores the same shards from a store of several partitions") {
  TempDir dir;
  Events ev;
  Applier applier;
  // Partitions of different sizes (the threads take the largest first), each with locations,
  // balances, orders, shipments, an anomaly and a dead letter.
  std::map<std::int32_t, Shard> written;
  std::vector<Shard*> list;
  for (std::int32_t p : {0, 1, 2, 5, 7}) {
    Shard& s = written.try_emplace(p, PartitionId{p}).first->second;
    list.push_back(&s);
    const std::uint64_t wh = 100 + static_cast<std::uint64_t>(p) * 10, store = wh + 1;
    std::int64_t offset = 0;
    feed(s, applier, ev.location(wh, fb::LocationKind::SubWarehouse, "East"), offset++);
    feed(s, applier, ev.location(store, fb::LocationKind::Store, "East"), offset++);
    const int skus = 3 + p * 20;
    for (int sku = 1; sku <= skus; ++sku) {
      feed(s, applier, ev.production(wh, {line(static_cast<std::uint64_t>(sku), 50 + sku)}), offset++);
    }
    feed(s, applier, ev.dispatch(wh, store, {line(1, 5)}), offset++);
    feed(s, applier, ev.receive(store, {line(1, 5)}), offset++);
    feed(s, applier, ev.order(1000 + static_cast<std::uint64_t>(p), store, {PricedLine{SkuId{1}, Quantity{2}, Fen{100}}}),
         offset++);
    feed(s, applier, ev.scan_out(store, 1, 9), offset++);        // more than the store holds: an anomaly
    feed(s, applier, ev.production(999, {line(1, 1)}), offset++);  // unknown location: dead-lettered
  }
  {
    auto store = Store::open(StoreOptions{dir.path(), "events"});
    REQUIRE(store.is_ok());
    REQUIRE(store.value()->commit(list).is_ok());
  }

  auto store = Store::open(StoreOptions{dir.path(), "events"});
  REQUIRE(store.is_ok());
  for (std::size_t threads : {std::size_t{1}, std::size_t{2}, std::size_t{8}}) {
    CAPTURE(threads);
    auto loaded = store.value()->load(kDedupWindowEventsDefault, nullptr, threads);
    REQUIRE_MESSAGE(loaded.is_ok(), loaded.status().message());
    REQUIRE(loaded.value().size() == written.size());
    for (const auto& [p, w] : written) {
      CAPTURE(p);
      const Shard& l = loaded.value().at(p);
      CHECK(l.digest() == w.digest());
      CHECK(l.next_offset() == w.next_offset());
      CHECK(l.counts().consumed == w.counts().consumed);
      CHECK(l.counts().applied == w.counts().applied);
      CHECK(l.counts().rejected == w.counts().rejected);
      CHECK(l.counts().anomalies == w.counts().anomalies);
      std::vector<std::tuple<std::uint64_t, std::uint64_t, int, std::int64_t>> want, got;
      w.for_each_balance([&](const Account& a, Quantity q) {
        want.emplace_back(a.sku.value, a.location.value, static_cast<int>(a.bucket), q.value);
      });
      l.for_each_balance([&](const Account& a, Quantity q) {
        got.emplace_back(a.sku.value, a.location.value, static_cast<int>(a.bucket), q.value);
      });
      std::sort(want.begin(), want.end());
      std::sort(got.begin(), got.end());
      CHECK(got == want);
      std::size_t orders = 0;
      l.for_each_order([&](OrderId, const Order&) { ++orders; });
      CHECK(orders == 1);
    }
  }
}

}  // namespace qudao
