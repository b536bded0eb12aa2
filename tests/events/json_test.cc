// JSON input gets the same quality of error as bytes: the field and the problem.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <iterator>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "events/json.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;

namespace {

json golden(const std::string& type, int version = 1) {
  std::ifstream in(std::filesystem::path(QUDAO_SOURCE_DIR) / "tests" / "golden" / fmt::format("v{}", version) /
                   (type + ".json"));
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str());
}

// The golden event of `type` with one payload field changed, parsed: the rejection's text.
std::string rejection_with(const std::string& type, const json::json_pointer& field, const json& value,
                           int version = 1) {
  json doc = golden(type, version);
  doc[field] = value;
  auto r = from_json(doc.dump());
  REQUIRE_MESSAGE(std::holds_alternative<Rejection>(r), "expected a rejection for " << doc.dump());
  return std::get<Rejection>(r).to_string();
}

std::string rejection_of(const std::string& text) {
  auto r = from_json(text);
  REQUIRE_MESSAGE(std::holds_alternative<Rejection>(r), "expected a rejection for " << text);
  return std::get<Rejection>(r).to_string();
}

}  // namespace

TEST_CASE("json: syntax and schema errors name the line, column and problem") {
  CHECK(rejection_of("{") == "invalid JSON event: line 1, column 1: expecting: string constant instead got: end of file (malformed)");
  CHECK(rejection_of(R"({"event_id": {"hi": 1, "lo": 2}, "payload_type": "ScanOut", "payload": {"qtty": 1}})")
            .find("unknown field: qtty") != std::string::npos);
  CHECK(rejection_of(R"({"payload_type": "Refund", "payload": {}})").find("Refund") != std::string::npos);
  CHECK(rejection_of(R"({"payload_type": "ScanOut", "payload": {"qty": "many"}})").find("malformed") != std::string::npos);
}

TEST_CASE("json: a JSON event fails validation exactly as its bytes would") {
  CHECK(rejection_with("ShipmentDispatched", "/payload/lines/0/qty"_json_pointer, -5) ==
        "payload.lines[0].qty: must be > 0, got -5 (invalid_value)");
  CHECK(rejection_with("ScanOut", "/schema_version"_json_pointer, kSchemaVersion + 1) ==
        fmt::format("schema_version: this build understands versions 1..{}, got {} (unsupported_schema_version)",
                    kSchemaVersion, kSchemaVersion + 1));
  json no_id = golden("ScanOut");
  no_id.erase("event_id");
  CHECK(rejection_of(no_id.dump()).find("event_id") != std::string::npos);
}

TEST_CASE("validate: text must be UTF-8 without control characters (it must print as JSON and parse back)") {
  CHECK(rejection_with("PartyRegistered", "/payload/name"_json_pointer, "a\u0007b") ==
        "payload.name: must be UTF-8 text without control characters, byte 1 is 0x07 (invalid_value)");
  CHECK(rejection_with("ScanOut", "/payload/item_code"_json_pointer, "QR\n1") ==
        "payload.item_code: must be UTF-8 text without control characters, byte 2 is 0x0a (invalid_value)");
  // Broken UTF-8 cannot be written in JSON: patch it into the bytes of the golden ScanOut's source.
  std::ifstream in(std::filesystem::path(QUDAO_SOURCE_DIR) / "tests" / "golden" / "v1" / "ScanOut.bin", std::ios::binary);
  Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* source = fb::GetEnvelope(b.data())->source();
  b[static_cast<std::size_t>(reinterpret_cast<const std::uint8_t*>(source->data()) - b.data())] = 0xea;
  CHECK(must_reject(b).to_string() == "source: must be UTF-8 text without control characters, byte 0 is 0xea (invalid_value)");
  // Chinese names are text like any other.
  CHECK(std::holds_alternative<Bytes>(from_json(golden("SkuDefined").dump())));
}

TEST_CASE("json: a document with a NUL byte is rejected, not cut short") {
  const std::string doc = golden("ScanOut").dump() + std::string(1, '\0') + "garbage";
  CHECK(rejection_of(doc) == fmt::format("invalid JSON event: a NUL byte at offset {} (malformed)", doc.find('\0')));
}

TEST_CASE("decode: a struct vector placed off its alignment is malformed (found by decode_fuzz)") {
  const std::string hex =
      "180000005144414f10002a00080020001800060005001c001000000000050100f0debc9a785634120e00200000513ddc3000000018000000"
      "c8dada769b01000000000a0014000c00040008000a0000002c0000000c000000323032362d513100010000000000002d310000005131000100000000";
  Bytes b;
  for (std::size_t i = 0; i < hex.size(); i += 2) b.push_back(static_cast<std::uint8_t>(std::stoi(hex.substr(i, 2), nullptr, 16)));
  // The fuzzer's input also had a NUL in its source, which is now rejected first: make it text.
  const auto* source = fb::GetEnvelope(b.data())->source();
  const auto at = static_cast<std::size_t>(reinterpret_cast<const std::uint8_t*>(source->data()) - b.data());
  for (std::size_t i = 0; i < source->size(); ++i) b[at + i] = 'x';
  const Rejection r = must_reject(b);
  CHECK(r.reason == RejectReason::malformed);
  CHECK(r.to_string() == "payload.lines: elements are not aligned (malformed)");
}

TEST_CASE("validate: missing fields are named") {
  json no_name = golden("LocationDefined");
  no_name["payload"].erase("name");
  CHECK(rejection_of(no_name.dump()) == "payload.name: is required (missing_field)");
  json no_lines = golden("ShipmentDispatched");
  no_lines["payload"].erase("lines");
  CHECK(rejection_of(no_lines.dump()) == "payload.lines: is required (missing_field)");
  json no_tiers = golden("RebatePolicySet");
  no_tiers["payload"].erase("tiers");
  CHECK(rejection_of(no_tiers.dump()) == "payload.tiers: is required (missing_field)");
  json no_source = golden("ScanOut");
  no_source.erase("source");
  CHECK(rejection_of(no_source.dump()) == "source: is required (missing_field)");
  json no_payload = golden("ScanOut");
  no_payload.erase("payload");
  no_payload.erase("payload_type");
  CHECK(rejection_of(no_payload.dump()).find("payload") != std::string::npos);
}

TEST_CASE("validate: an event type newer than this build is recognised as such") {
  // The golden ScanOut with its union type byte set past the last known member.
  std::ifstream in(std::filesystem::path(QUDAO_SOURCE_DIR) / "tests" / "golden" / "v1" / "ScanOut.bin", std::ios::binary);
  Bytes b((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto* env = fb::GetEnvelope(b.data());
  const auto* field = reinterpret_cast<const flatbuffers::Table*>(env)->GetAddressOf(fb::Envelope::VT_PAYLOAD_TYPE);
  REQUIRE(field != nullptr);
  b[static_cast<std::size_t>(field - b.data())] = static_cast<std::uint8_t>(fb::Payload::MAX) + 1;
  const Rejection r = must_reject(b);
  CHECK(r.reason == RejectReason::unsupported_schema_version);
  CHECK(r.to_string() == fmt::format("payload: unknown event type {} (unsupported_schema_version)",
                                     static_cast<int>(fb::Payload::MAX) + 1));
}

TEST_CASE("validate: periods are months or quarters") {
  for (const char* ok : {"2026-01", "2026-12", "2026-Q1", "2026-Q4"}) {
    json doc = golden("TargetSet");
    doc["payload"]["period"] = ok;
    CHECK_MESSAGE(std::holds_alternative<Bytes>(from_json(doc.dump())), ok);
  }
  for (const char* bad : {"2026-00", "2026-13", "2026-Q0", "2026-Q5", "2026-1", "26-01", "1999-01", "2026/01", "2026-01-01"}) {
    CHECK_MESSAGE(rejection_with("TargetSet", "/payload/period"_json_pointer, bad).find("payload.period: must be a month") == 0, bad);
  }
}

TEST_CASE("validate: the rules of the catalogue, party and money events") {
  CHECK(rejection_with("SkuDefined", "/payload/code"_json_pointer, "") == "payload.code: must not be empty (invalid_value)");
  CHECK(rejection_with("SkuDefined", "/payload/list_price_fen"_json_pointer, -1) ==
        "payload.list_price_fen: must be >= 0, got -1 (invalid_value)");
  CHECK(rejection_with("SkuDefined", "/payload/production_lead_time_days"_json_pointer, 400) ==
        "payload.production_lead_time_days: must be 0..365, got 400 (invalid_value)");
  CHECK(rejection_with("SkuDefined", "/payload/reorder_cover_days"_json_pointer, 366) ==
        "payload.reorder_cover_days: must be 1..365 (or 0: none), got 366 (invalid_value)");
  CHECK(rejection_with("SkuDefined", "/payload/reorder_cover_days"_json_pointer, -3) ==
        "payload.reorder_cover_days: must be 1..365 (or 0: none), got -3 (invalid_value)");
  for (int ok : {0, 1, 365}) {
    json doc = golden("SkuDefined");
    doc["payload"]["reorder_cover_days"] = ok;
    CHECK_MESSAGE(std::holds_alternative<Bytes>(from_json(doc.dump())), ok);
  }
  {  // A version-2 producer knows no reorder point: its SkuDefined has none.
    json doc = golden("SkuDefined");
    doc["schema_version"] = 2;
    doc["payload"].erase("reorder_cover_days");
    auto parsed = from_json(doc.dump());
    REQUIRE(std::holds_alternative<Bytes>(parsed));
    CHECK(must_decode(std::get<Bytes>(parsed)).envelope->payload_as_SkuDefined()->reorder_cover_days() == 0);
  }
  CHECK(rejection_with("PartyRegistered", "/payload/kind"_json_pointer, "Unknown") ==
        "payload.kind: must be Agent, Distributor or Store, got 0 (invalid_value)");
  CHECK(rejection_with("PartyRegistered", "/payload/parent"_json_pointer, 500) ==
        "payload.parent: must differ from party, both are 500 (invalid_value)");
  CHECK(rejection_with("PartyRegistered", "/payload/location"_json_pointer, 3) ==
        "payload.location: only Store parties have a location, got 3 for a Distributor (invalid_value)");
  CHECK(rejection_with("StoreAssigned", "/payload/distributor"_json_pointer, 0) ==
        "payload.distributor: must be > 0, got 0 (invalid_value)");
  CHECK(rejection_with("OrderPaid", "/payload/amount_fen"_json_pointer, 0) == "payload.amount_fen: must be > 0, got 0 (invalid_value)");
  CHECK(rejection_with("OrderCancelled", "/payload/reason"_json_pointer, "") == "payload.reason: must not be empty (invalid_value)");
  CHECK(rejection_with("TargetSet", "/payload/period"_json_pointer, "2026-13") ==
        "payload.period: must be a month \"YYYY-MM\" or a quarter \"YYYY-Qn\", got \"2026-13\" (invalid_value)");
  CHECK(rejection_with("TargetSet", "/payload/period"_json_pointer, "2026-Q5").find("payload.period") == 0);
  CHECK(rejection_with("RebatePolicySet", "/payload/tiers/1/attainment_bp"_json_pointer, 8000) ==
        "payload.tiers[1].attainment_bp: must be greater than tiers[0]'s 8000, got 8000 (invalid_value)");
  CHECK(rejection_with("RebatePolicySet", "/payload/tiers/2/rebate_bp"_json_pointer, 10001) ==
        "payload.tiers[2].rebate_bp: must be 0..10000, got 10001 (invalid_value)");
  CHECK(rejection_with("RebatePolicySet", "/payload/tiers"_json_pointer, json::array()) ==
        "payload.tiers: must have 1..20 tiers, got 0 (invalid_value)");
  CHECK(rejection_with("RebateAdjusted", "/payload/amount_fen"_json_pointer, 0) == "payload.amount_fen: must not be 0 (invalid_value)");
  CHECK(rejection_with("RebateSettled", "/payload/amount_fen"_json_pointer, 0, 4) ==
        "payload.amount_fen: must be > 0, got 0 (invalid_value)");
  CHECK(rejection_with("RebateSettled", "/payload/amount_fen"_json_pointer, -100, 4) ==
        "payload.amount_fen: must be > 0, got -100 (invalid_value)");
  CHECK(rejection_with("RebateSettled", "/payload/payment_reference"_json_pointer, "", 4) ==
        "payload.payment_reference: must not be empty (invalid_value)");
  CHECK(rejection_with("RebateSettled", "/payload/payment_reference"_json_pointer, std::string(300, 'p'), 4) ==
        "payload.payment_reference: must be at most 256 bytes, got 300 (invalid_value)");
  CHECK(rejection_with("RebateSettled", "/payload/period"_json_pointer, "2026-Q0", 4).find("payload.period") == 0);
  CHECK(rejection_with("FeedbackRecorded", "/payload/rating"_json_pointer, 6) == "payload.rating: must be 1..5, got 6 (invalid_value)");
  CHECK(rejection_with("FeedbackRecorded", "/payload/rating"_json_pointer, 0) == "payload.rating: must be 1..5, got 0 (invalid_value)");
  CHECK(rejection_with("TrainingCompleted", "/payload/score"_json_pointer, 101) == "payload.score: must be 0..100, got 101 (invalid_value)");
  CHECK(rejection_with("StockCounted", "/payload/lines/1/qty"_json_pointer, -1) ==
        "payload.lines[1].qty: a counted quantity must be >= 0, got -1 (invalid_value)");
  CHECK(rejection_with("StockCounted", "/payload/lines/1/sku"_json_pointer, 1) ==
        "payload.lines[1].sku: sku 1 is already counted in lines[0] (invalid_value)");
  CHECK(rejection_with("ScanOut", "/payload/item_code"_json_pointer, std::string(300, 'x')) ==
        "payload.item_code: must be at most 256 bytes, got 300 (invalid_value)");
  CHECK(rejection_with("OrderPlaced", "/payload/store"_json_pointer, 0) == "payload.store: must be > 0, got 0 (invalid_value)");
  json twice = golden("OrderPlaced");
  twice["payload"]["lines"].push_back(twice["payload"]["lines"][0]);
  CHECK(rejection_of(twice.dump()) == "payload.lines[1].sku: sku 1 is already ordered in lines[0] (invalid_value)");
  CHECK(rejection_with("TrainingCompleted", "/payload/course"_json_pointer, "") == "payload.course: must not be empty (invalid_value)");
  CHECK(rejection_with("PartyRegistered", "/payload/industry"_json_pointer, std::string(257, 'i')) ==
        "payload.industry: must be at most 256 bytes, got 257 (invalid_value)");
  CHECK(rejection_with("LocationDefined", "/payload/city"_json_pointer, std::string(257, 'c')) ==
        "payload.city: must be at most 256 bytes, got 257 (invalid_value)");
  CHECK(rejection_with("ScanOut", "/occurred_at_ms"_json_pointer, 4102444800000LL) ==
        "occurred_at_ms: must be ms since the epoch between 2000 and 2100, got 4102444800000 (invalid_value)");
}

}  // namespace qudao
