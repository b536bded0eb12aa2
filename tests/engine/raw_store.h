// A store's RocksDB opened directly, every column family included, for tests that rewrite a store
// behind the engine's back (corrupt it, or turn it into a layout an older version wrote).
#pragma once

#include <doctest/doctest.h>
#include <rocksdb/db.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/codec.h"
#include "engine/history.h"
#include "engine/store.h"

namespace qudao {

class RawStore {
 public:
  explicit RawStore(const std::string& dir) {
    rocksdb::Options options;
    options.merge_operator = sold_merge_operator();
    std::vector<std::string> names;
    REQUIRE(rocksdb::DB::ListColumnFamilies(options, dir, &names).ok());
    std::vector<rocksdb::ColumnFamilyDescriptor> descriptors;
    for (const std::string& name : names) descriptors.emplace_back(name, rocksdb::ColumnFamilyOptions(options));
    std::vector<rocksdb::ColumnFamilyHandle*> handles;
    rocksdb::DB* raw = nullptr;
    REQUIRE(rocksdb::DB::Open(options, dir, descriptors, &handles, &raw).ok());
    db_.reset(raw);
    for (std::size_t i = 0; i < names.size(); ++i) {
      handles_.emplace_back(handles[i]);
      if (names[i] == kHistoryColumnFamily) history_ = handles[i];
    }
  }
  ~RawStore() {
    handles_.clear();  // before the DB closes
  }
  rocksdb::DB& db() { return *db_; }
  rocksdb::ColumnFamilyHandle* history() { return history_; }  // null in a store from before it

  // The keys of one family (the default one: null) whose tag is one of `tags` (all: kAnyTag).
  static constexpr std::string_view kAnyTag{};
  std::size_t count_tagged(rocksdb::ColumnFamilyHandle* family, std::string_view tags) {
    std::unique_ptr<rocksdb::Iterator> it(family ? db_->NewIterator(rocksdb::ReadOptions(), family)
                                                 : db_->NewIterator(rocksdb::ReadOptions()));
    std::size_t n = 0;
    for (it->SeekToFirst(); it->Valid(); it->Next()) n += tags.empty() || tags.find(it->key()[0]) != std::string_view::npos;
    REQUIRE(it->status().ok());
    return n;
  }

  // Makes it a store from before the history family: its rows moved to the default family, the
  // family dropped.
  void move_history_to_default_family() {
    REQUIRE(history_ != nullptr);
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), history_));
    for (it->SeekToFirst(); it->Valid(); it->Next()) batch.Put(it->key(), it->value());
    REQUIRE(it->status().ok());
    it.reset();
    REQUIRE(db_->Write(rocksdb::WriteOptions(), &batch).ok());
    REQUIRE(db_->DropColumnFamily(history_).ok());
    handles_.erase(std::find_if(handles_.begin(), handles_.end(), [&](const auto& h) { return h.get() == history_; }));
    history_ = nullptr;
  }

  // Makes its history rows what a store written before packing held: each packed day ('K', 'U')
  // rewritten as its unpacked rows ('C', 'Q'), in the family it is in.
  void unpack_history() {
    rocksdb::ColumnFamilyHandle* family = history_ ? history_ : db_->DefaultColumnFamily();
    rocksdb::WriteBatch batch;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), family));
    for (it->SeekToFirst(); it->Valid(); it->Next()) {
      const std::string_view key = it->key().ToStringView();
      const bool closings = key[0] == history_keys::kClosingDay;
      if (!closings && key[0] != history_keys::kSoldDay) continue;
      codec::Reader k(key.substr(1));
      const PartitionId p{k.be<std::int32_t>()};
      const LocationId location{k.be<std::uint64_t>()};
      const std::optional<Day> day = history_keys::day_of_key(key);
      REQUIRE(day);
      packed_day::Reader r(it->value().ToStringView(),
                           closings ? packed_day::Reader::Kind::closings : packed_day::Reader::Kind::sales);
      while (r.next()) {
        if (closings) {
          batch.Put(family, history_keys::closing(p, location, r.sku(), *day), history_keys::closing_value(r.levels()));
        } else {
          std::string qty;
          codec::put_le<std::int64_t>(qty, r.qty());
          batch.Merge(family, history_keys::sold(p, location, *day, r.sku()), qty);
        }
      }
      REQUIRE(!r.corrupt());
      batch.Delete(family, it->key());
    }
    REQUIRE(it->status().ok());
    it.reset();
    REQUIRE(db_->Write(rocksdb::WriteOptions(), &batch).ok());
  }

 private:
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<std::unique_ptr<rocksdb::ColumnFamilyHandle>> handles_;
  rocksdb::ColumnFamilyHandle* history_ = nullptr;
};

}  // namespace qudao
