// Ingesting a poll batch: each record through the ledger and into the stock projection, in order,
// exactly as ingest_and_project (connectors/pipeline.h) takes them one at a time: same outcomes, same
// state, same digest, wherever the batch boundaries fall. Only faster.
//
// Why it is faster: applying a scan-out waits on a chain of cache misses in large tables (the
// duplicate window's index, the (sku, store) stock entry, the store's location and distributor, the
// distributor's period stats, the projection's location and its levels of the sku). The batch
// decodes kDecodeAheadRecords records ahead of the one it applies and prefetches what each will read
// (engine/prefetch.h): the entries its own fields name as it is decoded, the entries found through
// those kLinksAheadRecords records before it is applied, and the projection's item of a scan-out's
// (store, sku), found through its index slot, kItemsAheadRecords before (projections/sku_levels.h). So a record's misses are in flight while the
// records before it are applied, and applying it finds its entries in the cache.
//
// Decoding is pure (bytes in, event out), prefetching only reads, and the applying itself is the
// single-record path: nothing the look-ahead does can change an outcome. The projection writer's
// lock is still released after every record (queries get in between records).
//
// One BatchIngester per applying thread (it keeps the decoded look-ahead between calls' records);
// not thread-safe.
#pragma once

#include <array>
#include <cstddef>
#include <optional>
#include <span>
#include <vector>

#include "engine/apply.h"
#include "projections/stock.h"

namespace qudao {

// One record of a batch: its shard, its offset in the shard's partition, its bytes (which must stay
// put until the batch is ingested) and its Kafka key (kept with a dead letter).
struct BatchRecord {
  Shard* shard = nullptr;
  Offset offset;
  std::span<const std::uint8_t> bytes;
  std::span<const std::uint8_t> key;
};

class BatchIngester {
 public:
  // Ingests and projects `records` in order. A record at an offset its shard has already passed is
  // skipped (never applied twice). `outcomes`, if given, is filled with one entry per record:
  // nothing for a skipped one.
  void ingest_and_project(Applier& applier, std::span<const BatchRecord> records, StockProjection::Writer& projection,
                          std::vector<std::optional<RecordOutcome>>* outcomes = nullptr);

 private:
  // How far ahead a record is decoded and its own entries prefetched: enough records' worth of apply
  // time to cover a memory access, few enough that the lines are still cached when used.
  static constexpr std::size_t kDecodeAheadRecords = 16;
  // How far ahead the entries found through them are prefetched (less than the above: by then the
  // first stage's lines have arrived, so finding the links does not itself wait).
  static constexpr std::size_t kLinksAheadRecords = 8;
  static_assert(kLinksAheadRecords < kDecodeAheadRecords);
  // How far ahead a scan-out's item in the stock projection is prefetched: its index slot was
  // prefetched with the links, so by now it has arrived and names the item (projections/sku_levels.h).
  static constexpr std::size_t kItemsAheadRecords = 4;
  static_assert(kItemsAheadRecords < kLinksAheadRecords);

  void prefetch(const BatchRecord& r, const Decoded& decoded, PrefetchStage stage, StockProjection::Writer& projection);
  void prefetch_item(const Decoded& decoded, StockProjection::Writer& projection);

  std::array<Decoded, kDecodeAheadRecords> decoded_;  // record i is at i % kDecodeAheadRecords
};

}  // namespace qudao
