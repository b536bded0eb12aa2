// Stock projection: the read model HQ queries for stock, per location × sku and rolled up per city,
// region and nation. It is fed the ledger's postings of every applied event (so the movement rules
// live only in engine/apply.cc), the locations the ledger defines, the scan-outs (sold units per
// day) and each shard's event-time day. It keeps no durable state of its own: the stock is rebuilt
// from the loaded ledger on start, and the sold window from the stored history (engine/history.h,
// projections/stock_history.h), which also answers as-of and period questions.
//
// Days of cover = on hand ÷ (units sold over the last kCoverWindowDays shard days ÷ kCoverWindowDays).
// "The last 28 shard days" are the location's shard day (the day of its event-time clock) and the 27
// before it; each scan-out counts on the day of its own occurred_at, and days before the shard's
// first event count as days without sales. No sales in the window: no cover figure (it is unbounded)
// and never below reorder. A row is below reorder when it has a cover figure under its reorder
// threshold (ReorderRule): the reader's figure if it gives one (it overrides every sku's); else the
// sku's own reorder point (SkuDefined.reorder_cover_days); else kReorderCoverDaysDefault days.
//
// Per-sku reorder points: the catalogue is applied only on the shard its SkuDefined is keyed to (the
// simulator keys it to HQ's), while the stock rows are on every regional shard, so the projection
// keeps one process-wide map sku → (partition, days), fed by every shard of this process. A row uses
// its own location's shard's figure if that shard defined one, else that of the lowest-numbered
// partition that did: a deterministic answer from the stored state whatever the order the shards were
// applied or loaded in. An instance sees only the partitions it owns: where instances split them, key
// SkuDefined to every region (events/PRODUCERS.md). The figure is the sku's current one, also as of a
// past day (reorder points are planning settings, not history).
//
// Readers pass the RegionScope they may see (projections/scope.h): a location, city or region outside
// it is not found, exactly like an unknown one, and listings and roll-ups cover only the scope.
//
// Thread-safety: one writer (the pipeline thread, through a Writer that holds the exclusive lock
// while it projects one record, see Writer) and any number of readers (HTTP handlers). The lock is a
// PiMutex (engine/pi_mutex.h): readers exclude each other too, and a real-time reader lends its
// priority to the writer it waits for.
#pragma once

#include <absl/container/btree_set.h>
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

#include "engine/history.h"
#include "engine/ledger.h"
#include "engine/pi_mutex.h"
#include "projections/scope.h"
#include "projections/sku_levels.h"

namespace qudao {

inline constexpr std::int32_t kCoverWindowDays = 28;
inline constexpr std::int64_t kReorderCoverDaysDefault = 14;
inline constexpr PartitionId kNoPartition{-1};  // a location whose shard is not known (no history)

// Days of cover (nothing without sales in the window) and the below-reorder flag of a stock level.
struct Cover {
  std::optional<double> days;
  bool below_reorder = false;
};
Cover cover(Quantity on_hand, Quantity sold_window, std::int64_t reorder_cover_days);

// The reorder threshold of one row and where it came from.
enum class ReorderSource : std::uint8_t { query, sku, default_days };
const char* reorder_source_name(ReorderSource s);  // "query", "sku", "default"
struct ReorderThreshold {
  std::int64_t days = kReorderCoverDaysDefault;
  ReorderSource source = ReorderSource::default_days;
};
// A reader's reorder rule: its own figure for every row, or (without one) each sku's reorder point,
// else the default.
struct ReorderRule {
  std::optional<std::int64_t> query_days;
  ReorderThreshold threshold(std::int32_t sku_reorder_cover_days) const {
    if (query_days) return {*query_days, ReorderSource::query};
    if (sku_reorder_cover_days > 0) return {sku_reorder_cover_days, ReorderSource::sku};
    return {};
  }
};

struct StockRow {
  LocationId location;
  SkuId sku;
  StockLevels levels;
  Quantity sold_window;  // units sold over the cover window (the last kCoverWindowDays shard days)
  std::optional<Quantity> sold_period;  // units sold in a period a reader asked for (stock_history.h)
  std::int32_t sku_reorder_cover_days = 0;  // the sku's own reorder point for this row's shard; 0: none
};

// One location's attributes and its stock per sku, ordered by sku.
struct LocationStock {
  LocationId location;
  LocationInfo info;
  std::vector<StockRow> rows;
  PartitionId partition = kNoPartition;  // whose stored history holds the location's past
  Day today;                             // its shard's day: the last day of the cover window
};

struct RegionTotals {
  std::string region;
  std::size_t locations = 0;
  StockLevels levels;
};

// A page of stock rows, grouped by location (ascending id), each location's rows by sku.
struct StockCursor {
  LocationId location;
  SkuId sku;
};
struct StockFilter {
  std::optional<std::string> region;
  std::optional<std::string> city;
  std::optional<LocationId> location;
  std::optional<SkuId> sku;
};
struct StockPage {
  std::vector<LocationStock> locations;
  std::optional<StockCursor> next;  // where the next page starts (inclusive); none after the last
};

enum class RollupLevel : std::uint8_t { city, region, nation };

// One group of a roll-up: a city (region and city set), a region (city empty) or the nation (both
// empty), with the locations it holds.
struct GroupStock {
  std::string region;
  std::string city;
  std::size_t locations = 0;
  StockLevels levels;
  Quantity sold_window;
  std::size_t rows_below_reorder = 0;  // location × sku rows below the reorder threshold
  std::optional<Quantity> sold_period;  // units sold in a period a reader asked for (stock_history.h)
};

// A group's locations, for reading their history (as-of roll-ups): where each is stored, which
// skus it has ever held.
struct LocationRef {
  LocationId location;
  PartitionId partition = kNoPartition;
  Day today;
  std::vector<SkuId> skus;
  std::vector<std::int32_t> sku_reorder_cover_days;  // per sku of skus: its own reorder point, 0: none
};
struct GroupRefs {
  std::string region;
  std::string city;
  std::vector<LocationRef> locations;
};

class StockProjection {
 public:
  // The one writer. It takes the exclusive lock at its first change and holds it until release()
  // (or its end): the pipeline releases it after each record's changes, so that the lock is held
  // only while a record is projected, never while the next one is decoded and applied, and a
  // query never waits for a writer that the kernel preempted in the middle of applying.
  class Writer {
   public:
    explicit Writer(StockProjection& p) : p_(p), lock_(p.mutex_, std::defer_lock) {}
    // `partition`: the shard that owns the location, where its history is stored.
    void define_location(LocationId id, const LocationInfo& info, PartitionId partition = kNoPartition) {
      hold();
      p_.define_location(id, info, partition);
    }
    void project(std::span<const Posting> postings) {
      if (postings.empty()) return;
      hold();
      p_.project(postings);
      // A writer that holds the lock for many records (a rebuild) lets a waiting reader in every
      // few hundred: a query waits for at most that many records' worth of projecting.
      if (++since_yield_ >= kYieldEveryRecords && p_.readers_waiting_.load(std::memory_order_relaxed) > 0) {
        since_yield_ = 0;
        lock_.unlock();
        for (int i = 0; i < kYieldWaitsMax && p_.readers_waiting_.load(std::memory_order_relaxed) > 0; ++i) {
          std::this_thread::yield();
        }
        lock_.lock();
      }
    }
    // Units scanned out at a store on `day` (the scan-out's own day).
    void record_sale(LocationId location, SkuId sku, Day day, Quantity qty) {
      hold();
      p_.record_sale(location, sku, day, qty);
    }
    // A SkuDefined applied on `partition`: the sku's reorder point there (days of cover, 1..365),
    // or 0 for none (a redefinition without one clears it).
    void define_reorder_point(PartitionId partition, SkuId sku, std::int32_t reorder_cover_days) {
      hold();
      p_.define_reorder_point(partition, sku, reorder_cover_days);
    }
    // The shard's event-time day (engine: Shard::watermark); it only moves forward.
    void advance_day(PartitionId partition, Day today) {
      if (p_.day_unchanged(partition, today)) return;  // the writer's own state: no lock to read it
      hold();
      p_.advance_day(partition, today);
    }
    // A hint for a record a few records from now (connectors/ingest_batch.h): prefetches the
    // location's entry that project() and record_sale() will look up. Takes no lock: the writer's
    // thread is the only one that changes the projection, so its own reads need none.
    void prefetch(LocationId location) const { p_.locations_.prefetch(location); }
    // Lets readers in until the next change.
    void release() {
      if (lock_.owns_lock()) lock_.unlock();
    }

   private:
    void hold() {
      if (!lock_.owns_lock()) lock_.lock();
    }
    static constexpr std::size_t kYieldEveryRecords = 256;
    static constexpr int kYieldWaitsMax = 1000;  // yields, then the writer takes the lock back regardless
    StockProjection& p_;
    std::unique_lock<PiMutex> lock_;
    std::size_t since_yield_ = 0;
  };

  // One location with every sku stocked there (or just `sku`, no rows if it has none); nothing if
  // the ledger has not defined the location or its region is outside `scope`.
  std::optional<LocationStock> location_stock(LocationId location, std::optional<SkuId> sku,
                                              const RegionScope& scope) const;
  // Totals of the scope's regions that have locations, ordered by region name.
  std::vector<RegionTotals> region_totals(const RegionScope& scope) const;

  // At most `limit` rows matching `filter` within `scope`, from `from` on (inclusive). Nothing if the
  // filter names a region, city or location that is unknown or outside the scope.
  std::optional<StockPage> stock_page(const StockFilter& filter, const RegionScope& scope,
                                      std::optional<StockCursor> from, std::size_t limit) const;

  // Groups of a roll-up within `scope` (optionally one region), ordered by (region, city), the
  // first at or after `from` (region, city), at most `limit`; `more` tells whether groups follow.
  // Nothing if `region` is unknown or outside the scope.
  std::optional<std::vector<GroupStock>> rollup(RollupLevel level, const RegionScope& scope,
                                                const std::optional<std::string>& region,
                                                const std::pair<std::string, std::string>& from, std::size_t limit,
                                                const ReorderRule& reorder, bool& more) const;
  // The same groups, with their locations instead of totals (for as-of roll-ups from the history).
  std::optional<std::vector<GroupRefs>> rollup_refs(RollupLevel level, const RegionScope& scope,
                                                    const std::optional<std::string>& region,
                                                    const std::pair<std::string, std::string>& from,
                                                    std::size_t limit, bool& more) const;

  // Where a location's history is (no skus); nothing if unknown or outside `scope`.
  std::optional<LocationRef> locate(LocationId location, const RegionScope& scope) const;

 private:
  struct DaySales {
    Day day;
    std::vector<std::pair<SkuId, std::int64_t>> sold;  // per sku (one entry each)
  };
  struct Totals {
    std::string region;
    std::string city;
    StockLevels levels;
    std::vector<LocationId> locations;  // ascending
  };
  // `skus` first: it then shares the cache line that prefetching the location's slot brings in.
  struct Entry {
    SkuLevels skus;  // by sku in one probe, listed in sku order (projections/sku_levels.h)
    LocationInfo info;
    PartitionId partition = kNoPartition;
    Totals* region = nullptr;  // in regions_, whose nodes never move
    Totals* city = nullptr;    // in cities_, likewise
    std::vector<DaySales> sales;  // the days of the cover window (and older ones not yet dropped), by day
  };

  void define_location(LocationId id, const LocationInfo& info, PartitionId partition);
  void project(std::span<const Posting> postings);
  void record_sale(LocationId location, SkuId sku, Day day, Quantity qty);
  void advance_day(PartitionId partition, Day today);
  void define_reorder_point(PartitionId partition, SkuId sku, std::int32_t reorder_cover_days);
  // The sku's reorder point for a location on `partition` (see the header comment); 0: none.
  std::int32_t reorder_point(SkuId sku, PartitionId partition) const;
  bool day_unchanged(PartitionId partition, Day today) const;
  Day today(const Entry& e) const;
  // Units sold per sku over the cover window ending on the location's shard day, by sku.
  void sold_window(const Entry& e, absl::flat_hash_map<SkuId, std::int64_t>& out) const;
  LocationStock make_location_stock(LocationId id, const Entry& e, std::optional<SkuId> sku,
                                    std::optional<SkuId> from_sku, std::size_t limit) const;
  // The groups of a roll-up in scope, from `from`, at most limit (+ whether more follow).
  std::optional<std::vector<const Totals*>> groups(RollupLevel level, const RegionScope& scope,
                                                   const std::optional<std::string>& region,
                                                   const std::pair<std::string, std::string>& from,
                                                   std::size_t limit, bool& more) const;

  // A reader registers here before it waits for the lock, so the writer knows to pause.
  std::shared_lock<PiMutex> read_lock() const;
  // Priority inheritance (engine/pi_mutex.h): a real-time HTTP thread waiting here lends its
  // priority to the writer, so a preempted writer holding the lock gets a core at once.
  mutable PiMutex mutex_;
  mutable std::atomic<int> readers_waiting_{0};
  absl::flat_hash_map<LocationId, Entry> locations_;
  absl::btree_set<LocationId> ordered_;  // every location, for paging in id order
  std::map<std::string, Totals> regions_;
  std::map<std::pair<std::string, std::string>, Totals> cities_;  // (region, city)
  absl::flat_hash_map<std::int32_t, Day> today_;                 // per partition
  // sku -> (partition, reorder_cover_days) of every shard that gave it one, by partition.
  absl::flat_hash_map<SkuId, std::vector<std::pair<std::int32_t, std::int32_t>>> reorder_points_;
};

}  // namespace qudao
