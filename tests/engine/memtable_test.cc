// The store's memtable representation (engine/memtable.h): the merge of ascending runs sorts as
// std::sort does, and a real RocksDB on it reads back every key in order, through iterators, Seek,
// SeekForPrev and Get, from the active memtable, a read-only one awaiting its flush, and the files.
#include <doctest/doctest.h>

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <map>
#include <random>

#include "engine/memtable.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

// Where each ascending run of `items` starts, as the memtable notes them on insert.
std::vector<std::size_t> run_starts(const std::vector<int>& items) {
  std::vector<std::size_t> starts;
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i == 0 || items[i] < items[i - 1]) starts.push_back(i);
  }
  return starts;
}

std::string key_of(int k) { return fmt::format("k{:06}", k); }

// Every read the engine makes of a store, checked against `model`.
void check_reads(rocksdb::DB& db, const std::map<std::string, std::string>& model, std::mt19937& random) {
  std::unique_ptr<rocksdb::Iterator> it(db.NewIterator(rocksdb::ReadOptions()));
  auto expected = model.begin();
  for (it->SeekToFirst(); it->Valid(); it->Next(), ++expected) {
    REQUIRE(expected != model.end());
    CHECK(it->key().ToString() == expected->first);
    CHECK(it->value().ToString() == expected->second);
  }
  CHECK(expected == model.end());
  auto back = model.rbegin();
  for (it->SeekToLast(); it->Valid(); it->Prev(), ++back) {
    REQUIRE(back != model.rend());
    CHECK(it->key().ToString() == back->first);
  }
  CHECK(back == model.rend());
  for (int i = 0; i < 200; ++i) {
    const std::string target = key_of(static_cast<int>(random() % 12'000));
    const auto at_or_after = model.lower_bound(target);
    it->Seek(target);
    CHECK(it->Valid() == (at_or_after != model.end()));
    if (it->Valid()) CHECK(it->key().ToString() == at_or_after->first);
    auto after = model.upper_bound(target);
    it->SeekForPrev(target);
    CHECK(it->Valid() == (after != model.begin()));
    if (it->Valid()) CHECK(it->key().ToString() == std::prev(after)->first);
    std::string value;
    const rocksdb::Status s = db.Get(rocksdb::ReadOptions(), target, &value);
    const auto found = model.find(target);
    CHECK(s.IsNotFound() == (found == model.end()));
    if (found != model.end()) CHECK(value == found->second);
  }
  CHECK(it->status().ok());
}

}  // namespace

TEST_CASE("memtable: merge_sorted_runs sorts any mix of ascending runs as std::sort does") {
  std::mt19937 random(7);
  for (int round = 0; round < 300; ++round) {
    std::vector<int> items;
    const int runs = static_cast<int>(random() % 40);
    for (int r = 0; r < runs; ++r) {
      // Long sorted runs (a commit's balances, closings), short ones and single keys (its channel entries).
      const std::size_t length = random() % 3 == 0 ? random() % 500 : random() % 40;
      int value = static_cast<int>(random() % 10'000);
      for (std::size_t i = 0; i < length; ++i) items.push_back(value += static_cast<int>(random() % 50));
    }
    std::vector<int> expected = items;
    std::sort(expected.begin(), expected.end());
    merge_sorted_runs(items, run_starts(items), std::less<int>());
    REQUIRE(items == expected);
  }
  std::vector<int> none;
  merge_sorted_runs(none, {}, std::less<int>());
  CHECK(none.empty());
}

TEST_CASE("memtable: a store on it reads back every key in order from the active memtable, a read-only one and the files") {
  TempDir dir;
  rocksdb::Options options;
  options.create_if_missing = true;
  options.allow_concurrent_memtable_write = false;
  options.memtable_factory = std::make_shared<SortedRunsRepFactory>();
  rocksdb::DB* raw = nullptr;
  REQUIRE(rocksdb::DB::Open(options, dir.path(), &raw).ok());
  std::unique_ptr<rocksdb::DB> db(raw);

  std::mt19937 random(11);
  std::map<std::string, std::string> model;
  auto commit = [&](int batch_number) {
    // As a commit: sorted runs (some keys overwritten, so a user key has several versions), then
    // keys in no order and a few deletes.
    rocksdb::WriteBatch batch;
    for (int run = 0; run < 4; ++run) {
      int k = static_cast<int>(random() % 10'000);
      for (int i = 0; i < 300; ++i, k += 1 + static_cast<int>(random() % 5)) {
        const std::string value = fmt::format("v{}.{}", batch_number, i);
        batch.Put(key_of(k), value);
        model[key_of(k)] = value;
      }
    }
    for (int i = 0; i < 50; ++i) {
      const std::string k = key_of(static_cast<int>(random() % 12'000));
      if (i % 5 == 0) {
        batch.Delete(k);
        model.erase(k);
      } else {
        batch.Put(k, "loose");
        model[k] = "loose";
      }
    }
    REQUIRE(db->Write(rocksdb::WriteOptions(), &batch).ok());
  };

  for (int b = 0; b < 6; ++b) commit(b);
  check_reads(*db, model, random);  // the active memtable

  // A read-only memtable whose flush cannot run yet: the reads sort it in place.
  REQUIRE(db->PauseBackgroundWork().ok());
  rocksdb::FlushOptions no_wait;
  no_wait.wait = false;
  REQUIRE(db->Flush(no_wait).ok());
  for (int b = 6; b < 9; ++b) commit(b);
  check_reads(*db, model, random);
  REQUIRE(db->ContinueBackgroundWork().ok());
  REQUIRE(db->Flush(rocksdb::FlushOptions()).ok());
  check_reads(*db, model, random);  // the files the flushes wrote

  db.reset();
  REQUIRE(rocksdb::DB::Open(options, dir.path(), &raw).ok());
  db.reset(raw);
  check_reads(*db, model, random);
}

}  // namespace qudao
