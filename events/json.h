// The JSON form of events: flatc's JSON for the same schema (field names as in events/qudao.fbs,
// enums by name, the union as "payload_type" + "payload"). Used by tools, tests, dead-letter
// inspection and the HTTP ingest endpoint. Thread-safe (each thread keeps its own parser).
//
//   {"event_id": {"hi": 1, "lo": 2}, "occurred_at_ms": 1767225600000, "source": "erp-east",
//    "schema_version": 1, "payload_type": "ScanOut",
//    "payload": {"store": 12, "sku": 3, "qty": 2}}
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "events/decode.h"

namespace qudao {

enum class JsonStyle : std::uint8_t { compact, pretty };

// Event bytes to JSON. Needs only verifiable bytes (a semantically invalid event still prints, so
// a dead letter can be read); fails with a Rejection if the bytes do not verify.
// `bytes` must start kEventAlignment-aligned, as for decode().
std::variant<std::string, Rejection> to_json(std::span<const std::uint8_t> bytes, JsonStyle style);

// JSON to event bytes that decode() accepts, or the Rejection: a JSON syntax or schema error
// (reason malformed, message with line and column) or the same validation error as for bytes.
std::variant<std::vector<std::uint8_t>, Rejection> from_json(std::string_view json);

}  // namespace qudao
