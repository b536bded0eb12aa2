// Stock projection: the read model HQ queries for stock, per location × sku and totals per region.
// It is fed the ledger's postings of every applied event (so the movement rules live only in
// engine/apply.cc) and the locations the ledger defines; it keeps no durable state of its own and
// is rebuilt from the loaded ledger on start.
//
// Readers pass the RegionScope they may see (projections/scope.h): a location outside it is not
// found, exactly like an unknown one, and region totals list only the scope's regions.
//
// Thread-safety: one writer (the pipeline thread, through a Writer that holds the exclusive lock
// for a whole poll batch) and any number of concurrent readers (HTTP handlers).
#pragma once

#include <absl/container/btree_map.h>
#include <absl/container/flat_hash_map.h>

#include <map>
#include <atomic>
#include <mutex>
#include <thread>
#include <optional>
#include <shared_mutex>
#include <span>
#include <string>
#include <vector>

#include "engine/ledger.h"
#include "projections/scope.h"

namespace qudao {

// on_hand is physical stock at the location; reserved is the part of it held for proxy orders;
// available = on_hand - reserved.
struct StockLevels {
  Quantity on_hand;
  Quantity reserved;
  Quantity in_transit;

  Quantity available() const { return Quantity{on_hand.value - reserved.value}; }
};

struct StockRow {
  LocationId location;
  SkuId sku;
  StockLevels levels;
};

// One location's attributes and its stock per sku, ordered by sku.
struct LocationStock {
  LocationId location;
  LocationInfo info;
  std::vector<StockRow> rows;
};

struct RegionTotals {
  std::string region;
  std::size_t locations = 0;
  StockLevels levels;
};

class StockProjection {
 public:
  class Writer {
   public:
    explicit Writer(StockProjection& p) : p_(p), lock_(p.mutex_) {}
    void define_location(LocationId id, const LocationInfo& info) { p_.define_location(id, info); }
    void project(std::span<const Posting> postings) {
      p_.project(postings);
      // Every few hundred records, a reader that is waiting gets its turn: a query waits for at
      // most that many records' worth of projecting, not for a whole poll batch.
      if (++since_yield_ >= kYieldEveryRecords && p_.readers_waiting_.load(std::memory_order_relaxed) > 0) {
        since_yield_ = 0;
        lock_.unlock();
        for (int i = 0; i < kYieldWaitsMax && p_.readers_waiting_.load(std::memory_order_relaxed) > 0; ++i) {
          std::this_thread::yield();
        }
        lock_.lock();
      }
    }

   private:
    static constexpr std::size_t kYieldEveryRecords = 256;
    static constexpr int kYieldWaitsMax = 1000;  // yields, then the writer takes the lock back regardless
    StockProjection& p_;
    std::unique_lock<std::shared_mutex> lock_;
    std::size_t since_yield_ = 0;
  };

  // One location with every sku stocked there (or just `sku`, no rows if it has none); nothing if
  // the ledger has not defined the location or its region is outside `scope`.
  std::optional<LocationStock> location_stock(LocationId location, std::optional<SkuId> sku,
                                              const RegionScope& scope) const;
  // Totals of the scope's regions that have locations, ordered by region name.
  std::vector<RegionTotals> region_totals(const RegionScope& scope) const;

 private:
  struct Entry {
    LocationInfo info;
    RegionTotals* region = nullptr;  // in regions_, whose nodes never move
    absl::btree_map<SkuId, StockLevels> skus;
  };

  void define_location(LocationId id, const LocationInfo& info);
  void project(std::span<const Posting> postings);

  // A reader registers here before it waits for the lock, so the writer knows to pause.
  std::shared_lock<std::shared_mutex> read_lock() const;
  mutable std::shared_mutex mutex_;
  mutable std::atomic<int> readers_waiting_{0};
  absl::flat_hash_map<LocationId, Entry> locations_;
  std::map<std::string, RegionTotals> regions_;
};

}  // namespace qudao
