// Prefetching for a batch: applying one scan-out reads a handful of entries scattered over large
// tables (the duplicate window's index, the (sku, store) stock entry, the store's distributor and
// its period stats), an event that moves goods in lines one (sku, location) entry per line, and
// each read waits for memory. A batch decodes its records ahead of applying
// them (connectors/ingest_batch.h) and asks the shard to prefetch what each will read, so those
// waits overlap instead of queueing behind one another.
//
// Some entries are found only through others (a store's distributor's period stats, through the
// store's assignment), so a record is prefetched in two stages: first the entries its own fields
// name, then, some records later, when those have arrived, the entries they point to.
//
// Prefetching is a hint: it reads state (never writes it) and changes no outcome; a stage that finds
// nothing (an unknown store) prefetches nothing. Same thread as the apply, like the shard itself.
#pragma once

#include <cstdint>

namespace qudao {

enum class PrefetchStage : std::uint8_t {
  keys,   // the entries named by the event's own fields
  links,  // the entries found through those (read now, so they should be in the cache)
};

}  // namespace qudao
