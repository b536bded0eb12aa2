#include "engine/orders.h"

#include "engine/codec.h"

namespace qudao {

const char* order_state_name(OrderState s) {
  switch (s) {
    case OrderState::placed: return "placed";
    case OrderState::paid: return "paid";
    case OrderState::dispatched: return "dispatched";
    case OrderState::received: return "received";
    case OrderState::cancelled: return "cancelled";
    case OrderState::expired: return "expired";
  }
  return "unknown";
}

void encode_to(std::string& v, const Order& o) {
  codec::put_le<std::uint64_t>(v, o.store.value);
  codec::put_le<std::uint64_t>(v, o.fulfilment.value);
  codec::put_le<std::uint64_t>(v, o.placed_by);
  codec::put_le<std::int64_t>(v, o.deadline.value);
  codec::put_le<std::uint8_t>(v, static_cast<std::uint8_t>(o.state));
  codec::put_le<std::int64_t>(v, o.due.value);
  codec::put_le<std::int64_t>(v, o.paid.value);
  codec::put_le<std::uint32_t>(v, o.shipments_open);
  codec::put_le<std::uint32_t>(v, static_cast<std::uint32_t>(o.lines.size()));
  for (const OrderLine& l : o.lines) {
    codec::put_le<std::uint64_t>(v, l.sku.value);
    codec::put_le<std::int64_t>(v, l.ordered);
    codec::put_le<std::int64_t>(v, l.reserved);
    codec::put_le<std::int64_t>(v, l.dispatched);
  }
}

void encode_to(std::string& v, const Shipment& s) {
  codec::put_le<std::uint64_t>(v, s.from.value);
  codec::put_le<std::uint64_t>(v, s.to.value);
  codec::put_le<std::uint64_t>(v, s.order.value);
  codec::put_le<std::uint8_t>(v, static_cast<std::uint8_t>((s.received ? 1 : 0) | (s.handed_over ? 2 : 0)));
  codec::put_le<std::uint32_t>(v, static_cast<std::uint32_t>(s.lines.size()));
  for (const auto& [sku, qty] : s.lines) {
    codec::put_le<std::uint64_t>(v, sku.value);
    codec::put_le<std::int64_t>(v, qty);
  }
}

std::optional<Order> decode_order(std::string_view bytes) {
  codec::Reader r(bytes);
  Order o;
  o.store = LocationId{r.le<std::uint64_t>()};
  o.fulfilment = LocationId{r.le<std::uint64_t>()};
  o.placed_by = r.le<std::uint64_t>();
  o.deadline = TimeMs{r.le<std::int64_t>()};
  o.state = static_cast<OrderState>(r.le<std::uint8_t>());
  o.due = Fen{r.le<std::int64_t>()};
  o.paid = Fen{r.le<std::int64_t>()};
  o.shipments_open = r.le<std::uint32_t>();
  const auto n = r.le<std::uint32_t>();
  for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
    OrderLine l;
    l.sku = SkuId{r.le<std::uint64_t>()};
    l.ordered = r.le<std::int64_t>();
    l.reserved = r.le<std::int64_t>();
    l.dispatched = r.le<std::int64_t>();
    o.lines.push_back(l);
  }
  if (!r.ok() || !r.empty()) return std::nullopt;
  return o;
}

std::optional<Shipment> decode_shipment(std::string_view bytes) {
  codec::Reader r(bytes);
  Shipment s;
  s.from = LocationId{r.le<std::uint64_t>()};
  s.to = LocationId{r.le<std::uint64_t>()};
  s.order = OrderId{r.le<std::uint64_t>()};
  const auto ended = r.le<std::uint8_t>();
  s.received = (ended & 1) != 0;
  s.handed_over = (ended & 2) != 0;
  const auto n = r.le<std::uint32_t>();
  for (std::uint32_t i = 0; i < n && r.ok(); ++i) {
    const SkuId sku{r.le<std::uint64_t>()};
    s.lines.emplace_back(sku, r.le<std::int64_t>());
  }
  if (!r.ok() || !r.empty()) return std::nullopt;
  return s;
}

}  // namespace qudao
