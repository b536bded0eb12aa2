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

}  // namespace

Ingested Applier::ingest(Shard& shard, Offset offset, std::span<const std::uint8_t> bytes) {
  postings_.clear();
  const auto original = [&] { return std::string(reinterpret_cast<const char*>(bytes.data()), bytes.size()); };
  Decoded decoded = decode(bytes);
  if (auto* rejection = std::get_if<Rejection>(&decoded)) {
    shard.record_rejected(offset, std::move(*rejection), original());
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
                            original());
      return {RecordOutcome::rejected, nullptr};
    case Seen::new_event:
      break;
  }
  Outcome outcome = apply(shard, event);
  if (outcome.kind == OutcomeKind::rejected) {
    shard.record_rejected(offset, std::move(outcome.rejection), original());
    return {RecordOutcome::rejected, nullptr};
  }
  shard.remember(event.id, bytes_hash);
  shard.record_applied(offset, outcome.anomaly);
  return {RecordOutcome::applied, event.envelope};
}

Outcome Applier::apply(Shard& shard, const Event& event) {
  postings_.clear();
  const fb::Envelope& env = *event.envelope;
  switch (env.payload_type()) {
    case fb::Payload::LocationDefined: return apply(shard, *env.payload_as_LocationDefined());
    case fb::Payload::ProductionCompleted: return apply(shard, *env.payload_as_ProductionCompleted());
    case fb::Payload::OrderPlaced: return apply(shard, *env.payload_as_OrderPlaced());
    case fb::Payload::ShipmentDispatched: return apply(shard, *env.payload_as_ShipmentDispatched());
    case fb::Payload::ShipmentReceived: return apply(shard, *env.payload_as_ShipmentReceived());
    case fb::Payload::ScanOut: return apply(shard, *env.payload_as_ScanOut());
    case fb::Payload::StockCounted: return apply(shard, *env.payload_as_StockCounted());
    // Valid facts that no part of the ledger reads yet (catalogue, parties, payments, targets,
    // rebates, ratings, training): applied without postings, so they count and replay later.
    case fb::Payload::SkuDefined:
    case fb::Payload::PartyRegistered:
    case fb::Payload::StoreAssigned:
    case fb::Payload::OrderPaid:
    case fb::Payload::OrderCancelled:
    case fb::Payload::TargetSet:
    case fb::Payload::RebatePolicySet:
    case fb::Payload::RebateAdjusted:
    case fb::Payload::FeedbackRecorded:
    case fb::Payload::TrainingCompleted:
      return {};
    case fb::Payload::NONE: break;
  }
  // decode() rejects events without a known payload, so reaching here is a bug.
  assert(false && "apply: decode let an event without a known payload through");
  return rejected(RejectReason::missing_field, "payload", "is required");
}

void Applier::post_all(Shard& shard) {
  for (const Posting& p : postings_) shard.post(p);
}

std::optional<Rejection> Applier::check_available(const Shard& shard, LocationId from, Bucket bucket,
                                                  const flatbuffers::Vector<const fb::StockLine*>& lines) {
  // Sum per sku first: two lines of the same sku must be covered together.
  per_sku_.clear();
  for (const fb::StockLine* l : lines) per_sku_.emplace_back(SkuId{l->sku()}, l->qty());
  std::sort(per_sku_.begin(), per_sku_.end());
  for (std::size_t i = 0; i < per_sku_.size();) {
    const SkuId sku = per_sku_[i].first;
    std::int64_t wanted = 0;
    for (; i < per_sku_.size() && per_sku_[i].first == sku; ++i) wanted += per_sku_[i].second;
    const Quantity have = shard.balance(Account{sku, from, bucket});
    if (have.value < wanted) {
      return Rejection{RejectReason::insufficient_stock, "payload.lines",
                       fmt::format("location {} has {} of sku {} {}, the event needs {}", from.value, have.value,
                                   sku.value, bucket == Bucket::in_transit ? "in transit" : "on hand", wanted)};
    }
  }
  return std::nullopt;
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

Outcome Applier::apply(Shard& shard, const fb::OrderPlaced& e) {
  // Walking skeleton: the order is checked against known locations; reservations and the order
  // state machine are not built yet (README, "Not built yet").
  const LocationId store{e.store()};
  const LocationInfo* loc = shard.location(store);
  if (loc == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.store", fmt::format("location {} is not defined", store.value));
  }
  if (loc->kind != fb::LocationKind::Store) {
    return rejected(RejectReason::wrong_location_kind, "payload.store",
                    fmt::format("location {} is a {}, not a Store", store.value, kind_name(loc->kind)));
  }
  return {};
}

Outcome Applier::apply(Shard& shard, const fb::ShipmentDispatched& e) {
  const LocationId from{e.from_location()};
  const LocationId to{e.to_location()};
  if (shard.location(from) == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.from_location",
                    fmt::format("location {} is not defined on this shard", from.value));
  }
  if (shard.location(to) == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.to_location",
                    fmt::format("location {} is not defined on this shard", to.value));
  }
  if (auto r = check_available(shard, from, Bucket::on_hand, *e.lines())) return Outcome{OutcomeKind::rejected, Anomaly::none, *r};
  for (const fb::StockLine* l : *e.lines()) {
    postings_.push_back({Account{SkuId{l->sku()}, from, Bucket::on_hand}, Quantity{-l->qty()}});
    postings_.push_back({Account{SkuId{l->sku()}, to, Bucket::in_transit}, Quantity{l->qty()}});
  }
  post_all(shard);
  return {};
}

Outcome Applier::apply(Shard& shard, const fb::ShipmentReceived& e) {
  const LocationId at{e.location()};
  if (shard.location(at) == nullptr) {
    return rejected(RejectReason::unknown_location, "payload.location", fmt::format("location {} is not defined", at.value));
  }
  if (auto r = check_available(shard, at, Bucket::in_transit, *e.lines())) return Outcome{OutcomeKind::rejected, Anomaly::none, *r};
  for (const fb::StockLine* l : *e.lines()) {
    postings_.push_back({Account{SkuId{l->sku()}, at, Bucket::in_transit}, Quantity{-l->qty()}});
    postings_.push_back({Account{SkuId{l->sku()}, at, Bucket::on_hand}, Quantity{l->qty()}});
  }
  post_all(shard);
  return {};
}

Outcome Applier::apply(Shard& shard, const fb::ScanOut& e) {
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
  const bool beyond_stock = shard.balance(on_hand).value < e.qty();
  postings_.push_back({on_hand, Quantity{-e.qty()}});
  postings_.push_back({Account{sku, kVirtualLocation, Bucket::consumers}, Quantity{e.qty()}});
  post_all(shard);
  return Outcome{OutcomeKind::applied, beyond_stock ? Anomaly::flagged : Anomaly::none, {}};
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
