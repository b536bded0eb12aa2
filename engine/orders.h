// Orders and shipments as the ledger tracks them, and their stored encoding.
//
// An order is a state machine: placed -> paid -> dispatched (possibly in parts) -> received, or
// cancelled (before dispatch), or expired (a proxy order still unpaid when event time passes its
// payment deadline). A proxy order (代下单: placed by someone other than the store) reserves stock
// at its fulfilment location until it is paid, dispatched, cancelled or expired.
//
// Encodings (little-endian), used for RocksDB values and for the digest:
//   order    := store:u64 fulfilment:u64 placed_by:u64 deadline_ms:i64 state:u8 due_fen:i64
//               paid_fen:i64 shipments_open:u32 line_count:u32
//               (sku:u64 ordered:i64 reserved:i64 dispatched:i64)*
//   shipment := from:u64 to:u64 order:u64 ended:u8 line_count:u32 (sku:u64 qty:i64)*
//   ended    := bit 0: received; bit 1: handed over to another shard (the source's side of a
//               shipment between shards, whose receipt is the destination's)
#pragma once

#include <absl/container/inlined_vector.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/types.h"

namespace qudao {

enum class OrderState : std::uint8_t { placed = 1, paid = 2, dispatched = 3, received = 4, cancelled = 5, expired = 6 };

const char* order_state_name(OrderState s);

struct OrderLine {
  SkuId sku;
  std::int64_t ordered = 0;
  std::int64_t reserved = 0;    // held at the fulfilment location for this order
  std::int64_t dispatched = 0;
};

struct Order {
  LocationId store;
  LocationId fulfilment;
  std::uint64_t placed_by = 0;
  TimeMs deadline;
  OrderState state = OrderState::placed;
  Fen due;
  Fen paid;
  std::uint32_t shipments_open = 0;  // dispatched, not yet received
  // Inline for the usual few lines: an order is copied on every state change without allocating.
  absl::InlinedVector<OrderLine, 4> lines;

  bool proxy() const { return placed_by != store.value; }
  bool fully_dispatched() const {
    for (const OrderLine& l : lines) if (l.dispatched < l.ordered) return false;
    return true;
  }
  OrderLine* line(SkuId sku) {
    for (OrderLine& l : lines) if (l.sku == sku) return &l;
    return nullptr;
  }
};

struct Shipment {
  LocationId from;
  LocationId to;
  OrderId order;
  bool received = false;
  // The source shard's record of a shipment to another shard: it ended here when it left (the
  // destination's shard holds the shipment that its ShipmentReceived receives).
  bool handed_over = false;
  absl::InlinedVector<std::pair<SkuId, std::int64_t>, 4> lines;
};

// Append the encoding to `out` (which the hot path reuses, so nothing is allocated per event).
void encode_to(std::string& out, const Order& o);
void encode_to(std::string& out, const Shipment& s);
inline std::string encode(const Order& o) { std::string v; encode_to(v, o); return v; }
inline std::string encode(const Shipment& s) { std::string v; encode_to(v, s); return v; }
std::optional<Order> decode_order(std::string_view bytes);
std::optional<Shipment> decode_shipment(std::string_view bytes);

}  // namespace qudao
