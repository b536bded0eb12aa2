// apply: one decoded event against one shard's ledger. Pure and deterministic: the result depends
// only on the shard's state and the event (no clock, no hash-map iteration order), so replaying the
// same log gives the same state whatever the batch boundaries.
//
// An event is either applied whole (its postings are posted) or rejected whole (nothing changes).
// A scan-out beyond a store's stock is applied and flagged as an anomaly: the sale happened.
//
// Shipments between shards (HQ's warehouse supplying a region's sub-warehouse; design §6) are two
// legs, each applied and balanced on its own shard:
//   source      ShipmentDispatched naming payload.to_region, its to_location not on this shard:
//               on_hand(from) -> clearing; the shipment is recorded as handed over (ended here);
//               the outbox gets the arrival leg, a ShipmentTransferred keyed to_region, whose event
//               id is derived from the dispatch's (arrival_event_id) so a re-sent or replayed one
//               is the same event.
//   destination ShipmentTransferred: clearing -> in_transit(to_location), and the shipment is
//               opened here, so to_location's ShipmentReceived receives it like any other
//               (shortages to losses). A copy of an arrival leg already applied is a duplicate:
//               by the duplicate window (same id, same bytes), or, once the window has forgotten
//               it, by the shipment it opened (same shipment, from, to and lines), even evicted;
//               so is the arrival leg of a dispatch this shard applied itself as an ordinary
//               shipment (both regions on one partition: to_location was defined here).
// The source checks what it can know: from_location is its own warehouse with the stock, and
// to_location is not one of its own locations (it would then be an ordinary shipment) nor of
// from_location's region; the destination checks that to_location is defined there. An arrival the
// destination rejects is dead-lettered there (`qudao dlq redrive` once the location is defined) and
// its goods stay in the source's clearing account, which `qudao audit` reports.
// Applied scan-outs and anomalies also go into the shard's stock history (engine/history.h).
#pragma once

#include <optional>
#include <span>
#include <vector>

#include "engine/ledger.h"
#include "events/encode.h"

namespace qudao {

// `duplicate`: an arrival leg of a shipment between shards whose shipment this shard already holds
// (a re-send found by the shipment itself, where the duplicate window has forgotten the id).
enum class OutcomeKind : std::uint8_t { applied, rejected, duplicate };

struct Outcome {
  OutcomeKind kind = OutcomeKind::applied;
  Anomaly anomaly = Anomaly::none;  // applied, but something a human should look at
  Rejection rejection;               // when rejected
};

// What became of one consumed record.
enum class RecordOutcome : std::uint8_t { applied, duplicate, rejected };

struct Ingested {
  RecordOutcome outcome = RecordOutcome::rejected;
  const fb::Envelope* envelope = nullptr;  // when applied: the event, viewing the record's bytes
};

// Reusable scratch space and the postings of the last applied event (valid until the next call).
class Applier {
 public:
  // One record, start to end: decode, check the duplicate window, apply, and record the outcome
  // in the shard (which advances its next offset). The record's bytes must outlive the result.
  // `key`: the record's Kafka key, kept with a dead letter (for re-driving it).
  Ingested ingest(Shard& shard, Offset offset, std::span<const std::uint8_t> bytes,
                  std::span<const std::uint8_t> key = {});
  // The same for a record already decoded: `decoded` must be decode(bytes) (a batch decodes ahead,
  // to prefetch what the records will read: connectors/ingest_batch.h).
  Ingested ingest(Shard& shard, Offset offset, std::span<const std::uint8_t> bytes, Decoded decoded,
                  std::span<const std::uint8_t> key = {});

  // The id of the arrival leg of the shipment dispatched by event `dispatch` (a function of it only).
  static EventId arrival_event_id(EventId dispatch);

  // Applies one decoded event (without the duplicate window or expiry); the caller records the outcome.
  Outcome apply(Shard& shard, const Event& event);

  // The postings of the last record: an applied event's, and those of the orders that event's time
  // expired (which stand even if the event itself was rejected). Project them whatever the outcome.
  std::span<const Posting> postings() const { return postings_; }

 private:
  Outcome dispatch(Shard& shard, const Event& event);
  Outcome apply(Shard& shard, const fb::LocationDefined& e);
  Outcome apply(Shard& shard, const fb::ProductionCompleted& e);
  Outcome apply(Shard& shard, const fb::OrderPlaced& e, const Event& event);
  Outcome apply(Shard& shard, const fb::ShipmentDispatched& e, const Event& event);
  // The source leg of a shipment to another shard (to_location is not on this one); `from` is defined.
  Outcome dispatch_to_shard(Shard& shard, const fb::ShipmentDispatched& e, const Event& event,
                            const LocationInfo& from, std::string_view to_region);
  Outcome apply(Shard& shard, const fb::ShipmentTransferred& e);
  Outcome apply(Shard& shard, const fb::OrderPaid& e, const Event& event);
  Outcome apply(Shard& shard, const fb::OrderCancelled& e, const Event& event);
  // Expires the unpaid proxy orders whose deadline is before `now`, releasing their reservations.
  void expire_due(Shard& shard, TimeMs now);
  Outcome apply(Shard& shard, const fb::ShipmentReceived& e);
  Outcome apply(Shard& shard, const fb::ScanOut& e, const Event& event);
  Outcome apply(Shard& shard, const fb::StoreAssigned& e, const Event& event);
  Outcome apply(Shard& shard, const fb::StockCounted& e);

  // Posts the postings added since the last post_all (an event's own, after its checks passed).
  void post_all(Shard& shard);
  void release(Order& o);  // gives back what a proxy order holds; adds the postings
  // per_sku_ := the lines' quantities summed per sku (a dispatch may put one sku on several lines), by sku.
  void sum_per_sku(const flatbuffers::Vector<const fb::StockLine*>& lines);
  // A paid order goes to the warehouses through the outbox: the order's own fulfilment location if
  // it has the stock, else a warehouse in the store's city that has it, else HQ.
  LocationId choose_warehouse(const Shard& shard, const Order& o) const;
  void request_dispatch(Shard& shard, OrderId id, const Order& o, const Event& paid);

  std::vector<Posting> postings_;
  std::size_t posted_ = 0;
  // The anomalies of the event being applied (location, kind, sku, qty); ingest() records them in
  // the shard's history with the event's offset, id and day once the event is applied.
  std::vector<AnomalyRecord> anomalies_;
  std::vector<std::pair<SkuId, std::int64_t>> per_sku_;
  std::vector<Line> lines_;
  EventWriter writer_;
};

}  // namespace qudao
