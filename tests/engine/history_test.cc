// The stock history in RocksDB (engine/history.h): what a commit writes, that it survives a restart,
// and that the same log gives the same history whatever the commits and restarts.
#include <doctest/doctest.h>

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
    // One SeekForPrev per sku: skus without a closing are left out, the rest keep the asked order.
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
  std::vector<std::size_t> closings;  // written by the commit after each record
  for (std::size_t i = 0; i < log.size(); ++i) {
    applier.ingest(shard, Offset{static_cast<std::int64_t>(i)}, log[i]);
    auto c = store->commit(list);
    REQUIRE(c.is_ok());
    closings.push_back(c.value().history.closings);
  }
  // Day 0's five changed pairs are closed by the first event of day 1 (record 9), day 1's two by
  // record 11, day 2's four by record 14; every other commit, mid-day, writes none.
  const std::vector<std::size_t> expected = {0, 0, 0, 0, 0, 0, 0, 0, 0, 5, 0, 2, 0, 0, 4, 0};
  CHECK(closings == expected);
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
  CHECK(raw.count_tagged(nullptr, "CQA") == 0);
  CHECK(raw.count_tagged(raw.history(), "CQA") > 0);
  CHECK(raw.count_tagged(raw.history(), "CQA") == raw.count_tagged(raw.history(), RawStore::kAnyTag));
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

}  // namespace qudao
