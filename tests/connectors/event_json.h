// Events in the contract's JSON form (events/json.h), as a client of POST /v1/events writes them.
// Ids are {hi: 9, lo: n}: event_id_text() gives "0000000000000009" followed by n in 16 hex digits.
#pragma once

#include <fmt/format.h>

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support.h"

namespace qudao::test {

inline nlohmann::json event_json(std::uint64_t id, const char* type, nlohmann::json payload) {
  return {{"event_id", {{"hi", 9}, {"lo", id}}}, {"occurred_at_ms", kT0 + static_cast<std::int64_t>(id) * 1000},
          {"source", "ingest-test"}, {"schema_version", 1}, {"payload_type", type}, {"payload", std::move(payload)}};
}

inline nlohmann::json location_json(std::uint64_t id, std::uint64_t location, const char* kind, const char* region) {
  return event_json(id, "LocationDefined", {{"location", location}, {"kind", kind}, {"name", "loc"},
                                            {"city", "Hangzhou"}, {"region", region}});
}

inline nlohmann::json scan_out_json(std::uint64_t id, std::uint64_t store, std::uint64_t sku, std::int64_t qty) {
  return event_json(id, "ScanOut", {{"store", store}, {"sku", sku}, {"qty", qty}});
}

inline nlohmann::json production_json(std::uint64_t id, std::uint64_t location, std::uint64_t sku, std::int64_t qty) {
  return event_json(id, "ProductionCompleted", {{"batch", id}, {"location", location}, {"lines", {{{"sku", sku}, {"qty", qty}}}}});
}

inline std::string id_text(std::uint64_t id) { return fmt::format("{:016x}{:016x}", 9, id); }

}  // namespace qudao::test
