#include "events/shard_key.h"

#include <fmt/format.h>

namespace qudao {

std::optional<EventLocation> event_location(const fb::Envelope& event) {
  using P = fb::Payload;
  switch (event.payload_type()) {
    case P::LocationDefined: return EventLocation{LocationId{event.payload_as_LocationDefined()->location()}, "payload.location"};
    case P::ScanOut: return EventLocation{LocationId{event.payload_as_ScanOut()->store()}, "payload.store"};
    case P::StockCounted: return EventLocation{LocationId{event.payload_as_StockCounted()->location()}, "payload.location"};
    case P::ProductionCompleted:
      return EventLocation{LocationId{event.payload_as_ProductionCompleted()->location()}, "payload.location"};
    case P::ShipmentReceived:
      return EventLocation{LocationId{event.payload_as_ShipmentReceived()->location()}, "payload.location"};
    case P::ShipmentDispatched:
      return EventLocation{LocationId{event.payload_as_ShipmentDispatched()->from_location()}, "payload.from_location"};
    case P::ShipmentTransferred:
      return EventLocation{LocationId{event.payload_as_ShipmentTransferred()->to_location()}, "payload.to_location"};
    case P::OrderPlaced: return EventLocation{LocationId{event.payload_as_OrderPlaced()->store()}, "payload.store"};
    case P::StoreAssigned: return EventLocation{LocationId{event.payload_as_StoreAssigned()->store()}, "payload.store"};
    case P::FeedbackRecorded: return EventLocation{LocationId{event.payload_as_FeedbackRecorded()->store()}, "payload.store"};
    default: return std::nullopt;
  }
}

std::optional<std::string_view> own_shard_key(const fb::Envelope& event) {
  if (event.payload_type() != fb::Payload::LocationDefined) return std::nullopt;
  return event.payload_as_LocationDefined()->region()->string_view();
}

std::optional<Rejection> check_shard_key(std::string_view key, const fb::Envelope& event) {
  if (key.empty()) return Rejection{RejectReason::missing_field, "key", "the record has no key (the shard key: a region)"};
  if (key.size() > kNameBytesMax) {
    return Rejection{RejectReason::invalid_value, "key",
                     fmt::format("{} bytes; the shard key is a region name, at most {} bytes", key.size(), kNameBytesMax)};
  }
  if (const auto region = own_shard_key(event); region && key != *region) {
    return Rejection{RejectReason::invalid_value, "key",
                     fmt::format("\"{}\" is not the location's region \"{}\": the location would live on another "
                                 "shard than the events keyed by its region",
                                 printable_key(key), printable_key(*region))};
  }
  return std::nullopt;
}

std::string printable_key(std::string_view key) {
  std::string out;
  for (unsigned char c : key) {
    if (c == '\t') out += "\\t";
    else if (c < 0x20 || c == 0x7f) out += fmt::format("\\x{:02x}", c);
    else out.push_back(static_cast<char>(c));
  }
  return out;
}

std::string event_id_text(EventId id) { return fmt::format("{:016x}{:016x}", id.hi, id.lo); }

}  // namespace qudao
