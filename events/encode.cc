#include "events/encode.h"

namespace qudao {

EventWriter::Bytes EventWriter::finish(const Header& h, fb::Payload type, flatbuffers::Offset<void> payload) {
  const auto source = fbb_.CreateString(h.source.data(), h.source.size());
  const fb::EventId id(h.id.hi, h.id.lo);
  fb::EnvelopeBuilder env(fbb_);
  env.add_event_id(&id);
  env.add_occurred_at_ms(h.occurred_at.value);
  env.add_source(source);
  env.add_schema_version(h.schema_version);
  env.add_payload_type(type);
  env.add_payload(payload);
  fb::FinishEnvelopeBuffer(fbb_, env.Finish());
  return {fbb_.GetBufferPointer(), fbb_.GetSize()};
}

flatbuffers::Offset<flatbuffers::Vector<const fb::StockLine*>> EventWriter::stock_lines(std::span<const Line> lines) {
  fb::StockLine* out = nullptr;
  auto vec = fbb_.CreateUninitializedVectorOfStructs(lines.size(), &out);
  for (const Line& l : lines) *out++ = fb::StockLine(l.sku.value, l.qty.value);
  return vec;
}

EventWriter::Bytes EventWriter::location_defined(const Header& h, LocationId location, fb::LocationKind kind,
                                                 std::string_view name, std::string_view city,
                                                 std::string_view region) {
  fbb_.Clear();
  auto n = fbb_.CreateString(name.data(), name.size());
  auto c = fbb_.CreateString(city.data(), city.size());
  auto r = fbb_.CreateString(region.data(), region.size());
  auto p = fb::CreateLocationDefined(fbb_, location.value, kind, n, c, r);
  return finish(h, fb::Payload::LocationDefined, p.Union());
}

EventWriter::Bytes EventWriter::production_completed(const Header& h, std::uint64_t batch, LocationId location,
                                                     std::span<const Line> lines) {
  fbb_.Clear();
  auto l = stock_lines(lines);
  auto p = fb::CreateProductionCompleted(fbb_, batch, location.value, l);
  return finish(h, fb::Payload::ProductionCompleted, p.Union());
}

EventWriter::Bytes EventWriter::order_placed(const Header& h, OrderId order, LocationId store,
                                             std::uint64_t placed_by, LocationId fulfilment_location,
                                             TimeMs payment_deadline, std::span<const PricedLine> lines) {
  fbb_.Clear();
  fb::OrderLine* out = nullptr;
  auto l = fbb_.CreateUninitializedVectorOfStructs(lines.size(), &out);
  for (const PricedLine& x : lines) *out++ = fb::OrderLine(x.sku.value, x.qty.value, x.unit_price.value);
  auto p = fb::CreateOrderPlaced(fbb_, order.value, store.value, placed_by, fulfilment_location.value,
                                 payment_deadline.value, l);
  return finish(h, fb::Payload::OrderPlaced, p.Union());
}

EventWriter::Bytes EventWriter::shipment_dispatched(const Header& h, ShipmentId shipment, LocationId from,
                                                    LocationId to, OrderId order, std::span<const Line> lines,
                                                    std::string_view to_region) {
  fbb_.Clear();
  auto l = stock_lines(lines);
  flatbuffers::Offset<flatbuffers::String> r;
  if (!to_region.empty()) r = fbb_.CreateString(to_region.data(), to_region.size());
  auto p = fb::CreateShipmentDispatched(fbb_, shipment.value, from.value, to.value, order.value, l, r);
  return finish(h, fb::Payload::ShipmentDispatched, p.Union());
}

EventWriter::Bytes EventWriter::shipment_transferred(const Header& h, ShipmentId shipment, LocationId from,
                                                     std::string_view from_region, LocationId to,
                                                     std::span<const Line> lines, EventId dispatch_event) {
  fbb_.Clear();
  auto l = stock_lines(lines);
  auto r = fbb_.CreateString(from_region.data(), from_region.size());
  const fb::EventId d(dispatch_event.hi, dispatch_event.lo);
  auto p = fb::CreateShipmentTransferred(fbb_, shipment.value, from.value, r, to.value, l, &d);
  return finish(h, fb::Payload::ShipmentTransferred, p.Union());
}

EventWriter::Bytes EventWriter::shipment_received(const Header& h, ShipmentId shipment, LocationId location,
                                                  std::span<const Line> lines) {
  fbb_.Clear();
  auto l = stock_lines(lines);
  auto p = fb::CreateShipmentReceived(fbb_, shipment.value, location.value, l);
  return finish(h, fb::Payload::ShipmentReceived, p.Union());
}

EventWriter::Bytes EventWriter::scan_out(const Header& h, LocationId store, SkuId sku, Quantity qty,
                                         std::string_view item_code) {
  fbb_.Clear();
  flatbuffers::Offset<flatbuffers::String> code;
  if (!item_code.empty()) code = fbb_.CreateString(item_code.data(), item_code.size());
  auto p = fb::CreateScanOut(fbb_, store.value, sku.value, qty.value, code);
  return finish(h, fb::Payload::ScanOut, p.Union());
}

EventWriter::Bytes EventWriter::order_paid(const Header& h, OrderId order, std::uint64_t payer, Fen amount) {
  fbb_.Clear();
  auto p = fb::CreateOrderPaid(fbb_, order.value, payer, amount.value);
  return finish(h, fb::Payload::OrderPaid, p.Union());
}

EventWriter::Bytes EventWriter::order_cancelled(const Header& h, OrderId order, std::string_view reason) {
  fbb_.Clear();
  auto r = fbb_.CreateString(reason.data(), reason.size());
  auto p = fb::CreateOrderCancelled(fbb_, order.value, r);
  return finish(h, fb::Payload::OrderCancelled, p.Union());
}

EventWriter::Bytes EventWriter::stock_counted(const Header& h, LocationId location, std::span<const Line> counted) {
  fbb_.Clear();
  auto l = stock_lines(counted);
  auto p = fb::CreateStockCounted(fbb_, location.value, l);
  return finish(h, fb::Payload::StockCounted, p.Union());
}

EventWriter::Bytes EventWriter::sku_defined(const Header& h, SkuId sku, std::string_view code, std::string_view name,
                                            std::string_view category, std::string_view unit, Fen list_price,
                                            std::int32_t lead_time_days, std::int32_t reorder_cover_days) {
  fbb_.Clear();
  auto c = fbb_.CreateString(code.data(), code.size());
  auto n = fbb_.CreateString(name.data(), name.size());
  auto cat = fbb_.CreateString(category.data(), category.size());
  auto u = fbb_.CreateString(unit.data(), unit.size());
  auto p = fb::CreateSkuDefined(fbb_, sku.value, c, n, cat, u, list_price.value, lead_time_days, reorder_cover_days);
  return finish(h, fb::Payload::SkuDefined, p.Union());
}

EventWriter::Bytes EventWriter::party_registered(const Header& h, std::uint64_t party, fb::PartyKind kind,
                                                 std::uint64_t parent, std::string_view name, std::string_view region,
                                                 std::string_view industry, LocationId location) {
  fbb_.Clear();
  auto n = fbb_.CreateString(name.data(), name.size());
  auto r = fbb_.CreateString(region.data(), region.size());
  flatbuffers::Offset<flatbuffers::String> i;
  if (!industry.empty()) i = fbb_.CreateString(industry.data(), industry.size());
  auto p = fb::CreatePartyRegistered(fbb_, party, kind, parent, n, r, i, location.value);
  return finish(h, fb::Payload::PartyRegistered, p.Union());
}

EventWriter::Bytes EventWriter::store_assigned(const Header& h, LocationId store, std::uint64_t distributor) {
  fbb_.Clear();
  auto p = fb::CreateStoreAssigned(fbb_, store.value, distributor);
  return finish(h, fb::Payload::StoreAssigned, p.Union());
}

EventWriter::Bytes EventWriter::target_set(const Header& h, std::uint64_t party, std::string_view period, Fen amount) {
  fbb_.Clear();
  auto per = fbb_.CreateString(period.data(), period.size());
  auto p = fb::CreateTargetSet(fbb_, party, per, amount.value);
  return finish(h, fb::Payload::TargetSet, p.Union());
}

EventWriter::Bytes EventWriter::rebate_policy_set(const Header& h, std::uint64_t party, std::string_view period,
                                                  std::span<const RebateTierBp> tiers) {
  fbb_.Clear();
  auto per = fbb_.CreateString(period.data(), period.size());
  fb::RebateTier* out = nullptr;
  auto t = fbb_.CreateUninitializedVectorOfStructs(tiers.size(), &out);
  for (const RebateTierBp& x : tiers) *out++ = fb::RebateTier(x.attainment_bp, x.rebate_bp);
  auto p = fb::CreateRebatePolicySet(fbb_, party, per, t);
  return finish(h, fb::Payload::RebatePolicySet, p.Union());
}

EventWriter::Bytes EventWriter::rebate_adjusted(const Header& h, std::uint64_t party, std::string_view period,
                                                Fen amount, std::string_view reason) {
  fbb_.Clear();
  auto per = fbb_.CreateString(period.data(), period.size());
  auto r = fbb_.CreateString(reason.data(), reason.size());
  auto p = fb::CreateRebateAdjusted(fbb_, party, per, amount.value, r);
  return finish(h, fb::Payload::RebateAdjusted, p.Union());
}

EventWriter::Bytes EventWriter::rebate_settled(const Header& h, std::uint64_t party, std::string_view period,
                                               Fen amount, std::string_view payment_reference) {
  fbb_.Clear();
  auto per = fbb_.CreateString(period.data(), period.size());
  auto r = fbb_.CreateString(payment_reference.data(), payment_reference.size());
  auto p = fb::CreateRebateSettled(fbb_, party, per, amount.value, r);
  return finish(h, fb::Payload::RebateSettled, p.Union());
}

EventWriter::Bytes EventWriter::feedback_recorded(const Header& h, LocationId store, std::uint64_t distributor,
                                                  std::uint8_t rating, std::string_view comment) {
  fbb_.Clear();
  flatbuffers::Offset<flatbuffers::String> c;
  if (!comment.empty()) c = fbb_.CreateString(comment.data(), comment.size());
  auto p = fb::CreateFeedbackRecorded(fbb_, store.value, distributor, rating, c);
  return finish(h, fb::Payload::FeedbackRecorded, p.Union());
}

EventWriter::Bytes EventWriter::training_completed(const Header& h, std::uint64_t party, std::string_view course,
                                                   std::uint8_t score) {
  fbb_.Clear();
  auto c = fbb_.CreateString(course.data(), course.size());
  auto p = fb::CreateTrainingCompleted(fbb_, party, c, score);
  return finish(h, fb::Payload::TrainingCompleted, p.Union());
}

EventWriter::Bytes EventWriter::dispatch_requested(const Header& h, OrderId order, LocationId store,
                                                   LocationId warehouse, std::span<const Line> lines) {
  fbb_.Clear();
  auto l = stock_lines(lines);
  auto p = fb::CreateDispatchRequested(fbb_, order.value, store.value, warehouse.value, l);
  return finish(h, fb::Payload::DispatchRequested, p.Union());
}

}  // namespace qudao
