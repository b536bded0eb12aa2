// EventWriter builds contract-conforming event bytes, for producers written in C++ (the simulator,
// tests, tools). It covers every event type; any event can also be made from its JSON form
// (events/json.h). It writes what it is given: values that break the contract's rules (a negative
// quantity, say) are written as they are, so that tests can make rejected events too. Each call
// returns a view into the writer's own buffer, valid until the next call.
// Not thread-safe: one writer per thread.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "events/decode.h"

namespace qudao {

struct Header {
  EventId id;
  TimeMs occurred_at;
  std::string_view source;
  std::uint16_t schema_version = kSchemaVersion;
};

struct Line {
  SkuId sku;
  Quantity qty;
};

struct PricedLine {
  SkuId sku;
  Quantity qty;
  Fen unit_price;
};

// One tier of a rebate policy, in basis points (10000 = 100 %).
struct RebateTierBp {
  std::int32_t attainment_bp = 0;
  std::int32_t rebate_bp = 0;
};

class EventWriter {
 public:
  using Bytes = std::span<const std::uint8_t>;

  Bytes location_defined(const Header& h, LocationId location, fb::LocationKind kind,
                         std::string_view name, std::string_view city, std::string_view region);
  Bytes production_completed(const Header& h, std::uint64_t batch, LocationId location,
                             std::span<const Line> lines);
  Bytes order_placed(const Header& h, OrderId order, LocationId store, std::uint64_t placed_by,
                     LocationId fulfilment_location, TimeMs payment_deadline,
                     std::span<const PricedLine> lines);
  // `to_region` (version 5) empty: not written (a shipment within one region).
  Bytes shipment_dispatched(const Header& h, ShipmentId shipment, LocationId from, LocationId to,
                            OrderId order, std::span<const Line> lines, std::string_view to_region = {});
  // The arrival leg of a shipment between shards (version 5): what qudao itself sends.
  Bytes shipment_transferred(const Header& h, ShipmentId shipment, LocationId from, std::string_view from_region,
                             LocationId to, std::span<const Line> lines, EventId dispatch_event);
  Bytes shipment_received(const Header& h, ShipmentId shipment, LocationId location,
                          std::span<const Line> lines);
  Bytes scan_out(const Header& h, LocationId store, SkuId sku, Quantity qty, std::string_view item_code);
  Bytes order_paid(const Header& h, OrderId order, std::uint64_t payer, Fen amount);
  Bytes order_cancelled(const Header& h, OrderId order, std::string_view reason);
  Bytes stock_counted(const Header& h, LocationId location, std::span<const Line> counted);
  Bytes sku_defined(const Header& h, SkuId sku, std::string_view code, std::string_view name,
                    std::string_view category, std::string_view unit, Fen list_price, std::int32_t lead_time_days,
                    std::int32_t reorder_cover_days = 0);  // 0: no reorder point of its own (not written)
  // `industry` empty: not set. `location`: a Store party's location, 0 for other kinds.
  Bytes party_registered(const Header& h, std::uint64_t party, fb::PartyKind kind, std::uint64_t parent,
                         std::string_view name, std::string_view region, std::string_view industry,
                         LocationId location);
  Bytes store_assigned(const Header& h, LocationId store, std::uint64_t distributor);
  Bytes target_set(const Header& h, std::uint64_t party, std::string_view period, Fen amount);
  Bytes rebate_policy_set(const Header& h, std::uint64_t party, std::string_view period,
                          std::span<const RebateTierBp> tiers);
  Bytes rebate_adjusted(const Header& h, std::uint64_t party, std::string_view period, Fen amount,
                        std::string_view reason);
  Bytes rebate_settled(const Header& h, std::uint64_t party, std::string_view period, Fen amount,
                       std::string_view payment_reference);
  // `comment` empty: not set.
  Bytes feedback_recorded(const Header& h, LocationId store, std::uint64_t distributor, std::uint8_t rating,
                          std::string_view comment);
  Bytes training_completed(const Header& h, std::uint64_t party, std::string_view course, std::uint8_t score);
  Bytes dispatch_requested(const Header& h, OrderId order, LocationId store, LocationId warehouse,
                           std::span<const Line> lines);

 private:
  Bytes finish(const Header& h, fb::Payload type, flatbuffers::Offset<void> payload);
  flatbuffers::Offset<flatbuffers::Vector<const fb::StockLine*>> stock_lines(std::span<const Line> lines);

  flatbuffers::FlatBufferBuilder fbb_{512};
};

}  // namespace qudao
