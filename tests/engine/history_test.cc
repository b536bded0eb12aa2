// The stock history in RocksDB (engine/history.h): what a commit writes, that it survives a restart,
// and that the same log gives the same history whatever the commits and restarts.
#include <doctest/doctest.h>

#include <rocksdb/merge_operator.h>
#include <rocksdb/write_batch.h>

#include <functional>
#include <set>

#include "engine/apply.h"
#include "engine/codec.h"
#include "engine/store.h"
#include "tests/engine/raw_store.h"
#include "tests/projections/history_story.h"

namespace qudao {
using namespace qudao::test;

namespace {

constexpr PartitionId kP{0};

std::unique_ptr<Store> open_store(const std::string& dir) {
  auto s = Store::open(StoreOptions{dir, "events", SyncMode::no_fsync});
  REQUIRE_MESSAGE(s.is_ok(), s.status().message());
  return s.take();
}

// Applies `log` from the store's offset on, committing after record i when commit_after(i), and
// dropping everything since the last commit (as a kill -9 does) after record i when crash_after(i).
// Returns the store's export SHA-256.
std::string run(const std::string& dir, const std::vector<Bytes>& log, const std::function<bool(std::size_t)>& commit_after,
                const std::set<std::size_t>& crash_after = {}) {
  auto store = open_store(dir);
  std::set<std::size_t> crashes = crash_after;
  Applier applier;
  for (;;) {
    auto loaded = store->load();
    REQUIRE(loaded.is_ok());
    std::map<std::int32_t, Shard> shards = loaded.take();
    Shard& shard = shards.try_emplace(kP.value, kP).first->second;
    Shard* list[] = {&shard};
    bool crashed = false;
    for (auto i = static_cast<std::size_t>(shard.next_offset().value); i < log.size(); ++i) {
      applier.ingest(shard, Offset{static_cast<std::int64_t>(i)}, log[i]);
      if (commit_after(i)) REQUIRE(store->commit(list).is_ok());
      if (crashes.erase(i) > 0) {
        crashed = true;
        break;
      }
    }
    if (crashed) continue;
    REQUIRE(store->commit(list).is_ok());
    break;
  }
  auto sha = store->state_sha256();
  REQUIRE(sha.is_ok());
  return sha.value();
}

// Rewrites every (sku, location)'s one balance key as the keys of its buckets, as stores written
// before pairs were one key held them: `day` keeps the pair's day with each, as those stores did.
enum class BucketDay : std::uint8_t { kept, absent };
void rewrite_as_bucket_keys(rocksdb::DB& db, BucketDay day) {
  rocksdb::WriteBatch batch;
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("B"); it->Valid() && it->key()[0] == 'B'; it->Next()) {
    if (it->key()[it->key().size() - 1] != 0) continue;  // a virtual account's: as it was
    codec::Reader v(it->value().ToStringView());
    std::int64_t qty[Shard::kStockBuckets];
    for (std::int64_t& q : qty) q = v.le<std::int64_t>();
    const auto exists = v.le<std::uint8_t>();
    const auto changed_day = v.le<std::int32_t>();
    REQUIRE(v.ok());
    batch.Delete(it->key());
    for (int i = 0; i < Shard::kStockBuckets; ++i) {
      if (!(exists & (1u << i))) continue;
      std::string key = it->key().ToString();
      key.back() = static_cast<char>(Shard::kStockBucketOf[i]);
      std::string value;
      codec::put_le<std::int64_t>(value, qty[i]);
      if (day == BucketDay::kept) codec::put_le<std::int32_t>(value, changed_day);
      batch.Put(key, value);
    }
  }
  REQUIRE(db.Write(rocksdb::WriteOptions(), &batch).ok());
}

// The stock balance keys of a store, virtual accounts left out.
struct StockKeys {
  std::size_t pair_keys = 0;
  std::size_t bucket_keys = 0;
  std::size_t bucket_keys_beside_a_pair_key = 0;  // a pair stored both ways: must never happen
};
StockKeys stock_keys(const std::string& dir) {
  rocksdb::Options options;
  options.merge_operator = sold_merge_operator();
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::OpenForReadOnly(options, dir, &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);
  StockKeys n;
  std::string last_pair;  // the last pair key's prefix (it sorts just before its pair's bucket keys)
  std::unique_ptr<rocksdb::Iterator> it(db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("B"); it->Valid() && it->key()[0] == 'B'; it->Next()) {
    const std::string_view key = it->key().ToStringView();
    const auto bucket = static_cast<std::uint8_t>(key.back());
    if (bucket == 0) {
      ++n.pair_keys;
      last_pair = key.substr(0, key.size() - 1);
    } else if (bucket <= static_cast<std::uint8_t>(Bucket::in_transit)) {
      ++n.bucket_keys;
      if (key.substr(0, key.size() - 1) == last_pair) ++n.bucket_keys_beside_a_pair_key;
    }
  }
  return n;
}

ClosingLevels closing_at(Store& store, std::uint64_t location, std::uint64_t sku, Day day) {
  const SkuId skus[] = {SkuId{sku}};
  auto c = store.closings(kP, LocationId{location}, skus, day);
  REQUIRE(c.is_ok());
  return c.value().empty() ? ClosingLevels{} : c.value()[0].levels;
}

}  // namespace

TEST_CASE("stock history: closings, sold rows and anomalies are committed with the state and survive a restart") {
  TempDir dir;
  const std::vector<Bytes> log = history_story();
  run(dir.path(), log, [](std::size_t i) { return i % 3 == 0; });
  auto store = open_store(dir.path());  // reopened: only what the commits wrote
  auto loaded = store->load();
  REQUIRE_MESSAGE(loaded.is_ok(), loaded.status().message());
  CHECK(day_of(loaded.value().at(0).watermark()) == story_day(3));

  SUBCASE("as of a day, a (location, sku) has the newest closing at or before it") {
    CHECK(closing_at(*store, kStoryStore, 1, story_day(-1)).on_hand == 0);  // before any change
    CHECK(closing_at(*store, kStoryStore, 1, story_day(0)).on_hand == 40);
    CHECK(closing_at(*store, kStoryStore, 1, story_day(1)).on_hand == 35);
    CHECK(closing_at(*store, kStoryStore, 1, story_day(2)).on_hand == 32);
    // The late scan-out (occurred on day 1, applied on day 3) changes day 3's closing, not day 1's.
    CHECK(closing_at(*store, kStoryStore, 1, story_day(3)).on_hand == 30);
    CHECK(closing_at(*store, kStoryStore, 1, story_day(40)).on_hand == 30);
    // No change on days 1 and 2: the day-0 closing still answers.
    CHECK(closing_at(*store, kStoryStore, 2, story_day(2)).on_hand == 8);
    CHECK(closing_at(*store, kStoryStore, 2, story_day(3)).on_hand == -12);
    CHECK(closing_at(*store, kStoryWarehouse, 2, story_day(1)).on_hand == 40);
    CHECK(closing_at(*store, kStoryWarehouse, 2, story_day(2)).on_hand == 35);
    CHECK(closing_at(*store, kStoryNingboStore, 2, story_day(1)).in_transit == 0);
    CHECK(closing_at(*store, kStoryNingboStore, 2, story_day(2)).in_transit == 5);
    CHECK(closing_at(*store, kStoryWestStore, 1, story_day(1)).on_hand == -1);
    // Skus without a closing are left out, the rest keep the asked order.
    const SkuId skus[] = {SkuId{2}, SkuId{7}, SkuId{1}};
    auto both = store->closings(kP, LocationId{kStoryStore}, skus, story_day(1));
    REQUIRE(both.is_ok());
    REQUIRE(both.value().size() == 2);
    CHECK(both.value()[0].sku == SkuId{2});
    CHECK(both.value()[0].day == story_day(0));
    CHECK(both.value()[1].sku == SkuId{1});
    CHECK(both.value()[1].day == story_day(1));
  }
  SUBCASE("sold rows count each scan-out on its own day, a late one included") {
    auto sales = store->sales(kP, LocationId{kStoryStore}, story_day(0), story_day(3));
    REQUIRE(sales.is_ok());
    REQUIRE(sales.value().size() == 3);
    CHECK(sales.value()[0].day == story_day(1));
    CHECK(sales.value()[0].sku == SkuId{1});
    CHECK(sales.value()[0].qty == Quantity{7});
    CHECK(sales.value()[1].day == story_day(2));
    CHECK(sales.value()[1].qty == Quantity{3});
    CHECK(sales.value()[2].day == story_day(3));
    CHECK(sales.value()[2].sku == SkuId{2});
    CHECK(sales.value()[2].qty == Quantity{20});
    auto one_day = store->sales(kP, LocationId{kStoryStore}, story_day(2), story_day(2));
    REQUIRE(one_day.is_ok());
    CHECK(one_day.value().size() == 1);
    auto other = store->sales(kP, LocationId{kStoryWarehouse}, story_day(0), story_day(3));
    REQUIRE(other.is_ok());
    CHECK(other.value().empty());
  }
  SUBCASE("anomalies are listed per location in offset order, with the event, kind, sku and units") {
    auto a = store->anomalies(kP, LocationId{kStoryStore}, Offset{0}, 0, 10);
    REQUIRE(a.is_ok());
    REQUIRE(a.value().size() == 2);
    CHECK(a.value()[0].kind == AnomalyKind::receipt_shortage);
    CHECK(a.value()[0].sku == SkuId{2});
    CHECK(a.value()[0].qty == Quantity{2});
    CHECK(a.value()[0].day == story_day(0));
    CHECK(a.value()[0].offset == Offset{6});
    CHECK(a.value()[0].event_id == EventId{9, 7});
    CHECK(a.value()[1].kind == AnomalyKind::scan_out_beyond_stock);
    CHECK(a.value()[1].qty == Quantity{12});
    CHECK(a.value()[1].day == story_day(3));
    // From the second one's key on: a cursor.
    auto rest = store->anomalies(kP, LocationId{kStoryStore}, a.value()[1].offset, a.value()[1].index, 10);
    REQUIRE(rest.is_ok());
    REQUIRE(rest.value().size() == 1);
    CHECK(rest.value()[0].offset == a.value()[1].offset);
    auto west = store->anomalies(kP, LocationId{kStoryWestStore}, Offset{0}, 0, 10);
    REQUIRE(west.is_ok());
    REQUIRE(west.value().size() == 1);
    CHECK(west.value()[0].qty == Quantity{1});
  }
}

TEST_CASE("stock history: the same log gives the same stored history whatever the commits and restarts") {
  const std::vector<Bytes> log = history_story();
  TempDir every, once, crashing;
  const std::string a = run(every.path(), log, [](std::size_t) { return true; });
  const std::string b = run(once.path(), log, [](std::size_t) { return false; });
  // Commits that fall mid-day and across day changes, and kill -9s that lose what followed them.
  const std::string c = run(crashing.path(), log, [](std::size_t i) { return i == 2 || i == 7 || i == 11; }, {9, 13, 14});
  CHECK(a == b);
  CHECK(a == c);
  // The same rows, read back (the export above includes them: engine/store.h).
  for (const std::string& dir : {every.path(), crashing.path()}) {
    auto store = open_store(dir);
    CHECK(closing_at(*store, kStoryStore, 1, story_day(2)).on_hand == 32);
    auto sales = store->sales(kP, LocationId{kStoryStore}, story_day(1), story_day(1));
    REQUIRE(sales.is_ok());
    REQUIRE(sales.value().size() == 1);
    CHECK(sales.value()[0].qty == Quantity{7});
  }
}

TEST_CASE("stock history: a commit writes a day's closings when the shard day ends, not the current day's") {
  TempDir dir;
  const std::vector<Bytes> log = history_story();
  auto store = open_store(dir.path());
  Shard shard(kP);
  Shard* list[] = {&shard};
  Applier applier;
  std::vector<std::size_t> closings, closing_keys;  // written by the commit after each record
  for (std::size_t i = 0; i < log.size(); ++i) {
    applier.ingest(shard, Offset{static_cast<std::int64_t>(i)}, log[i]);
    auto c = store->commit(list);
    REQUIRE(c.is_ok());
    closings.push_back(c.value().history.closings);
    closing_keys.push_back(c.value().history.closing_keys);
  }
  // Day 0's five changed pairs are closed by the first event of day 1 (record 9), day 1's two by
  // record 11, day 2's four by record 14; every other commit, mid-day, writes none.
  const std::vector<std::size_t> expected = {0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 2, 0, 0, 4, 0};
  CHECK(closings == expected);
  // Packed, one key per location-day: day 0's at locations 10, 11 and 12 (two, two and one pair),
  // day 1's at 11 and 13, day 2's at 10, 11 and 12 (12 with two skus).
  const std::vector<std::size_t> expected_keys = {0, 0, 0, 0, 0, 0, 0, 0, 0, 3, 0, 2, 0, 0, 3, 0};
  CHECK(closing_keys == expected_keys);
  // The current day (3) still answers, from the stored balances.
  CHECK(closing_at(*store, kStoryStore, 1, story_day(3)).on_hand == 30);
  CHECK(closing_at(*store, kStoryStore, 2, story_day(3)).on_hand == -12);
  CHECK(closing_at(*store, kStoryStore, 2, story_day(2)).on_hand == 8);  // asked before day 3: day 0's
}

TEST_CASE("stock history: after a restart mid-day, the day's close writes the pairs changed before and after it") {
  TempDir dir;
  const std::vector<Bytes> log = history_story();
  Applier applier;
  std::vector<std::size_t> closings;  // written by the commit after each record
  auto apply_committing = [&](Store& store, Shard& shard, std::size_t from, std::size_t to) {
    Shard* list[] = {&shard};
    for (std::size_t i = from; i < to; ++i) {
      applier.ingest(shard, Offset{static_cast<std::int64_t>(i)}, log[i]);
      auto c = store.commit(list);
      REQUIRE(c.is_ok());
      closings.push_back(c.value().history.closings);
    }
  };
  {  // Up to record 12: day 2 has changed (11, sku1) and (12, sku1) so far.
    auto store = open_store(dir.path());
    Shard shard(kP);
    apply_committing(*store, shard, 0, 13);
  }
  auto store = open_store(dir.path());
  auto loaded = store->load();
  REQUIRE_MESSAGE(loaded.is_ok(), loaded.status().message());
  std::map<std::int32_t, Shard> shards = loaded.take();
  Shard& shard = shards.at(kP.value);
  REQUIRE(shard.today() == story_day(2));
  apply_committing(*store, shard, 13, log.size());  // record 13 changes (10, sku2) and (12, sku2)
  // As without the restart: record 14 closes day 2's four pairs, two restored and two changed since.
  const std::vector<std::size_t> expected = {0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 2, 0, 0, 4, 0};
  CHECK(closings == expected);
  CHECK(closing_at(*store, kStoryStore, 1, story_day(2)).on_hand == 32);  // not day 1's 35: closed
  CHECK(closing_at(*store, kStoryNingboStore, 1, story_day(2)).on_hand == 16);
  CHECK(closing_at(*store, kStoryWarehouse, 2, story_day(2)).on_hand == 35);
  CHECK(closing_at(*store, kStoryNingboStore, 2, story_day(2)).in_transit == 5);
}

TEST_CASE("stock history: a new store keeps its history rows in the history column family, none in the default one") {
  const std::vector<Bytes> log = history_story();
  TempDir dir;
  run(dir.path(), log, [](std::size_t) { return true; });
  RawStore raw(dir.path());
  REQUIRE(raw.history() != nullptr);
  CHECK(raw.count_tagged(nullptr, "KUCQA") == 0);
  CHECK(raw.count_tagged(raw.history(), "KUA") > 0);
  CHECK(raw.count_tagged(raw.history(), "KUA") == raw.count_tagged(raw.history(), RawStore::kAnyTag));
}

TEST_CASE("stock history: a store from when commits wrote the current day's closings loads, exports and goes on the same") {
  const std::vector<Bytes> log = history_story();
  const std::vector<Bytes> part(log.begin(), log.begin() + 13);  // ends on day 2
  const auto every = [](std::size_t) { return true; };
  TempDir fresh, old;
  const std::string want = run(fresh.path(), part, every);
  run(old.path(), part, every);
  {  // Rewritten as that version stored it: balances without their day, day 2's closings so far as
     // rows, the history in the default family.
    RawStore raw(old.path());
    raw.unpack_history();
    raw.move_history_to_default_family();
    rocksdb::DB* db = &raw.db();
    rewrite_as_bucket_keys(*db, BucketDay::absent);
    rocksdb::WriteBatch batch;
    batch.Put(history_keys::closing(kP, LocationId{kStoryStore}, SkuId{1}, story_day(2)),
              history_keys::closing_value(ClosingLevels{32, 0, 0}));
    batch.Put(history_keys::closing(kP, LocationId{kStoryNingboStore}, SkuId{1}, story_day(2)),
              history_keys::closing_value(ClosingLevels{16, 0, 0}));
    REQUIRE(db->Write(rocksdb::WriteOptions(), &batch).ok());
  }
  {
    auto store = open_store(old.path());
    REQUIRE(store->load().is_ok());
    auto sha = store->state_sha256();
    REQUIRE(sha.is_ok());
    CHECK(sha.value() == want);
    CHECK(closing_at(*store, kStoryStore, 1, story_day(2)).on_hand == 32);
  }
  CHECK(run(old.path(), log, every) == run(fresh.path(), log, every));
}

TEST_CASE("stock history: a store with a key per stock bucket loads, answers and exports the same, and a pair's "
          "next commit replaces its bucket keys with the pair's one key") {
  const std::vector<Bytes> log = history_story();
  const auto every = [](std::size_t) { return true; };
  TempDir fresh, old;
  // Up to record 13 (day 2), then rewritten; both stores then go on to the end.
  const std::string want = run(fresh.path(), {log.begin(), log.begin() + 13}, every);
  run(old.path(), {log.begin(), log.begin() + 13}, every);
  const std::size_t pairs = stock_keys(old.path()).pair_keys;
  REQUIRE(pairs > 0);
  {  // as such a store was: its history in the default family too
    RawStore raw(old.path());
    raw.unpack_history();
    raw.move_history_to_default_family();
    rewrite_as_bucket_keys(raw.db(), BucketDay::kept);
  }
  CHECK(stock_keys(old.path()).pair_keys == 0);
  CHECK(stock_keys(old.path()).bucket_keys > pairs);  // some pair has two buckets
  {
    auto store = open_store(old.path());
    auto loaded = store->load();
    REQUIRE_MESSAGE(loaded.is_ok(), loaded.status().message());
    auto sha = store->state_sha256();
    REQUIRE(sha.is_ok());
    CHECK(sha.value() == want);
    CHECK(closing_at(*store, kStoryStore, 1, story_day(2)).on_hand == 32);  // the current day, from the balances
    CHECK(closing_at(*store, kStoryStore, 1, story_day(1)).on_hand == 35);
  }
  CHECK(run(old.path(), log, every) == run(fresh.path(), log, every));
  // The pairs the rest of the log changed are one key again, their bucket keys deleted.
  const StockKeys after = stock_keys(old.path());
  CHECK(after.pair_keys > 0);
  CHECK(after.bucket_keys_beside_a_pair_key == 0);
  auto store = open_store(old.path());
  REQUIRE(store->load().is_ok());
}

TEST_CASE("stock history: a location-day's closings and sales are one packed key each, read back per sku") {
  const std::vector<Bytes> log = history_story();
  TempDir dir;
  run(dir.path(), log, [](std::size_t) { return true; });
  {
    RawStore raw(dir.path());
    CHECK(raw.count_tagged(raw.history(), "K") == 8);  // days 0, 1, 2: 3 + 2 + 3 location-days
    // Sold: (11, day 1) 5 and the late 2 in two merges, (11, day 2), (11, day 3), (12, day 2), (13, day 1).
    CHECK(raw.count_tagged(raw.history(), "U") == 5);
    CHECK(raw.count_tagged(raw.history(), "CQ") == 0);
  }
  auto store = open_store(dir.path());
  SUBCASE("two skus closed the same day at one location: one key, both read") {
    const SkuId skus[] = {SkuId{2}, SkuId{1}};
    auto c = store->closings(kP, LocationId{kStoryNingboStore}, skus, story_day(2));
    REQUIRE(c.is_ok());
    REQUIRE(c.value().size() == 2);
    CHECK(c.value()[0].sku == SkuId{2});
    CHECK(c.value()[0].day == story_day(2));
    CHECK(c.value()[0].levels.in_transit == 5);
    CHECK(c.value()[1].sku == SkuId{1});
    CHECK(c.value()[1].day == story_day(2));
    CHECK(c.value()[1].levels.on_hand == 16);
  }
  SUBCASE("a sku last closed several days back is found by the scan past the days that do not hold it") {
    const SkuId skus[] = {SkuId{1}, SkuId{2}};
    auto c = store->closings(kP, LocationId{kStoryStore}, skus, story_day(2));
    REQUIRE(c.is_ok());
    REQUIRE(c.value().size() == 2);
    CHECK(c.value()[0].day == story_day(2));
    CHECK(c.value()[0].levels.on_hand == 32);
    CHECK(c.value()[1].day == story_day(0));  // days 2 and 1 hold only sku 1
    CHECK(c.value()[1].levels.on_hand == 8);
    const SkuId twice[] = {SkuId{2}, SkuId{1}, SkuId{2}};  // a sku asked twice is answered twice
    auto t = store->closings(kP, LocationId{kStoryStore}, twice, story_day(2));
    REQUIRE(t.is_ok());
    REQUIRE(t.value().size() == 3);
    CHECK(t.value()[0].day == story_day(0));
    CHECK(t.value()[1].day == story_day(2));
    CHECK(t.value()[2].day == story_day(0));
    CHECK(t.value()[2].levels.on_hand == 8);
  }
  SUBCASE("a sku never changed at the location, or only after the day asked, has no closing") {
    const SkuId skus[] = {SkuId{7}, SkuId{1}, SkuId{2}};
    auto never = store->closings(kP, LocationId{kStoryWestStore}, skus, story_day(40));
    REQUIRE(never.is_ok());
    REQUIRE(never.value().size() == 1);  // 13 only ever had sku 1
    CHECK(never.value()[0].sku == SkuId{1});
    CHECK(never.value()[0].levels.on_hand == -1);
    auto before = store->closings(kP, LocationId{kStoryStore}, skus, story_day(-1));
    REQUIRE(before.is_ok());
    CHECK(before.value().empty());
  }
  SUBCASE("a day's sales summed across the merges of several commits") {
    auto sales = store->sales(kP, LocationId{kStoryStore}, story_day(1), story_day(1));
    REQUIRE(sales.is_ok());
    REQUIRE(sales.value().size() == 1);
    CHECK(sales.value()[0].qty == Quantity{7});
  }
}

TEST_CASE("stock history: a store with unpacked rows that goes on packed reads and exports as if it had one layout") {
  const std::vector<Bytes> log = history_story();
  const auto every = [](std::size_t) { return true; };
  TempDir fresh, mixed;
  // Up to record 13 (day 2; day 1's 5 units of sku 1 at 11 sold), unpacked as a store from before
  // packing; then on to the end packed: day 2's closings and the late 2 units of day 1 are packed.
  run(mixed.path(), {log.begin(), log.begin() + 13}, every);
  {
    RawStore raw(mixed.path());
    raw.unpack_history();
    CHECK(raw.count_tagged(raw.history(), "KU") == 0);
  }
  const std::string want = run(fresh.path(), log, every);
  CHECK(run(mixed.path(), log, every) == want);
  {
    RawStore raw(mixed.path());
    CHECK(raw.count_tagged(raw.history(), "C") > 0);
    CHECK(raw.count_tagged(raw.history(), "K") > 0);
    CHECK(raw.count_tagged(raw.history(), "Q") > 0);
    CHECK(raw.count_tagged(raw.history(), "U") > 0);
  }
  auto a = open_store(fresh.path());
  auto b = open_store(mixed.path());
  const SkuId skus[] = {SkuId{1}, SkuId{2}, SkuId{7}};
  for (std::uint64_t location : {kStoryWarehouse, kStoryStore, kStoryNingboStore, kStoryWestStore}) {
    for (int day = -1; day <= 4; ++day) {
      auto x = a->closings(kP, LocationId{location}, skus, story_day(day));
      auto y = b->closings(kP, LocationId{location}, skus, story_day(day));
      REQUIRE(x.is_ok());
      REQUIRE(y.is_ok());
      REQUIRE(x.value().size() == y.value().size());
      for (std::size_t i = 0; i < x.value().size(); ++i) {
        CHECK(x.value()[i].sku == y.value()[i].sku);
        CHECK(x.value()[i].day == y.value()[i].day);
        CHECK(x.value()[i].levels.on_hand == y.value()[i].levels.on_hand);
        CHECK(x.value()[i].levels.reserved == y.value()[i].levels.reserved);
        CHECK(x.value()[i].levels.in_transit == y.value()[i].levels.in_transit);
      }
    }
    auto x = a->sales(kP, LocationId{location}, story_day(0), story_day(3));
    auto y = b->sales(kP, LocationId{location}, story_day(0), story_day(3));
    REQUIRE(x.is_ok());
    REQUIRE(y.is_ok());
    REQUIRE(x.value().size() == y.value().size());
    for (std::size_t i = 0; i < x.value().size(); ++i) {
      CHECK(x.value()[i].day == y.value()[i].day);
      CHECK(x.value()[i].sku == y.value()[i].sku);
      CHECK(x.value()[i].qty == y.value()[i].qty);
    }
  }
  // Day 1's sku 1 at 11: 5 units in an unpacked row, the late 2 in a packed day: one sale of 7.
  auto day1 = b->sales(kP, LocationId{kStoryStore}, story_day(1), story_day(1));
  REQUIRE(day1.is_ok());
  REQUIRE(day1.value().size() == 1);
  CHECK(day1.value()[0].qty == Quantity{7});
}

TEST_CASE("stock history: the sold operator adds per sku in full and partial merges, and old rows as before") {
  auto op = sold_merge_operator();
  const std::string key = history_keys::day_key(history_keys::kSoldDay, kP, LocationId{11}, story_day(1));
  auto day = [](std::vector<std::pair<std::uint64_t, std::int64_t>> sales) {
    std::string v;
    SkuId previous{0};
    for (auto [sku, qty] : sales) packed_day::put_sale(v, previous, SkuId{sku}, qty), previous = SkuId{sku};
    return v;
  };
  auto read = [](const std::string& v) {
    std::vector<std::pair<std::uint64_t, std::int64_t>> out;
    packed_day::Reader r(v, packed_day::Reader::Kind::sales);
    while (r.next()) out.emplace_back(r.sku().value, r.qty());
    REQUIRE(!r.corrupt());
    return out;
  };
  const std::string a = day({{1, 5}, {3, 2}, {900'000'000'000, 1}});
  const std::string b = day({{2, 4}, {3, 7}});
  const std::string c = day({{1, -1}, {4, 1}});
  const std::vector<std::pair<std::uint64_t, std::int64_t>> sum = {{1, 4}, {2, 4}, {3, 9}, {4, 1}, {900'000'000'000, 1}};

  auto full_merge = [&](const rocksdb::Slice* base, const std::vector<rocksdb::Slice>& operands) {
    std::string value;
    rocksdb::Slice existing_operand;
    rocksdb::MergeOperator::MergeOperationOutput out(value, existing_operand);
    REQUIRE(op->FullMergeV2(rocksdb::MergeOperator::MergeOperationInput(key, base, operands, nullptr), &out));
    return value.empty() ? existing_operand.ToString() : value;  // RocksDB's: the value, or one operand as it is
  };
  std::string partial;
  REQUIRE(op->PartialMerge(key, a, b, &partial, nullptr));  // two operands into one, no value yet
  CHECK(read(partial) == std::vector<std::pair<std::uint64_t, std::int64_t>>{{1, 5}, {2, 4}, {3, 9}, {900'000'000'000, 1}});
  const rocksdb::Slice base(partial);
  CHECK(read(full_merge(&base, {c})) == sum);
  // The same sum whichever operands merge first, and with no value at all.
  std::string bc;
  REQUIRE(op->PartialMerge(key, b, c, &bc, nullptr));
  CHECK(read(full_merge(nullptr, {a, bc})) == sum);
  // Corrupt bytes are refused (RocksDB reports the merge as failed).
  std::string bad;
  CHECK_FALSE(op->PartialMerge(key, a, std::string("\x80"), &bad, nullptr));
  // An unpacked sold row of an older store: an i64 sum.
  std::string five, two, seven;
  codec::put_le<std::int64_t>(five, 5);
  codec::put_le<std::int64_t>(two, 2);
  REQUIRE(op->PartialMerge(history_keys::sold(kP, LocationId{11}, story_day(1), SkuId{1}), five, two, &seven, nullptr));
  codec::Reader r(seven);
  CHECK(r.le<std::int64_t>() == 7);
}

}  // namespace qudao
