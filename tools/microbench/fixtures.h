// Inputs the microbenchmarks share, built outside every timed loop and kept for the whole run:
// aligned event bytes, random postings, and shards of realistic size.
//
// A shard of N stock keys is made the way a restart makes it, through the store's restore_* calls
// (engine/ledger.h): the same hash tables and digest as a shard that applied millions of events,
// built in a fraction of a second instead of a replay. Its layout:
//
//   location 1                    a sub-warehouse holding every sku (on_hand 10^12)
//   locations 100 .. 100+stores   stores, each holding every sku (on_hand 10^9, so scan-outs never
//                                 run a store dry and every event takes the common, unflagged path)
//   stock keys                    stores x skus store on-hand balances (+ skus warehouse balances)
//   duplicate window              full: `dedup_window_events` ids with hi = kWindowIdHi, which no
//                                 benchmark stream uses, so every streamed event is new
//
// Not thread-safe: the benchmarks run on one thread.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <vector>

#include "engine/ledger.h"
#include "events/encode.h"
#include "tools/simulate_random.h"

namespace qudao::microbench {

inline constexpr std::int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z
inline constexpr std::string_view kSource = "qudao-simulate";
inline constexpr std::uint64_t kWindowIdHi = 1;  // ids prefilled into duplicate windows
inline constexpr std::uint64_t kStreamIdHi = 2;  // ids of streamed events
inline constexpr LocationId kWarehouse{1};
inline constexpr std::int64_t kStoreOnHand = 1'000'000'000;
inline constexpr std::int64_t kWarehouseOnHand = 1'000'000'000'000;

// The simulator's splitmix64 (tools/simulate_random.h): seeded, the same inputs on every run and machine.
using sim::Rng;

// Events back to back in one buffer, each starting kEventAlignment-aligned as decode() requires
// (the Kafka source copies unaligned record values the same way).
class EventArena {
 public:
  void add(std::span<const std::uint8_t> bytes);
  std::span<const std::uint8_t> operator[](std::size_t i) const {
    return {reinterpret_cast<const std::uint8_t*>(words_.data() + items_[i].word), items_[i].bytes};
  }
  std::size_t size() const { return items_.size(); }
  std::size_t total_bytes() const { return total_bytes_; }

 private:
  struct Item {
    std::size_t word;
    std::uint32_t bytes;
  };
  std::vector<std::uint64_t> words_;
  std::vector<Item> items_;
  std::size_t total_bytes_ = 0;
};

// stores x skus = stock keys: 1,000 skus (a brand's active catalogue), fewer for tiny tables.
struct ShardShape {
  std::size_t stores = 0;
  std::size_t skus = 0;

  std::size_t stock_keys() const { return stores * skus; }
  static ShardShape for_stock_keys(std::size_t keys);
};

inline LocationId store_id(std::size_t i) { return LocationId{100 + i}; }
inline SkuId sku_id(std::size_t i) { return SkuId{1 + i}; }

// The shard described above, built on first use and kept; benchmarks copy it (a copy is a fraction
// of the cost of a rebuild, and leaves the original untouched for the next run).
const Shard& loaded_shard(std::size_t stock_keys, std::size_t dedup_window_events = kDedupWindowEventsDefault);

// What a scan-out posts: (sku, store, on_hand) -qty and (sku, 0, consumers) +qty, for `events`
// scan-outs at uniformly random (store, sku) of the shape (the worst case for caches: real sales
// are skewed towards fast movers). Flattened: postings 2i and 2i+1 are event i's.
const std::vector<Posting>& scan_out_postings(std::size_t stock_keys);
inline constexpr std::size_t kScanOutPostingEvents = 1 << 18;

// Pre-encoded streams for Applier::ingest, with ids kStreamIdHi:1, 2, ... one second apart. Every
// event applies (no rejections) to loaded_shard(stock_keys) when fed from the first one on.
enum class StreamKind : std::uint8_t {
  scan_outs,     // only ScanOut, uniformly random (store, sku), 30% with an item code (一物一码)
  channel_mix,   // 80% ScanOut; per 20 events one order's life: OrderPlaced (3 lines, a third of
                 // them proxy orders that reserve), OrderPaid, ShipmentDispatched, ShipmentReceived
};
inline constexpr std::size_t kStreamEvents = 1 << 18;
const EventArena& event_stream(StreamKind kind, std::size_t stock_keys);

}  // namespace qudao::microbench
