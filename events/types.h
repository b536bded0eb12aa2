// Small value types for the quantities the ledger reasons about. Each id, quantity and amount has a
// type of its own, so a LocationId can never be passed where a SkuId is expected.
#pragma once

#include <compare>
#include <cstdint>
#include <functional>
#include <utility>

namespace qudao {

template <class Tag, class Rep>
struct Strong {
  Rep value{};
  friend constexpr auto operator<=>(const Strong&, const Strong&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Strong& s) { return H::combine(std::move(h), s.value); }
};

using SkuId = Strong<struct SkuIdTag, std::uint64_t>;
using LocationId = Strong<struct LocationIdTag, std::uint64_t>;
using OrderId = Strong<struct OrderIdTag, std::uint64_t>;
using ShipmentId = Strong<struct ShipmentIdTag, std::uint64_t>;
using PartitionId = Strong<struct PartitionIdTag, std::int32_t>;
using Quantity = Strong<struct QuantityTag, std::int64_t>;  // units of a sku
using Fen = Strong<struct FenTag, std::int64_t>;            // money: 1/100 yuan
using Offset = Strong<struct OffsetTag, std::int64_t>;      // Kafka offset within a partition
using TimeMs = Strong<struct TimeMsTag, std::int64_t>;      // ms since the Unix epoch, UTC

struct EventId {
  std::uint64_t hi = 0;
  std::uint64_t lo = 0;
  friend constexpr auto operator<=>(const EventId&, const EventId&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const EventId& id) { return H::combine(std::move(h), id.hi, id.lo); }
};

}  // namespace qudao
