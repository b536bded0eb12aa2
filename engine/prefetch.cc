// What applying an event reads, for the batch to prefetch (engine/prefetch.h). Kept next to
// nothing it could change: every function here is const.
#include "engine/prefetch.h"

#include "engine/channel.h"
#include "engine/ledger.h"

namespace qudao {

void Shard::prefetch(const Event& event) const {
  const fb::Envelope& env = *event.envelope;
  window_.prefetch(event.id);
  // Goods moving in lines (production, shipments, receipts, counts) post to the (sku, location) entry
  // of every line: as many misses as lines, all named by the event. The orders' own entries are
  // read in an order that depends on the order's state, and are few: left to the apply.
  auto lines = [&](const flatbuffers::Vector<const fb::StockLine*>* ls, LocationId at, LocationId also) {
    if (ls == nullptr) return;
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
  locations_.prefetch(store);
  stock_.prefetch(PairKey{sku, store});
  virtual_.prefetch(Account{sku, kVirtualLocation, Bucket::consumers});
  channel_.prefetch_scan_out(store, sku);
}

void ChannelLedger::prefetch_scan_out(LocationId store, SkuId sku) const {
  assignments_.prefetch(store);
  prices_.prefetch(sku);
}

}  // namespace qudao
