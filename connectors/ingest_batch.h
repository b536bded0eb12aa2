// Ingesting a poll batch: each record through the ledger and into the stock projection, in order,
// exactly as ingest_and_project (connectors/pipeline.h) takes them one at a time: same outcomes, same
// state, same digest, wherever the batch boundaries fall. Only faster.
//
// Why it is faster: applying a scan-out waits on a chain of cache misses in large tables (the
// duplicate window's index, the (sku, store) stock entry, the store's location and distributor, the
// distributor's period stats, the projection's location and its levels of the sku). The batch
// decodes kDecodeAheadRecords records ahead of the one it applies and, as it decodes each, prefetches
// the entries its own fields name (engine/prefetch.h). So a record's misses are
// in flight while the records before it are applied, and applying it finds most of its entries in the
// cache.
//
// Only that one stage: a second one (the entries found through the first ones, 8 records ahead: the
// distributor's period stats and active-store entries, the projection's index slot; then the
// projection's item, 4 ahead) cost more CPU than it saved here: without it the apply row took 1.655
// CPU s per M events against 1.737, six alternated pairs, each pair lower (README, Performance). Those
// entries are few and mostly cached (stats), or their lookups (two more finds of the projection's
// location entry per scan-out) cost what the prefetch saved.
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
  void prefetch(const BatchRecord& r, const Decoded& decoded, StockProjection::Writer& projection);

  std::array<Decoded, kDecodeAheadRecords> decoded_;  // record i is at i % kDecodeAheadRecords
};

}  // namespace qudao
