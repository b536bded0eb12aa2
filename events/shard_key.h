// The shard key of an event (events/PRODUCERS.md, "The record"): the Kafka record key is the name of
// the region of the location the event is about, so that a region's locations and every event about
// them land on one partition, one shard. Shared by everything that produces events (`qudao produce`,
// the HTTP ingest endpoint) so that they key records by one rule.
//
// "The location the event is about", per event type:
//   LocationDefined      payload.location (and the key must be its own payload.region)
//   ScanOut              payload.store          StockCounted        payload.location
//   ProductionCompleted  payload.location       ShipmentReceived    payload.location
//   ShipmentDispatched   payload.from_location  OrderPlaced         payload.store
//   StoreAssigned        payload.store          FeedbackRecorded    payload.store
//   ShipmentTransferred  payload.to_location (the arrival leg of a shipment between shards)
// The other events name no location; their key is the producer's to give (the region of the party,
// or of the order's store).
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "events/decode.h"

namespace qudao {

struct EventLocation {
  LocationId location;
  std::string_view field;  // its path in the event, e.g. "payload.store"
};

// The location `event` is about (table above), or nothing if its type names none.
std::optional<EventLocation> event_location(const fb::Envelope& event);

// The key an event carries by itself: a LocationDefined's own payload.region; nothing otherwise.
std::optional<std::string_view> own_shard_key(const fb::Envelope& event);

// Why `key` cannot be the record key of `event`, or nothing if it can: empty, longer than a region
// name may be, or a LocationDefined keyed by anything but its own region (its location would live on
// another shard than the events keyed by its region).
std::optional<Rejection> check_shard_key(std::string_view key, const fb::Envelope& event);

// A key as it can be printed on one line of an error message: control bytes escaped.
std::string printable_key(std::string_view key);

// An event id in text: 32 lowercase hex digits, `hi` then `lo` (a UUID's digits without dashes).
std::string event_id_text(EventId id);

}  // namespace qudao
