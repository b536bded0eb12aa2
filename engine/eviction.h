// Eviction of cold orders and shipments (issue 4: memory stays bounded while the history grows).
//
// An order in a terminal state (received, cancelled, expired) and a received shipment are cold: no
// event changes them again (every later event naming one is rejected, engine/apply.cc). Once the
// commit that wrote such an entry is durable, the shard (engine/ledger.h) may drop it from memory and
// keep only its id in a set of evicted ids; an event that names an evicted id reads it back with one
// point Get from the store (ColdReader) and goes on exactly as if it had never left. A new order or
// shipment id is checked against the set, never the store, so an ordinary event reads nothing.
//
// Determinism: eviction changes where an entry is, never what it is. The digest is a sum over all
// entries kept as they change (an evicted entry's share stays in it), the store holds the same rows,
// and a reloaded entry is the committed one, which is the one that was evicted: the same log gives
// the same outcomes, digest and export whatever the policy (tests/engine/simulation_test.cc runs
// every stored seed with eviction off and with it at its most aggressive).
//
// When: at a commit (Shard::mark_clean, called by Store::prepare), the entries that earlier commits
// wrote in a terminal state are evicted, oldest first, until at most `terminal_kept_max` of them are
// left in memory (per shard, orders and shipments each). "Earlier commits" are durable because a
// commit is prepared only after the previous one was waited for (engine/committer.h; Store::commit
// is synchronous). An entry the order projection has not drained yet (projections/orders.h) is kept
// until it has; a shard nobody drains evicts nothing.
//
// What stays per evicted entry: its id in a hash set (8 bytes a slot, 10-20 bytes an id with the
// set's load factor), against some 200 bytes an order takes resident. Not thread-safe: the reader is
// called on the applying thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>
#include <optional>

#include "engine/orders.h"
#include "events/types.h"

namespace qudao {

// Keep every entry in memory (eviction off).
inline constexpr std::size_t kTerminalKeptAll = std::numeric_limits<std::size_t>::max();
// Recently ended orders are the likeliest to be named again (a late receipt, a re-sent payment):
// keeping the newest 10,000 per shard (about 2 MB) makes the reads back rare.
inline constexpr std::size_t kTerminalKeptMaxDefault = 10'000;

struct EvictionPolicy {
  // Durable terminal orders (and, separately, received shipments) a shard keeps in memory; beyond
  // that the oldest are evicted at a commit. 0 evicts each at the first commit after it is durable;
  // kTerminalKeptAll turns eviction off.
  std::size_t terminal_kept_max = kTerminalKeptMaxDefault;
};

// Per shard, since it started.
struct EvictionCounts {
  std::uint64_t orders_evicted = 0;
  std::uint64_t shipments_evicted = 0;
  std::uint64_t orders_reloaded = 0;
  std::uint64_t shipments_reloaded = 0;

  EvictionCounts& operator+=(const EvictionCounts& o) {
    orders_evicted += o.orders_evicted, shipments_evicted += o.shipments_evicted;
    orders_reloaded += o.orders_reloaded, shipments_reloaded += o.shipments_reloaded;
    return *this;
  }
};

// Where evicted entries are read back from: the store that committed them (engine/store.h). A read
// that fails (I/O) or finds corrupt bytes is fatal: the event cannot be applied without the entry,
// and the engine restarts from its last commit.
class ColdReader {
 public:
  // The committed entry; nothing if the store has none.
  virtual std::optional<Order> read_order(PartitionId p, OrderId id) = 0;
  virtual std::optional<Shipment> read_shipment(PartitionId p, ShipmentId id) = 0;

 protected:
  ~ColdReader() = default;
};

}  // namespace qudao
