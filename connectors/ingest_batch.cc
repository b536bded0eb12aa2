#include "connectors/ingest_batch.h"

#include "connectors/pipeline.h"

namespace qudao {
namespace {

// The projection's part of one ingested record (the rest of ingest_and_project).
void project_ingested(const Applier& applier, Shard& shard, const Ingested& ingested,
                      StockProjection::Writer& projection) {
  projection.advance_day(shard.partition(), day_of(shard.watermark()));
  if (ingested.outcome == RecordOutcome::applied && ingested.envelope->payload_type() == fb::Payload::LocationDefined) {
    const LocationId id{ingested.envelope->payload_as_LocationDefined()->location()};
    projection.define_location(id, *shard.location(id), shard.partition());
  }
  if (ingested.outcome == RecordOutcome::applied && ingested.envelope->payload_type() == fb::Payload::SkuDefined) {
    const fb::SkuDefined& d = *ingested.envelope->payload_as_SkuDefined();
    projection.define_reorder_point(shard.partition(), SkuId{d.sku()}, d.reorder_cover_days());
  }
  // Even a rejected event may have moved event time past a deadline: its expiries are postings too.
  projection.project(applier.postings());
  if (ingested.outcome == RecordOutcome::applied && ingested.envelope->payload_type() == fb::Payload::ScanOut) {
    const fb::ScanOut& s = *ingested.envelope->payload_as_ScanOut();
    projection.record_sale(LocationId{s.store()}, SkuId{s.sku()}, day_of(TimeMs{ingested.envelope->occurred_at_ms()}),
                           Quantity{s.qty()});
  }
  projection.release();  // queries get in between records, not only between poll batches
}

}  // namespace

RecordOutcome ingest_and_project(Applier& applier, Shard& shard, Offset offset, std::span<const std::uint8_t> bytes,
                                 StockProjection::Writer& projection, std::span<const std::uint8_t> key) {
  const Ingested ingested = applier.ingest(shard, offset, bytes, key);
  project_ingested(applier, shard, ingested, projection);
  return ingested.outcome;
}

void BatchIngester::prefetch(const BatchRecord& r, const Decoded& decoded, StockProjection::Writer& projection) {
  const Event* event = std::get_if<Event>(&decoded);
  if (event == nullptr) return;  // rejected by decode: reads nothing
  r.shard->prefetch(*event);
  if (event->type() != fb::Payload::ScanOut) return;
  projection.prefetch(LocationId{event->envelope->payload_as_ScanOut()->store()});
}

void BatchIngester::ingest_and_project(Applier& applier, std::span<const BatchRecord> records,
                                       StockProjection::Writer& projection,
                                       std::vector<std::optional<RecordOutcome>>* outcomes) {
  const std::size_t n = records.size();
  if (outcomes != nullptr) outcomes->assign(n, std::nullopt);
  auto decode_ahead = [&](std::size_t j) {
    Decoded& d = decoded_[j % kDecodeAheadRecords];
    d = decode(records[j].bytes);
    prefetch(records[j], d, projection);
  };
  for (std::size_t j = 0; j < std::min(n, kDecodeAheadRecords); ++j) decode_ahead(j);
  for (std::size_t i = 0; i < n; ++i) {
    Decoded decoded = std::move(decoded_[i % kDecodeAheadRecords]);  // frees the slot for record i + ahead
    if (i + kDecodeAheadRecords < n) decode_ahead(i + kDecodeAheadRecords);
    const BatchRecord& r = records[i];
    if (r.offset < r.shard->next_offset()) continue;  // already applied: never apply twice
    const Ingested ingested = applier.ingest(*r.shard, r.offset, r.bytes, std::move(decoded), r.key);
    project_ingested(applier, *r.shard, ingested, projection);
    if (outcomes != nullptr) (*outcomes)[i] = ingested.outcome;
  }
}

}  // namespace qudao
