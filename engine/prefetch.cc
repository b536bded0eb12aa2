// What applying an event reads, for the batch to prefetch (engine/prefetch.h). Kept next to
// nothing it could change: every function here is const, and a missing entry just ends the chain.
#include "engine/prefetch.h"

#include "engine/channel.h"
#include "engine/ledger.h"

namespace qudao {

void Shard::prefetch(const Event& event, PrefetchStage stage) const {
  const fb::Envelope& env = *event.envelope;
  if (stage == PrefetchStage::keys) window_.prefetch(event.id);
  // Goods moving in lines (production, shipments, receipts, counts) post to the (sku, location) entry
  // of every line: as many misses as lines, all named by the event. The orders' own entries are
  // read in an order that depends on the order's state, and are few: left to the apply.
  auto lines = [&](const flatbuffers::Vector<const fb::StockLine*>* ls, LocationId at, LocationId also) {
    if (stage != PrefetchStage::keys || ls == nullptr) return;
    for (const fb::StockLine* l : *ls) {
      stock_.prefetch(PairKey{SkuId{l->sku()}, at});
      if (also.value != 0) stock_.prefetch(PairKey{SkuId{l->sku()}, also});
    }
  };
  switch (env.payload_type()) {
    case fb::Payload::ScanOut: break;
    case fb::Payload::ProductionCompleted: {
      const fb::ProductionCompleted& e = *env.payload_as_ProductionCompleted();
      return lines(e.lines(), LocationId{e.location()}, LocationId{0});
    }
    case fb::Payload::ShipmentDispatched: {
      const fb::ShipmentDispatched& e = *env.payload_as_ShipmentDispatched();
      return lines(e.lines(), LocationId{e.from_location()}, LocationId{e.to_location()});
    }
    case fb::Payload::ShipmentReceived: {
      const fb::ShipmentReceived& e = *env.payload_as_ShipmentReceived();
      return lines(e.lines(), LocationId{e.location()}, LocationId{0});
    }
    case fb::Payload::StockCounted: {
      const fb::StockCounted& e = *env.payload_as_StockCounted();
      return lines(e.lines(), LocationId{e.location()}, LocationId{0});
    }
    default: return;
  }
  const fb::ScanOut& s = *env.payload_as_ScanOut();
  const LocationId store{s.store()};
  const SkuId sku{s.sku()};
  if (stage == PrefetchStage::keys) {
    locations_.prefetch(store);
    stock_.prefetch(PairKey{sku, store});
    virtual_.prefetch(Account{sku, kVirtualLocation, Bucket::consumers});
  }
  channel_.prefetch_scan_out(event.occurred_at, store, sku, stage);
}

void ChannelLedger::prefetch_scan_out(TimeMs occurred_at, LocationId store, SkuId sku, PrefetchStage stage) const {
  if (stage == PrefetchStage::keys) {
    assignments_.prefetch(store);
    prices_.prefetch(sku);
    return;
  }
  // The entries scanned_out counts in: the distributor's and its agent's, month and quarter.
  const std::optional<PartyId> owner = distributor_of(store);
  if (!owner) return;
  PartyId parties[2];
  const int n = chain(*owner, parties);
  const Period month = month_of(occurred_at);
  for (int i = 0; i < n; ++i) {
    for (Period p : {month, month.quarter()}) {
      const PartyPeriod k{parties[i], p};
      stats_.prefetch(k);
      active_.prefetch(ActiveKey{k, store});
    }
  }
}

}  // namespace qudao
