// Decode = verify + validate: untrusted bytes from Kafka become either an Event (a checked view
// over the FlatBuffer) or a Rejection that names the field and the problem.
//
// The FlatBuffers verifier always runs first, with explicit limits, so no accessor ever reads out
// of bounds; semantic validation follows (the verifier checks bounds, not meaning). decode() never
// throws, never crashes on any input, and is safe to call from any thread.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <variant>

#include "events/qudao_generated.h"
#include "events/types.h"

namespace qudao {

// The newest schema version this build understands (see the rules in events/qudao.fbs).
inline constexpr std::uint16_t kSchemaVersion = 5;

// Verifier and validation limits. A record larger than this is rejected before parsing.
inline constexpr std::size_t kEventBytesMax = 1 << 20;
inline constexpr std::uint32_t kVerifierDepthMax = 16;
inline constexpr std::uint32_t kVerifierTablesMax = 10'000;
inline constexpr std::uint32_t kLinesMax = 1'000;
inline constexpr std::size_t kNameBytesMax = 256;
inline constexpr std::uint32_t kRebateTiersMax = 20;
inline constexpr std::int32_t kSkuReorderCoverDaysMax = 365;  // SkuDefined.reorder_cover_days
// FlatBuffers lays out an event for a buffer that starts at this alignment (its largest scalar).
inline constexpr std::size_t kEventAlignment = 8;

// Stable reason codes: producers and dead-letter tooling match on the names (reason_name()).
enum class RejectReason : std::uint16_t {
  // The bytes are not a valid event of this contract.
  malformed = 1,                   // not a verifiable FlatBuffer / wrong file identifier / too big
  unsupported_schema_version = 2,  // newer than this build, or 0
  missing_field = 3,
  invalid_value = 4,
  // The event is well-formed but impossible given the ledger's state (decided by engine/).
  unknown_location = 20,
  wrong_location_kind = 21,
  insufficient_stock = 22,
  conflicting_duplicate = 23,      // an event id applied before, now with different bytes
  unknown_order = 24,
  unknown_shipment = 25,
  illegal_transition = 26,         // e.g. paying a cancelled order, receiving a shipment twice
  exceeds_order = 27,              // dispatching more than was ordered, receiving more than was sent
  already_exists = 28,             // an order or shipment id used a second time
  exceeds_outstanding = 29,        // settling more rebate than the party is owed for the period
};

const char* reason_name(RejectReason reason);

struct Rejection {
  RejectReason reason = RejectReason::malformed;
  std::string field;    // path inside the event, e.g. "payload.lines[2].qty"; empty if none
  std::string message;  // what is wrong, for a producer's engineer

  // "payload.lines[2].qty: must be > 0, got -5 (invalid_value)"
  std::string to_string() const;
};

// A verified, validated event. `envelope` points into the caller's bytes and lives as long as they.
struct Event {
  EventId id;
  TimeMs occurred_at;
  const fb::Envelope* envelope = nullptr;

  fb::Payload type() const { return envelope->payload_type(); }
};

using Decoded = std::variant<Event, Rejection>;

// `bytes` must start kEventAlignment-aligned (heap buffers are; Kafka record values are copied when
// they are not, see connectors/kafka.cc).
Decoded decode(std::span<const std::uint8_t> bytes);

}  // namespace qudao
