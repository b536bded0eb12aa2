// Stock history: what a shard keeps of the past so that "stock in region East on 2026-03-31" is a
// lookup, not a replay. Three kinds of rows, all written to RocksDB in the same commit WriteBatch as
// the state that caused them (key layout: engine/store.h, tags 'K', 'U' and 'A'; 'C' and 'Q' in
// stores written before 2026-11-28), never kept in memory beyond the next commit:
//
//   daily closing  per (location, sku) and shard day: on hand, reserved and in transit at the end of
//                  that day, written only for pairs whose stock changed that day. "The end of day D"
//                  is by the shard's event-time clock (Shard::watermark(): the highest occurred_at
//                  the shard has decoded, the clock that also expires orders): when it passes into a
//                  new UTC day, the pairs changed since the last commit are closed at their balance
//                  then. A late event (occurred_at in an earlier day) changes the current shard day's
//                  closing, not the past one: closings are what the books said at the end of each
//                  shard day. The current day's closings are not written until the day ends (a commit
//                  every 100 ms would rewrite them all day): until then a pair's closing is its
//                  balance, which the store keeps with the shard day of the pair's last change, so a
//                  restart knows which pairs to close when the day ends (engine/store.h). Packed: one
//                  key per (location, day) holds every pair closed that day, in sku order (a day is
//                  closed once, by one commit: Shard::close_changed).
//   sold per day   per (location, sku, day): units scanned out, each scan-out counted on the UTC day
//                  of its own occurred_at (a late scan-out adds to its own, earlier day). Packed: one
//                  key per (location, day) holds every sku sold that day with its units, written as a
//                  RocksDB merge whose operator adds per sku, so a commit never reads the store.
//   anomaly        per location: an applied event that a human should look at (a scan-out beyond the
//                  store's stock, a receipt short of what was shipped), with the event id, offset,
//                  sku, units and the day of the event.
//
// Packing is what makes the rows cheap: RocksDB's cost (the memtable insert, the flush's merge,
// compaction) is per key, and a location-day's closings and sales are 2.37 keys per event unpacked
// (README "Packed history"). The export (Store::state_sha256) unpacks them into the rows they
// stand for, 'C' and 'Q', so it is what it was when each row had a key.
//
// Determinism: the rows depend only on the log, not on batch sizes, commit intervals or restarts:
// a day's closing holds the balance at the shard-clock day change (or, for the current day, the
// stored balance, which a replay of the same log reaches too), the sold rows are sums, and
// anomalies are keyed by offset. The rows are part of Store::state_sha256 (the audit's export), not of the
// shard's running digest, which load() checks against the state it restores (history is not loaded).
//
// Per event the work is in memory: the day of its last change on the (sku, location) entry
// (Shard::post), one appended sale per scan-out, one row per anomaly. Owned by its Shard; not
// thread-safe.
#pragma once

#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/types.h"

namespace rocksdb {
class ColumnFamilyHandle;
class MergeOperator;
class WriteBatch;
}  // namespace rocksdb

namespace qudao {

// A UTC calendar day, as days since 1970-01-01.
using Day = Strong<struct DayTag, std::int32_t>;

inline constexpr std::int64_t kDayLengthMs = 86'400'000;

inline Day day_of(TimeMs t) {
  const std::int64_t ms = t.value;
  return Day{static_cast<std::int32_t>(ms >= 0 ? ms / kDayLengthMs : (ms - kDayLengthMs + 1) / kDayLengthMs)};
}

// "YYYY-MM-DD" and back (the API's dates). Nothing for anything else, or a date that does not exist.
std::optional<Day> parse_day(std::string_view text);
std::string format_day(Day day);

struct ClosingLevels {
  std::int64_t on_hand = 0;  // physical stock, reserved included (as StockLevels)
  std::int64_t reserved = 0;
  std::int64_t in_transit = 0;
};

struct Closing {
  Day day;
  LocationId location;
  SkuId sku;
  ClosingLevels levels;
};

enum class AnomalyKind : std::uint8_t {
  scan_out_beyond_stock = 1,  // qty: units scanned out beyond what the store had on hand
  receipt_shortage = 2,       // qty: units shipped but not received (lost or damaged)
};

const char* anomaly_kind_name(AnomalyKind k);

struct AnomalyRecord {
  LocationId location;
  Offset offset;         // of the event in its partition
  std::uint16_t index = 0;  // the n-th anomaly of that event (a receipt may be short of several skus)
  EventId event_id;
  Day day;               // of the event's occurred_at
  AnomalyKind kind = AnomalyKind::scan_out_beyond_stock;
  SkuId sku;
  Quantity qty;
};

// Units of one sku scanned out at a location on one day (a sold row).
struct Sale {
  Day day;
  SkuId sku;
  Quantity qty;
};

struct SaleKey {
  LocationId location;
  Day day;
  SkuId sku;
  friend constexpr bool operator==(const SaleKey&, const SaleKey&) = default;
  friend constexpr auto operator<=>(const SaleKey&, const SaleKey&) = default;  // the sold key's order
};

// How many history rows a commit wrote, by kind, and in how many keys (packed: one per location-day).
struct HistoryCounts {
  std::size_t closings = 0;  // (location, sku) pairs closed
  std::size_t sold = 0;      // (location, day, sku) sums merged
  std::size_t anomalies = 0;
  std::size_t closing_keys = 0;
  std::size_t sold_keys = 0;
  HistoryCounts& operator+=(const HistoryCounts& o) {
    closings += o.closings, sold += o.sold, anomalies += o.anomalies;
    closing_keys += o.closing_keys, sold_keys += o.sold_keys;
    return *this;
  }
};

// What a shard's events added to the history since the last commit.
class StockHistory {
 public:
  // Appended, not summed: the applying thread pays a sequential write per scan-out, and write_to()
  // (on the committer's thread) sums each key's sales into one merge.
  void record_sale(LocationId location, SkuId sku, Day day, Quantity qty) {
    sold_pending_.push_back({SaleKey{location, day, sku}, qty.value});
  }
  void record_anomaly(AnomalyRecord a) { anomalies_pending_.push_back(a); }
  void record_closing(const Closing& c) { closings_pending_.push_back(c); }

  bool pending() const { return !sold_pending_.empty() || !anomalies_pending_.empty() || !closings_pending_.empty(); }
  // Adds the pending rows of partition `p` to `batch`, in column family `family` (keys in
  // engine/store.h; a packed key per location-day of closings, then of sold rows, each in key
  // order, the order the memtable sorts fastest) and forgets them.
  HistoryCounts write_to(PartitionId p, rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* family);

 private:
  std::vector<std::pair<SaleKey, std::int64_t>> sold_pending_;  // one per scan-out, in apply order
  std::vector<AnomalyRecord> anomalies_pending_;
  std::vector<Closing> closings_pending_;
};

// The merge operator of the sold rows: per sku, a sum (a packed 'U' day: every sku present in
// either operand, its units added; an unpacked 'Q' row of an older store: a little-endian i64).
// Associative, so RocksDB merges operands both fully and partially. Store::open installs it.
std::shared_ptr<rocksdb::MergeOperator> sold_merge_operator();

// Key encoding of the history rows (engine/store.h documents the grammar).
namespace history_keys {
inline constexpr char kClosing = 'C';     // unpacked: written before 2026-11-28, still read; the export's rows
inline constexpr char kSold = 'Q';        // likewise
inline constexpr char kClosingDay = 'K';  // packed: a location-day's closings
inline constexpr char kSoldDay = 'U';     // packed: a location-day's sold units
inline constexpr char kAnomaly = 'A';
std::string closing(PartitionId p, LocationId location, SkuId sku, Day day);
std::string sold(PartitionId p, LocationId location, Day day, SkuId sku);
// The same into a reused string (a commit encodes thousands).
void assign_closing(std::string& key, PartitionId p, LocationId location, SkuId sku, Day day);
void assign_sold(std::string& key, PartitionId p, LocationId location, Day day, SkuId sku);
std::string anomaly(PartitionId p, LocationId location, Offset offset, std::uint16_t index);
std::string closing_value(const ClosingLevels& levels);
void assign_closing_value(std::string& value, const ClosingLevels& levels);
// The common prefix of the keys of one location (and of one (location, sku) for closings).
std::string location_prefix(char tag, PartitionId p, LocationId location);
// The packed keys: `tag` kClosingDay or kSoldDay, then partition, location, day.
void assign_day(std::string& key, char tag, PartitionId p, LocationId location, Day day);
std::string day_key(char tag, PartitionId p, LocationId location, Day day);
// The day of a packed key (nothing for a key of another length).
std::optional<Day> day_of_key(std::string_view key);
}  // namespace history_keys

// The value of a packed key (engine/store.h): entries in ascending sku order, each
//   entry := sku_delta:varint levels
//   levels := on_hand:zvarint reserved:zvarint in_transit:zvarint   (a closing day, 'K')
//           | qty:zvarint                                          (a sold day, 'U')
// sku_delta: the sku minus the previous entry's (the first entry's: the sku itself); varint: LEB128;
// zvarint: zigzag, then LEB128. A closing is a few bytes instead of a key and 24 bytes.
namespace packed_day {
void put_closing(std::string& value, SkuId previous, SkuId sku, const ClosingLevels& levels);
void put_sale(std::string& value, SkuId previous, SkuId sku, std::int64_t qty);

// Reads a packed value front to back. next() is false at the end and at corrupt bytes (then
// corrupt() is true).
class Reader {
 public:
  enum class Kind : std::uint8_t { closings, sales };
  Reader(std::string_view value, Kind kind) : in_(value), kind_(kind) {}
  bool next();
  SkuId sku() const { return sku_; }
  const ClosingLevels& levels() const { return levels_; }  // closings
  std::int64_t qty() const { return levels_.on_hand; }      // sales
  bool corrupt() const { return corrupt_; }

 private:
  bool varint(std::uint64_t& out);
  std::string_view in_;
  Kind kind_;
  SkuId sku_{0};
  ClosingLevels levels_;
  bool first_ = true;
  bool corrupt_ = false;
};
}  // namespace packed_day

}  // namespace qudao
