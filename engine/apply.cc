#include "engine/apply.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cassert>

namespace qudao {
namespace {

Outcome rejected(RejectReason reason, std::string field, std::string message) {
  return Outcome{OutcomeKind::rejected, Anomaly::none, Rejection{reason, std::move(field), std::move(message)}};
}

bool is_warehouse(fb::LocationKind k) {
  return k == fb::LocationKind::Warehouse || k == fb::LocationKind::SubWarehouse;
}

const char* kind_name(fb::LocationKind k) { return fb::EnumNameLocationKind(k); }

ChannelLedger::Context context(const Event& e) { return {e.id, e.occurred_at, e.type()}; }

Outcome channel(std::optional<Rejection> r) {
  if (!r) return {};
  return Outcome{OutcomeKind::rejected, Anomaly::none, std::move(*r)};
}

}  // namespace

Ingested Applier::ingest(Shard& shard, Offset offset, std::span<const std::uint8_t> bytes,
                         std::span<const std::uint8_t> key_bytes) {
  return ingest(shard, offset, bytes, decode(bytes), key_bytes);
}

Ingested Applier::ingest(Shard& shard, Offset offset, std::span<const std::uint8_t> bytes, Decoded decoded,
                         std::span<const std::uint8_t> key_bytes) {
  const std::string_view key(reinterpret_cast<const char*>(key_bytes.data()), key_bytes.size());
  postings_.clear();
  posted_ = 0;
  anomalies_.clear();
  const auto original = [&] { return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()); };
  if (auto* rejection = std::get_if<Rejection>(&decoded)) {
    shard.record_rejected(offset, std::move(*rejection), original(), key);
    return {RecordOutcome::rejected, nullptr};
  }
  const Event& event = std::get<Event>(decoded);
  const std::uint64_t bytes_hash = XXH3_64bits(bytes.data(), bytes.size());
  switch (shard.seen(event.id, bytes_hash)) {
    case Seen::duplicate:
      shard.record_duplicate(offset);
      return {RecordOutcome::duplicate, nullptr};
    case Seen::conflict:
      shard.record_rejected(offset,
                            Rejection{RejectReason::conflicting_duplicate, "event_id",
                                      fmt::format("event {:016x}{:016x} was applied before with different bytes",
                                                  event.id.hi, event.id.lo)},
                            original(), key);
      return {RecordOutcome::rejected, nullptr};
    case Seen::new_event:
      break;
  }
  // Event time moves forward with every well-formed event, and expires what it passes.
  shard.advance_watermark(event.occurred_at);
  expire_due(shard, shard.watermark());
  Outcome outcome = dispatch(shard, event);
  if (outcome.kind == OutcomeKind::duplicate) {
    shard.record_duplicate(offset);
    return {RecordOutcome::duplicate, nullptr};
  }
  if (outcome.kind == OutcomeKind::rejected) {
    shard.record_rejected(offset, std::move(outcome.rejection), original(), key);
    return {RecordOutcome::rejected, nullptr};
  }
  // An order placed when event time is already past its deadline (a late event) expires with the
  // event that placed it, so no state between records holds stock for an expired order.
  expire_due(shard, shard.watermark());
  shard.remember(event.id, bytes_hash);
  shard.record_applied(offset, outcome.anomaly);
  for (std::size_t i = 0; i < anomalies_.size(); ++i) {
    AnomalyRecord a = anomalies_[i];
    a.offset = offset;
    a.index = static_cast<std::uint16_t>(i);
    a.event_id = event.id;
    a.day = day_of(event.occurred_at);
    shard.history().record_anomaly(a);
  }
  return {RecordOutcome::applied, event.envelope};
}

Outcome Applier::apply(Shard& shard, const Event& event) {
  postings_.clear();
  posted_ = 0;
  anomalies_.clear();
  return dispatch(shard, event);
}

Outcome Applier::dispatch(Shard& shard, const Event& event) {
  const fb::Envelope& env = *event.envelope;
  switch (env.payload_type()) {
    case fb::Payload::LocationDefined: return apply(shard, *env.payload_as_LocationDefined());
    case fb::Payload::ProductionCompleted: return apply(shard, *env.payload_as_ProductionCompleted());
    case fb::Payload::OrderPlaced: return apply(shard, *env.payload_as_OrderPlaced(), event);
    case fb::Payload::ShipmentDispatched: return apply(shard, *env.payload_as_ShipmentDispatched(), event);
    case fb::Payload::ShipmentTransferred: return apply(shard, *env.payload_as_ShipmentTransferred());
    case fb::Payload::ShipmentReceived: return apply(shard, *env.payload_as_ShipmentReceived());
    case fb::Payload::ScanOut: return apply(shard, *env.payload_as_ScanOut(), event);
    case fb::Payload::StockCounted: return apply(shard, *env.payload_as_StockCounted());
    case fb::Payload::OrderPaid: return apply(shard, *env.payload_as_OrderPaid(), event);
    case fb::Payload::OrderCancelled: return apply(shard, *env.payload_as_OrderCancelled(), event);
    // The channel: parties, store claims, targets, rebates, ratings, training (engine/channel.h).
    case fb::Payload::SkuDefined:
      shard.channel().apply(*env.payload_as_SkuDefined());
      return {};
    case fb::Payload::PartyRegistered: return channel(shard.channel().apply(context(event), *env.payload_as_PartyRegistered()));
    case fb::Payload::StoreAssigned: return apply(shard, *env.payload_as_StoreAssigned(), event);
    case fb::Payload::TargetSet: return channel(shard.channel().apply(context(event), *env.payload_as_TargetSet()));
    case fb::Payload::RebatePolicySet:
      return channel(shard.channel().apply(context(event), *env.payload_as_RebatePolicySet()));
    case fb::Payload::RebateAdjusted: return channel(shard.channel().apply(context(event), *env.payload_as_RebateAdjusted()));
    case fb::Payload::RebateSettled: return channel(shard.channel().apply(context(event), *env.payload_as_RebateSettled()));
    case fb::Payload::FeedbackRecorded:
      return channel(shard.channel().apply(context(event), *env.payload_as_FeedbackRecorded()));
    case fb::Payload::TrainingCompleted:
      return channel(shard.channel().apply(context(event), *env.payload_as_TrainingCompleted()));
    case fb::Payload::DispatchRequested:
      return rejected(RejectReason::invalid_value, "payload_type",
                      "DispatchRequested is what qudao emits to warehouses; it is not an input event");
    case fb::Payload::NONE: break;
  }
  // decode() rejects events without a known payload, so reaching here is a bug.
  assert(false && "apply: decode let an event without a known payload through");
  return rejected(RejectReason::missing_field, "payload", "is required");
}

void Applier::post_all(Shard& shard) {
  for (std::size_t i = posted_; i < postings_.size(); ++i) shard.post(postings_[i]);
  posted_ = postings_.size();
}

Outcome Applier::apply(Shard& shard, const fb::LocationDefined& e) {
  LocationInfo info{e.kind(), e.name()->str(), e.city()->str(), e.region()->str()};
  const LocationId id{e.location()};
  if (const LocationInfo* old = shard.location(id); old != nullptr && old->region != info.region) {
    // The region is the shard key: moving a location between regions is a shard move, not an edit.
    return rejected(RejectReason::invalid_value, "payload.region",
                    fmt::format("location {} is in region \"{}\" and cannot move to \"{}\"", id.value, old->region,
                                info.region));
  }
  shard.define_location(id, std::move(info));
  return {};
}

Outcome Applier::apply(Shard& shard, const fb::ProductionCompleted& e) {
  const LocationId at{e.location()};
  const LocationInfo* loc = shard.location(at);
  if (loc == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.location", fmt::format("location {} is not defined", at.value));
  }
  if (!is_warehouse(loc->kind)) {
    return rejected(RejectReason::wrong_location_kind, "payload.location",
                    fmt::format("production goes into a warehouse, location {} is a {}", at.value, kind_name(loc->kind)));
  }
  for (const fb::StockLine* l : *e.lines()) {
    postings_.push_back({Account{SkuId{l->sku()}, kVirtualLocation, Bucket::production}, Quantity{-l->qty()}});
    postings_.push_back({Account{SkuId{l->sku()}, at, Bucket::on_hand}, Quantity{l->qty()}});
  }
  post_all(shard);
  return {};
}

Outcome Applier::apply(Shard& shard, const fb::OrderPlaced& e, const Event& event) {
  const OrderId id{e.order()};
  if (shard.order(id) != nullptr) {
    return rejected(RejectReason::already_exists, "payload.order", fmt::format("order {} already exists", id.value));
  }
  const LocationId store{e.store()};
  const LocationInfo* loc = shard.location(store);
  if (loc == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.store", fmt::format("location {} is not defined", store.value));
  }
  if (loc->kind != fb::LocationKind::Store) {
    return rejected(RejectReason::wrong_location_kind, "payload.store",
                    fmt::format("location {} is a {}, not a Store", store.value, kind_name(loc->kind)));
  }
  const LocationId fulfilment{e.fulfilment_location()};
  if (fulfilment.value != 0) {
    const LocationInfo* f = shard.location(fulfilment);
    if (f == nullptr) {
      return rejected(RejectReason::unknown_location, "payload.fulfilment_location",
                      fmt::format("location {} is not defined on this shard", fulfilment.value));
    }
    if (!is_warehouse(f->kind)) {
      return rejected(RejectReason::wrong_location_kind, "payload.fulfilment_location",
                      fmt::format("orders are fulfilled from a warehouse, location {} is a {}", fulfilment.value,
                                  kind_name(f->kind)));
    }
  }
  Order o;
  o.store = store;
  o.fulfilment = fulfilment;
  o.placed_by = e.placed_by();
  o.deadline = TimeMs{e.payment_deadline_ms()};
  for (const fb::OrderLine* l : *e.lines()) {
    o.lines.push_back(OrderLine{SkuId{l->sku()}, l->qty(), 0, 0});
    o.due.value += l->qty() * l->unit_price_fen();
  }
  // A proxy order holds what the fulfilment location has of each line until it is paid and shipped,
  // cancelled, or expired; the rest is not held (a backorder).
  if (o.proxy() && fulfilment.value != 0) {
    for (OrderLine& l : o.lines) {
      const Account on_hand{l.sku, fulfilment, Bucket::on_hand};
      l.reserved = std::clamp<std::int64_t>(shard.balance(on_hand).value, 0, l.ordered);
      if (l.reserved == 0) continue;
      postings_.push_back({on_hand, Quantity{-l.reserved}});
      postings_.push_back({Account{l.sku, fulfilment, Bucket::reserved}, Quantity{l.reserved}});
    }
  }
  post_all(shard);
  shard.channel().order_placed(context(event), store, PartyId{o.placed_by}, e);
  shard.put_order(id, std::move(o));
  return {};
}

Outcome Applier::apply(Shard& shard, const fb::OrderPaid& e, const Event& event) {
  const OrderId id{e.order()};
  const Order* o = shard.order(id);
  if (o == nullptr) return rejected(RejectReason::unknown_order, "payload.order", fmt::format("order {} is not known", id.value));
  if (o->state != OrderState::placed) {
    return rejected(RejectReason::illegal_transition, "payload.order",
                    fmt::format("order {} is {}; only a placed order can be paid", id.value, order_state_name(o->state)));
  }
  Order next = *o;
  next.paid.value += e.amount_fen();
  shard.channel().paid(context(event), next.store, Fen{e.amount_fen()});
  if (next.paid.value >= next.due.value) {
    next.state = OrderState::paid;
    request_dispatch(shard, id, next, event);
  }
  shard.put_order(id, std::move(next));
  return {};
}

LocationId Applier::choose_warehouse(const Shard& shard, const Order& o) const {
  auto has_stock = [&](LocationId w) {
    for (const OrderLine& l : o.lines) {
      const std::int64_t held = w == o.fulfilment ? l.reserved : 0;
      if (shard.balance(Account{l.sku, w, Bucket::on_hand}).value + held < l.ordered - l.dispatched) return false;
    }
    return true;
  };
  if (o.fulfilment.value != 0 && has_stock(o.fulfilment)) return o.fulfilment;
  if (const LocationInfo* store = shard.location(o.store)) {
    for (LocationId w : shard.warehouses_in(store->city)) {
      if (w != o.fulfilment && has_stock(w)) return w;
    }
  }
  // HQ ships what no city warehouse can; 0 when the HQ warehouse is not on this shard.
  return shard.hq_warehouses().empty() ? LocationId{0} : shard.hq_warehouses().front();
}

void Applier::request_dispatch(Shard& shard, OrderId id, const Order& o, const Event& paid) {
  const LocationId warehouse = choose_warehouse(shard, o);
  lines_.clear();
  for (const OrderLine& l : o.lines) {
    if (l.ordered > l.dispatched) lines_.push_back(Line{l.sku, Quantity{l.ordered - l.dispatched}});
  }
  // The id depends only on the order and the payment that completed it: a replay, or a re-sent
  // request, carries the same id, and warehouses deduplicate on it.
  std::uint64_t seed[3] = {id.value, paid.id.hi, paid.id.lo};
  const XXH128_hash_t h = XXH3_128bits(seed, sizeof seed);
  const EventId request_id{h.high64, h.low64 == 0 && h.high64 == 0 ? 1 : h.low64};
  // Version 2, the one that brought DispatchRequested: a warehouse built on it reads every request
  // (a newer version, which adds nothing to this event, would be refused there as unsupported).
  constexpr std::uint16_t kDispatchRequestedSchemaVersion = 2;
  const auto bytes = writer_.dispatch_requested(Header{request_id, paid.occurred_at, "qudao", kDispatchRequestedSchemaVersion},
                                                id, o.store, warehouse, lines_);
  shard.emit(OutboxTopic::dispatch, std::to_string(warehouse.value),
             std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

void Applier::release(Order& o) {
  for (OrderLine& l : o.lines) {
    if (l.reserved == 0) continue;
    postings_.push_back({Account{l.sku, o.fulfilment, Bucket::reserved}, Quantity{-l.reserved}});
    postings_.push_back({Account{l.sku, o.fulfilment, Bucket::on_hand}, Quantity{l.reserved}});
    l.reserved = 0;
  }
}

Outcome Applier::apply(Shard& shard, const fb::OrderCancelled& e, const Event& event) {
  const OrderId id{e.order()};
  const Order* o = shard.order(id);
  if (o == nullptr) return rejected(RejectReason::unknown_order, "payload.order", fmt::format("order {} is not known", id.value));
  bool shipped = false;
  for (const OrderLine& l : o->lines) shipped |= l.dispatched > 0;
  if ((o->state != OrderState::placed && o->state != OrderState::paid) || shipped) {
    return rejected(RejectReason::illegal_transition, "payload.order",
                    fmt::format("order {} is {}{}; only an order not yet shipped can be cancelled", id.value,
                                order_state_name(o->state), shipped ? " and partly shipped" : ""));
  }
  Order next = *o;
  release(next);
  next.state = OrderState::cancelled;
  post_all(shard);
  // What was paid goes back: sell-in falls by it, in the cancellation's period.
  if (next.paid.value > 0) shard.channel().paid(context(event), next.store, Fen{-next.paid.value});
  shard.put_order(id, std::move(next));
  return {};
}

void Applier::expire_due(Shard& shard, TimeMs now) {
  for (OrderId id : shard.orders_due(now)) {
    Order next = *shard.order(id);
    release(next);
    next.state = OrderState::expired;
    post_all(shard);
    shard.put_order(id, std::move(next));
  }
}

void Applier::sum_per_sku(const flatbuffers::Vector<const fb::StockLine*>& lines) {
  per_sku_.clear();
  for (const fb::StockLine* l : lines) per_sku_.emplace_back(SkuId{l->sku()}, l->qty());
  std::sort(per_sku_.begin(), per_sku_.end());
  std::size_t merged = 0;
  for (std::size_t i = 0; i < per_sku_.size();) {
    const SkuId sku = per_sku_[i].first;
    std::int64_t sum = 0;
    for (; i < per_sku_.size() && per_sku_[i].first == sku; ++i) sum += per_sku_[i].second;
    per_sku_[merged++] = {sku, sum};
  }
  per_sku_.resize(merged);
}

Outcome Applier::apply(Shard& shard, const fb::ShipmentDispatched& e, const Event& event) {
  const ShipmentId id{e.shipment()};
  if (shard.shipment(id) != nullptr) {
    return rejected(RejectReason::already_exists, "payload.shipment", fmt::format("shipment {} already exists", id.value));
  }
  const LocationId from{e.from_location()};
  const LocationId to{e.to_location()};
  const LocationInfo* from_info = shard.location(from);
  if (from_info == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.from_location",
                    fmt::format("location {} is not defined on this shard", from.value));
  }
  const std::string_view to_region = e.to_region() != nullptr ? e.to_region()->string_view() : std::string_view();
  if (const LocationInfo* to_info = shard.location(to); to_info == nullptr) {
    if (to_region.empty()) {
      return rejected(RejectReason::unknown_location, "payload.to_location",
                      fmt::format("location {} is not defined on this shard (a shipment to another region names "
                                  "that region in payload.to_region)", to.value));
    }
    if (to_region == from_info->region) {
      return rejected(RejectReason::unknown_location, "payload.to_location",
                      fmt::format("location {} is not defined in region \"{}\" (payload.to_region), which is "
                                  "from_location's own", to.value, from_info->region));
    }
    return dispatch_to_shard(shard, e, event, *from_info, to_region);
  } else if (!to_region.empty() && to_region != to_info->region) {
    return rejected(RejectReason::invalid_value, "payload.to_region",
                    fmt::format("location {} is in region \"{}\", not \"{}\"", to.value, to_info->region, to_region));
  }
  const OrderId order_id{e.order()};
  std::optional<Order> order;
  if (order_id.value != 0) {
    const Order* o = shard.order(order_id);
    if (o == nullptr) {
      return rejected(RejectReason::unknown_order, "payload.order", fmt::format("order {} is not known", order_id.value));
    }
    if (o->state != OrderState::paid) {
      return rejected(RejectReason::illegal_transition, "payload.order",
                      fmt::format("order {} is {}; only a paid order is shipped", order_id.value, order_state_name(o->state)));
    }
    order = *o;
  }
  // What each sku can draw on: the location's free stock, plus the order's own reservation there.
  sum_per_sku(*e.lines());
  for (const auto& [sku, wanted] : per_sku_) {
    std::int64_t held = 0;
    if (order) {
      OrderLine* line = order->line(sku);
      if (line == nullptr || line->dispatched + wanted > line->ordered) {
        return rejected(RejectReason::exceeds_order, "payload.lines",
                        fmt::format("order {} has {} of sku {} left to ship, the shipment carries {}", order_id.value,
                                    line == nullptr ? 0 : line->ordered - line->dispatched, sku.value, wanted));
      }
      if (order->fulfilment == from) held = line->reserved;
    }
    const std::int64_t have = shard.balance(Account{sku, from, Bucket::on_hand}).value + held;
    if (have < wanted) {
      return rejected(RejectReason::insufficient_stock, "payload.lines",
                      fmt::format("location {} has {} of sku {} on hand{}, the event needs {}", from.value, have,
                                  sku.value, held > 0 ? " (with the order's reservation)" : "", wanted));
    }
  }
  Shipment shipment{from, to, order_id, false, false, {}};
  for (const fb::StockLine* l : *e.lines()) {
    const SkuId sku{l->sku()};
    std::int64_t from_reserved = 0;
    if (order) {
      OrderLine* line = order->line(sku);
      if (order->fulfilment == from) {
        from_reserved = std::min(line->reserved, l->qty());
        line->reserved -= from_reserved;
      }
      line->dispatched += l->qty();
    }
    if (from_reserved > 0) postings_.push_back({Account{sku, from, Bucket::reserved}, Quantity{-from_reserved}});
    if (l->qty() > from_reserved) postings_.push_back({Account{sku, from, Bucket::on_hand}, Quantity{from_reserved - l->qty()}});
    postings_.push_back({Account{sku, to, Bucket::in_transit}, Quantity{l->qty()}});
    shipment.lines.emplace_back(sku, l->qty());
  }
  if (order) {
    ++order->shipments_open;
    // Shipped from another location, a line may now hold more than is left to ship: the rest goes back.
    for (OrderLine& l : order->lines) {
      const std::int64_t excess = l.reserved - (l.ordered - l.dispatched);
      if (excess <= 0) continue;
      postings_.push_back({Account{l.sku, order->fulfilment, Bucket::reserved}, Quantity{-excess}});
      postings_.push_back({Account{l.sku, order->fulfilment, Bucket::on_hand}, Quantity{excess}});
      l.reserved -= excess;
    }
    if (order->fully_dispatched()) {
      release(*order);  // nothing left to ship: what is still held goes back
      order->state = OrderState::dispatched;
    }
    shard.put_order(order_id, std::move(*order));
  }
  post_all(shard);
  shard.put_shipment(id, std::move(shipment));
  return {};
}

EventId Applier::arrival_event_id(EventId dispatch) {
  // A tag keeps these ids apart from the dispatch requests' (seeded by order and payment).
  constexpr std::uint64_t kArrivalTag = 0x71647472616e7366;  // "qdtransf"
  const std::uint64_t seed[3] = {kArrivalTag, dispatch.hi, dispatch.lo};
  const XXH128_hash_t h = XXH3_128bits(seed, sizeof seed);
  return EventId{h.high64, h.low64 == 0 && h.high64 == 0 ? 1 : h.low64};
}

Outcome Applier::dispatch_to_shard(Shard& shard, const fb::ShipmentDispatched& e, const Event& event,
                                   const LocationInfo& from_info, std::string_view to_region) {
  const LocationId from{e.from_location()};
  const LocationId to{e.to_location()};
  if (e.order() != 0) {
    return rejected(RejectReason::invalid_value, "payload.order",
                    fmt::format("a shipment to another region (payload.to_region \"{}\") fulfils no order: order {} "
                                "lives on its store's shard; ship to the region's sub-warehouse with order 0",
                                to_region, e.order()));
  }
  if (!is_warehouse(from_info.kind)) {
    return rejected(RejectReason::wrong_location_kind, "payload.from_location",
                    fmt::format("goods leave for another region from a warehouse, location {} is a {}", from.value,
                                kind_name(from_info.kind)));
  }
  sum_per_sku(*e.lines());
  for (const auto& [sku, wanted] : per_sku_) {
    const std::int64_t have = shard.balance(Account{sku, from, Bucket::on_hand}).value;
    if (have < wanted) {
      return rejected(RejectReason::insufficient_stock, "payload.lines",
                      fmt::format("location {} has {} of sku {} on hand, the event needs {}", from.value, have,
                                  sku.value, wanted));
    }
  }
  // The source leg: the goods leave this shard's books for its clearing account, which the arrival
  // leg on the destination's shard draws on.
  Shipment shipment{from, to, OrderId{0}, false, true, {}};
  lines_.clear();
  for (const fb::StockLine* l : *e.lines()) {
    const SkuId sku{l->sku()};
    postings_.push_back({Account{sku, from, Bucket::on_hand}, Quantity{-l->qty()}});
    postings_.push_back({Account{sku, kVirtualLocation, Bucket::clearing}, Quantity{l->qty()}});
    shipment.lines.emplace_back(sku, l->qty());
    lines_.push_back(Line{sku, Quantity{l->qty()}});
  }
  post_all(shard);
  shard.put_shipment(ShipmentId{e.shipment()}, std::move(shipment));
  // Version 5, the one that brought ShipmentTransferred, whatever newer version this build knows.
  constexpr std::uint16_t kShipmentTransferredSchemaVersion = 5;
  const auto bytes = writer_.shipment_transferred(
      Header{arrival_event_id(event.id), event.occurred_at, "qudao", kShipmentTransferredSchemaVersion},
      ShipmentId{e.shipment()}, from, from_info.region, to, lines_, event.id);
  shard.emit(OutboxTopic::events, std::string(to_region),
             std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  return {};
}

Outcome Applier::apply(Shard& shard, const fb::ShipmentTransferred& e) {
  const ShipmentId id{e.shipment()};
  const LocationId to{e.to_location()};
  if (shard.location(to) == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.to_location",
                    fmt::format("location {} is not defined on this shard (the goods wait in region \"{}\"'s clearing "
                                "account; define it and re-drive this record)",
                                to.value, e.from_region()->string_view()));
  }
  if (const Shipment* s = shard.shipment(id); s != nullptr) {
    // The same shipment (from, to, lines) already here: this leg applied before (a copy the
    // duplicate window has forgotten), or the dispatch itself applied here, both regions being on
    // this partition (a producer that writes arrival legs, as the simulator does, cannot know).
    if (!s->handed_over && s->from.value == e.from_location() && s->to == to && s->order.value == 0 &&
        s->lines.size() == e.lines()->size() &&
        std::equal(s->lines.begin(), s->lines.end(), e.lines()->begin(), [](const auto& a, const fb::StockLine* b) {
          return a.first.value == b->sku() && a.second == b->qty();
        })) {
      return Outcome{OutcomeKind::duplicate, Anomaly::none, {}};
    }
    return rejected(RejectReason::already_exists, "payload.shipment",
                    fmt::format("shipment {} already exists on this shard (shipment ids must be unique across regions)",
                                id.value));
  }
  // The arrival leg: out of this shard's clearing account (which goes negative by what the source's
  // went positive: across the two shards it nets to zero) into transit to the location.
  Shipment shipment{LocationId{e.from_location()}, to, OrderId{0}, false, false, {}};
  for (const fb::StockLine* l : *e.lines()) {
    const SkuId sku{l->sku()};
    postings_.push_back({Account{sku, kVirtualLocation, Bucket::clearing}, Quantity{-l->qty()}});
    postings_.push_back({Account{sku, to, Bucket::in_transit}, Quantity{l->qty()}});
    shipment.lines.emplace_back(sku, l->qty());
  }
  post_all(shard);
  shard.put_shipment(id, std::move(shipment));
  return {};
}

Outcome Applier::apply(Shard& shard, const fb::ShipmentReceived& e) {
  const ShipmentId id{e.shipment()};
  const Shipment* s = shard.shipment(id);
  if (s == nullptr) {
    return rejected(RejectReason::unknown_shipment, "payload.shipment", fmt::format("shipment {} is not known", id.value));
  }
  const LocationId at{e.location()};
  if (s->to != at) {
    return rejected(RejectReason::invalid_value, "payload.location",
                    fmt::format("shipment {} goes to location {}, not {}", id.value, s->to.value, at.value));
  }
  if (s->received) {
    return rejected(RejectReason::illegal_transition, "payload.shipment", fmt::format("shipment {} is already received", id.value));
  }
  if (s->handed_over) {
    return rejected(RejectReason::invalid_value, "payload.shipment",
                    fmt::format("shipment {} left for another region's shard; its receipt is keyed to location {}'s "
                                "region", id.value, at.value));
  }
  // Received per sku, checked against what the shipment carries of it (a dispatch may put one sku on
  // several lines: their sum); the rest of it is lost.
  Shipment next = *s;
  struct Carried {
    SkuId sku;
    std::int64_t sent = 0;
    std::int64_t got = 0;
  };
  std::vector<Carried> carried;
  for (const auto& [sku, qty] : next.lines) {
    auto it = std::find_if(carried.begin(), carried.end(), [&](const Carried& c) { return c.sku == sku; });
    if (it == carried.end()) carried.push_back(Carried{sku, qty, 0});
    else it->sent += qty;
  }
  for (flatbuffers::uoffset_t i = 0; i < e.lines()->size(); ++i) {
    const fb::StockLine* l = e.lines()->Get(i);
    auto it = std::find_if(carried.begin(), carried.end(), [&](const Carried& c) { return c.sku.value == l->sku(); });
    if (it == carried.end() || it->got + l->qty() > it->sent) {
      return rejected(RejectReason::exceeds_order, fmt::format("payload.lines[{}].qty", i),
                      fmt::format("shipment {} carries {} of sku {}, the receipt says {}", id.value,
                                  it == carried.end() ? 0 : it->sent, l->sku(),
                                  (it == carried.end() ? 0 : it->got) + l->qty()));
    }
    it->got += l->qty();
  }
  Anomaly anomaly = Anomaly::none;
  for (const Carried& c : carried) {
    const std::int64_t lost = c.sent - c.got;
    if (c.got > 0) {
      postings_.push_back({Account{c.sku, at, Bucket::in_transit}, Quantity{-c.got}});
      postings_.push_back({Account{c.sku, at, Bucket::on_hand}, Quantity{c.got}});
    }
    if (lost > 0) {
      anomaly = Anomaly::flagged;  // a shortage or damage: a fact, and worth a look
      anomalies_.push_back(AnomalyRecord{at, {}, 0, {}, {}, AnomalyKind::receipt_shortage, c.sku, Quantity{lost}});
      postings_.push_back({Account{c.sku, at, Bucket::in_transit}, Quantity{-lost}});
      postings_.push_back({Account{c.sku, kVirtualLocation, Bucket::losses}, Quantity{lost}});
    }
  }
  next.received = true;
  if (next.order.value != 0) {
    if (const Order* o = shard.order(next.order)) {
      Order order = *o;
      if (order.shipments_open > 0) --order.shipments_open;
      if (order.state == OrderState::dispatched && order.shipments_open == 0) order.state = OrderState::received;
      shard.put_order(next.order, std::move(order));
    }
  }
  post_all(shard);
  shard.put_shipment(id, std::move(next));
  return Outcome{OutcomeKind::applied, anomaly, {}};
}

Outcome Applier::apply(Shard& shard, const fb::ScanOut& e, const Event& event) {
  const LocationId store{e.store()};
  const LocationInfo* loc = shard.location(store);
  if (loc == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.store", fmt::format("location {} is not defined", store.value));
  }
  if (loc->kind != fb::LocationKind::Store) {
    return rejected(RejectReason::wrong_location_kind, "payload.store",
                    fmt::format("scan-outs happen in stores, location {} is a {}", store.value, kind_name(loc->kind)));
  }
  const SkuId sku{e.sku()};
  const Account on_hand{sku, store, Bucket::on_hand};
  postings_.push_back({on_hand, Quantity{-e.qty()}});
  postings_.push_back({Account{sku, kVirtualLocation, Bucket::consumers}, Quantity{e.qty()}});
  // The sale is applied whatever the store had, so the check can read what the posting replaced:
  // one lookup of the store's balance instead of a read and then a posting.
  const std::int64_t had = shard.post(postings_[posted_++]).value;
  post_all(shard);
  const bool beyond_stock = had < e.qty();
  if (beyond_stock) {
    anomalies_.push_back(AnomalyRecord{store, {}, 0, {}, {}, AnomalyKind::scan_out_beyond_stock, sku,
                                       Quantity{e.qty() - std::max<std::int64_t>(had, 0)}});
  }
  shard.channel().scanned_out(context(event), store, sku, Quantity{e.qty()});
  // Sold on the day it happened, however late the event arrives.
  shard.history().record_sale(store, sku, day_of(event.occurred_at), Quantity{e.qty()});
  return Outcome{OutcomeKind::applied, beyond_stock ? Anomaly::flagged : Anomaly::none, {}};
}

Outcome Applier::apply(Shard& shard, const fb::StoreAssigned& e, const Event& event) {
  const LocationId store{e.store()};
  const LocationInfo* loc = shard.location(store);
  if (loc == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.store", fmt::format("location {} is not defined", store.value));
  }
  return channel(shard.channel().apply(context(event), e, loc->kind));
}

Outcome Applier::apply(Shard& shard, const fb::StockCounted& e) {
  const LocationId at{e.location()};
  if (shard.location(at) == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.location", fmt::format("location {} is not defined", at.value));
  }
  // The count is the truth: the difference to the books goes to the adjustments account.
  for (const fb::StockLine* l : *e.lines()) {
    const Account on_hand{SkuId{l->sku()}, at, Bucket::on_hand};
    const std::int64_t delta = l->qty() - shard.balance(on_hand).value;
    if (delta == 0) continue;
    postings_.push_back({on_hand, Quantity{delta}});
    postings_.push_back({Account{SkuId{l->sku()}, kVirtualLocation, Bucket::adjustments}, Quantity{-delta}});
  }
  post_all(shard);
  return {};
}

}  // namespace qudao
