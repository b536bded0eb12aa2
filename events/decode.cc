#include "events/decode.h"

#include <fmt/format.h>

#include <cassert>
#include <cstdint>
#include <optional>

namespace qudao {
namespace {

// Event times outside [2000-01-01, 2100-01-01) are a producer bug (seconds instead of ms, say).
constexpr std::int64_t kTimeMsMin = 946'684'800'000;
constexpr std::int64_t kTimeMsMax = 4'102'444'800'000;

using Check = std::optional<Rejection>;

Rejection reject(RejectReason reason, std::string field, std::string message) {
  return Rejection{reason, std::move(field), std::move(message)};
}

Check require_id(std::uint64_t id, std::string_view field) {
  if (id == 0) return reject(RejectReason::invalid_value, std::string(field), "must be > 0, got 0");
  return std::nullopt;
}

// The byte offset of the first thing that is not UTF-8 text (a malformed, overlong or surrogate
// sequence, or a control character U+0000..U+001F), or npos. Such text cannot be printed as JSON
// (to_json fails on broken UTF-8) or does not parse back (controls are printed raw).
std::size_t find_bad_text(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    const auto b = static_cast<unsigned char>(s[i]);
    if (b < 0x20) return i;
    if (b < 0x80) { ++i; continue; }
    std::size_t n;
    std::uint32_t cp;
    if (b >= 0xC2 && b <= 0xDF) { n = 2; cp = b & 0x1F; }
    else if (b >= 0xE0 && b <= 0xEF) { n = 3; cp = b & 0x0F; }
    else if (b >= 0xF0 && b <= 0xF4) { n = 4; cp = b & 0x07; }
    else return i;
    if (i + n > s.size()) return i;
    for (std::size_t k = 1; k < n; ++k) {
      const auto c = static_cast<unsigned char>(s[i + k]);
      if ((c & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (c & 0x3F);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += n;
  }
  return std::string_view::npos;
}

Check check_text(const flatbuffers::String* s, std::string_view field) {
  if (s->size() > kNameBytesMax) {
    return reject(RejectReason::invalid_value, std::string(field),
                  fmt::format("must be at most {} bytes, got {}", kNameBytesMax, s->size()));
  }
  if (const std::size_t at = find_bad_text(s->string_view()); at != std::string_view::npos) {
    return reject(RejectReason::invalid_value, std::string(field),
                  fmt::format("must be UTF-8 text without control characters, byte {} is 0x{:02x}", at,
                              static_cast<unsigned char>(s->string_view()[at])));
  }
  return std::nullopt;
}

Check require_text(const flatbuffers::String* s, std::string_view field) {
  if (s == nullptr) return reject(RejectReason::missing_field, std::string(field), "is required");
  if (s->size() == 0) return reject(RejectReason::invalid_value, std::string(field), "must not be empty");
  return check_text(s, field);
}

Check require_qty(std::int64_t qty, std::string_view field) {
  if (qty <= 0) {
    return reject(RejectReason::invalid_value, std::string(field), fmt::format("must be > 0, got {}", qty));
  }
  return std::nullopt;
}

// The verifier checks that a vector's length field is aligned, not that its struct elements are:
// a crafted buffer can place 8-byte-aligned StockLine/OrderLine structs at 4 mod 8. The buffer
// itself starts 8-byte aligned (decode's precondition), so the address tells the offset's alignment.
template <class T>
Check require_aligned(const flatbuffers::Vector<const T*>* v, std::string_view field) {
  if (reinterpret_cast<std::uintptr_t>(v->Data()) % alignof(T) != 0) {
    return reject(RejectReason::malformed, std::string(field), "elements are not aligned");
  }
  return std::nullopt;
}

// A vector of structs that must be present, aligned, and hold 1..max elements.
template <class T>
Check require_structs(const flatbuffers::Vector<const T*>* v, std::string_view field, std::uint32_t max,
                      std::string_view noun) {
  if (v == nullptr) return reject(RejectReason::missing_field, std::string(field), "is required");
  if (auto r = require_aligned(v, field)) return r;
  if (v->size() == 0 || v->size() > max) {
    return reject(RejectReason::invalid_value, std::string(field),
                  fmt::format("must have 1..{} {}, got {}", max, noun, v->size()));
  }
  return std::nullopt;
}

template <class Line>
Check require_lines(const flatbuffers::Vector<const Line*>* lines) {
  if (auto r = require_structs(lines, "payload.lines", kLinesMax, "lines")) return r;
  for (flatbuffers::uoffset_t i = 0; i < lines->size(); ++i) {
    const Line* line = lines->Get(i);
    // The field path is formatted only for a bad line: valid events allocate nothing here.
    if (line->sku() == 0) return require_id(line->sku(), fmt::format("payload.lines[{}].sku", i));
    if (line->qty() <= 0) return require_qty(line->qty(), fmt::format("payload.lines[{}].qty", i));
  }
  return std::nullopt;
}

Check validate(const fb::LocationDefined& e) {
  if (auto r = require_id(e.location(), "payload.location")) return r;
  if (e.kind() == fb::LocationKind::Unknown || e.kind() > fb::LocationKind::MAX) {
    return reject(RejectReason::invalid_value, "payload.kind",
                  fmt::format("must be Warehouse, SubWarehouse or Store, got {}", static_cast<int>(e.kind())));
  }
  if (auto r = require_text(e.name(), "payload.name")) return r;
  if (auto r = require_text(e.city(), "payload.city")) return r;
  return require_text(e.region(), "payload.region");
}

Check validate(const fb::ProductionCompleted& e) {
  if (auto r = require_id(e.batch(), "payload.batch")) return r;
  if (auto r = require_id(e.location(), "payload.location")) return r;
  return require_lines(e.lines());
}

Check validate(const fb::OrderPlaced& e) {
  if (auto r = require_id(e.order(), "payload.order")) return r;
  if (auto r = require_id(e.store(), "payload.store")) return r;
  if (auto r = require_id(e.placed_by(), "payload.placed_by")) return r;
  if (auto r = require_lines(e.lines())) return r;
  for (flatbuffers::uoffset_t i = 0; i < e.lines()->size(); ++i) {
    for (flatbuffers::uoffset_t j = 0; j < i; ++j) {
      if (e.lines()->Get(j)->sku() == e.lines()->Get(i)->sku()) {
        return reject(RejectReason::invalid_value, fmt::format("payload.lines[{}].sku", i),
                      fmt::format("sku {} is already ordered in lines[{}]", e.lines()->Get(i)->sku(), j));
      }
    }
    if (e.lines()->Get(i)->unit_price_fen() < 0) {
      return reject(RejectReason::invalid_value, fmt::format("payload.lines[{}].unit_price_fen", i),
                    fmt::format("must be >= 0, got {}", e.lines()->Get(i)->unit_price_fen()));
    }
  }
  return std::nullopt;
}

Check validate(const fb::ShipmentDispatched& e) {
  if (auto r = require_id(e.shipment(), "payload.shipment")) return r;
  if (auto r = require_id(e.from_location(), "payload.from_location")) return r;
  if (auto r = require_id(e.to_location(), "payload.to_location")) return r;
  if (e.from_location() == e.to_location()) {
    return reject(RejectReason::invalid_value, "payload.to_location",
                  fmt::format("must differ from from_location, both are {}", e.to_location()));
  }
  if (e.to_region() != nullptr) {
    if (auto r = check_text(e.to_region(), "payload.to_region")) return r;
  }
  return require_lines(e.lines());
}

Check validate(const fb::ShipmentTransferred& e) {
  if (auto r = require_id(e.shipment(), "payload.shipment")) return r;
  if (auto r = require_id(e.from_location(), "payload.from_location")) return r;
  if (auto r = require_text(e.from_region(), "payload.from_region")) return r;
  if (auto r = require_id(e.to_location(), "payload.to_location")) return r;
  if (e.from_location() == e.to_location()) {
    return reject(RejectReason::invalid_value, "payload.to_location",
                  fmt::format("must differ from from_location, both are {}", e.to_location()));
  }
  if (e.dispatch_event() == nullptr) return reject(RejectReason::missing_field, "payload.dispatch_event", "is required");
  return require_lines(e.lines());
}

Check validate(const fb::ShipmentReceived& e) {
  if (auto r = require_id(e.shipment(), "payload.shipment")) return r;
  if (auto r = require_id(e.location(), "payload.location")) return r;
  return require_lines(e.lines());
}

Check validate(const fb::ScanOut& e) {
  if (auto r = require_id(e.store(), "payload.store")) return r;
  if (auto r = require_id(e.sku(), "payload.sku")) return r;
  if (auto r = require_qty(e.qty(), "payload.qty")) return r;
  if (e.item_code() != nullptr) return check_text(e.item_code(), "payload.item_code");
  return std::nullopt;
}

Check require_count(std::int64_t v, std::int64_t lo, std::int64_t hi, std::string_view field) {
  if (v < lo || v > hi) {
    return reject(RejectReason::invalid_value, std::string(field), fmt::format("must be {}..{}, got {}", lo, hi, v));
  }
  return std::nullopt;
}

Check optional_text(const flatbuffers::String* s, std::string_view field) {
  if (s == nullptr) return std::nullopt;
  return check_text(s, field);
}

// "YYYY-MM" (a month) or "YYYY-Qn" (a quarter), years 2000..2099.
Check require_period(const flatbuffers::String* s) {
  if (auto r = require_text(s, "payload.period")) return r;
  const std::string_view p = s->string_view();
  auto digits = [&](std::size_t from, std::size_t n) {
    for (std::size_t i = from; i < from + n; ++i) if (p[i] < '0' || p[i] > '9') return false;
    return true;
  };
  bool ok = p.size() == 7 && digits(0, 4) && p[4] == '-' && p.substr(0, 2) == "20";
  if (ok && p[5] == 'Q') {
    ok = p[6] >= '1' && p[6] <= '4';
  } else if (ok) {
    ok = digits(5, 2) && ((p[5] == '0' && p[6] >= '1') || (p[5] == '1' && p[6] <= '2'));
  }
  if (!ok) {
    return reject(RejectReason::invalid_value, "payload.period",
                  fmt::format("must be a month \"YYYY-MM\" or a quarter \"YYYY-Qn\", got \"{}\"", p));
  }
  return std::nullopt;
}

Check validate(const fb::SkuDefined& e) {
  if (auto r = require_id(e.sku(), "payload.sku")) return r;
  if (auto r = require_text(e.code(), "payload.code")) return r;
  if (auto r = require_text(e.name(), "payload.name")) return r;
  if (auto r = require_text(e.category(), "payload.category")) return r;
  if (auto r = require_text(e.unit(), "payload.unit")) return r;
  if (e.list_price_fen() < 0) {
    return reject(RejectReason::invalid_value, "payload.list_price_fen", fmt::format("must be >= 0, got {}", e.list_price_fen()));
  }
  if (auto r = require_count(e.production_lead_time_days(), 0, 365, "payload.production_lead_time_days")) return r;
  // 0 is "no threshold of its own" (the field's default); anything else is a real number of days.
  if (e.reorder_cover_days() != 0 && (e.reorder_cover_days() < 1 || e.reorder_cover_days() > kSkuReorderCoverDaysMax)) {
    return reject(RejectReason::invalid_value, "payload.reorder_cover_days",
                  fmt::format("must be 1..{} (or 0: none), got {}", kSkuReorderCoverDaysMax, e.reorder_cover_days()));
  }
  return std::nullopt;
}

Check validate(const fb::PartyRegistered& e) {
  if (auto r = require_id(e.party(), "payload.party")) return r;
  if (e.kind() == fb::PartyKind::Unknown || e.kind() > fb::PartyKind::MAX) {
    return reject(RejectReason::invalid_value, "payload.kind",
                  fmt::format("must be Agent, Distributor or Store, got {}", static_cast<int>(e.kind())));
  }
  if (e.parent() == e.party()) {
    return reject(RejectReason::invalid_value, "payload.parent", fmt::format("must differ from party, both are {}", e.party()));
  }
  if (auto r = require_text(e.name(), "payload.name")) return r;
  if (auto r = require_text(e.region(), "payload.region")) return r;
  if (auto r = optional_text(e.industry(), "payload.industry")) return r;
  if (e.kind() == fb::PartyKind::Store) return require_id(e.location(), "payload.location");
  if (e.location() != 0) {
    return reject(RejectReason::invalid_value, "payload.location",
                  fmt::format("only Store parties have a location, got {} for a {}", e.location(),
                              fb::EnumNamePartyKind(e.kind())));
  }
  return std::nullopt;
}

Check validate(const fb::StoreAssigned& e) {
  if (auto r = require_id(e.store(), "payload.store")) return r;
  return require_id(e.distributor(), "payload.distributor");
}

Check validate(const fb::OrderPaid& e) {
  if (auto r = require_id(e.order(), "payload.order")) return r;
  if (auto r = require_id(e.payer(), "payload.payer")) return r;
  return require_qty(e.amount_fen(), "payload.amount_fen");
}

Check validate(const fb::OrderCancelled& e) {
  if (auto r = require_id(e.order(), "payload.order")) return r;
  return require_text(e.reason(), "payload.reason");
}

Check validate(const fb::StockCounted& e) {
  if (auto r = require_id(e.location(), "payload.location")) return r;
  const auto* lines = e.lines();
  if (auto r = require_structs(lines, "payload.lines", kLinesMax, "lines")) return r;
  for (flatbuffers::uoffset_t i = 0; i < lines->size(); ++i) {
    const fb::StockLine* l = lines->Get(i);
    if (auto r = require_id(l->sku(), fmt::format("payload.lines[{}].sku", i))) return r;
    if (l->qty() < 0) {
      return reject(RejectReason::invalid_value, fmt::format("payload.lines[{}].qty", i),
                    fmt::format("a counted quantity must be >= 0, got {}", l->qty()));
    }
    for (flatbuffers::uoffset_t j = 0; j < i; ++j) {
      if (lines->Get(j)->sku() == l->sku()) {
        return reject(RejectReason::invalid_value, fmt::format("payload.lines[{}].sku", i),
                      fmt::format("sku {} is already counted in lines[{}]", l->sku(), j));
      }
    }
  }
  return std::nullopt;
}

Check validate(const fb::TargetSet& e) {
  if (auto r = require_id(e.party(), "payload.party")) return r;
  if (auto r = require_period(e.period())) return r;
  return require_qty(e.amount_fen(), "payload.amount_fen");
}

Check validate(const fb::RebatePolicySet& e) {
  if (auto r = require_id(e.party(), "payload.party")) return r;
  if (auto r = require_period(e.period())) return r;
  const auto* tiers = e.tiers();
  if (auto r = require_structs(tiers, "payload.tiers", kRebateTiersMax, "tiers")) return r;
  for (flatbuffers::uoffset_t i = 0; i < tiers->size(); ++i) {
    const fb::RebateTier* t = tiers->Get(i);
    if (t->attainment_bp() < 0) {
      return reject(RejectReason::invalid_value, fmt::format("payload.tiers[{}].attainment_bp", i),
                    fmt::format("must be >= 0, got {}", t->attainment_bp()));
    }
    if (i > 0 && t->attainment_bp() <= tiers->Get(i - 1)->attainment_bp()) {
      return reject(RejectReason::invalid_value, fmt::format("payload.tiers[{}].attainment_bp", i),
                    fmt::format("must be greater than tiers[{}]'s {}, got {}", i - 1,
                                tiers->Get(i - 1)->attainment_bp(), t->attainment_bp()));
    }
    if (auto r = require_count(t->rebate_bp(), 0, 10'000, fmt::format("payload.tiers[{}].rebate_bp", i))) return r;
  }
  return std::nullopt;
}

Check validate(const fb::RebateAdjusted& e) {
  if (auto r = require_id(e.party(), "payload.party")) return r;
  if (auto r = require_period(e.period())) return r;
  if (e.amount_fen() == 0) return reject(RejectReason::invalid_value, "payload.amount_fen", "must not be 0");
  return require_text(e.reason(), "payload.reason");
}

Check validate(const fb::RebateSettled& e) {
  if (auto r = require_id(e.party(), "payload.party")) return r;
  if (auto r = require_period(e.period())) return r;
  if (auto r = require_qty(e.amount_fen(), "payload.amount_fen")) return r;
  return require_text(e.payment_reference(), "payload.payment_reference");
}

Check validate(const fb::FeedbackRecorded& e) {
  if (auto r = require_id(e.store(), "payload.store")) return r;
  if (auto r = require_id(e.distributor(), "payload.distributor")) return r;
  if (auto r = require_count(e.rating(), 1, 5, "payload.rating")) return r;
  return optional_text(e.comment(), "payload.comment");
}

Check validate(const fb::TrainingCompleted& e) {
  if (auto r = require_id(e.party(), "payload.party")) return r;
  if (auto r = require_text(e.course(), "payload.course")) return r;
  return require_count(e.score(), 0, 100, "payload.score");
}

Check validate(const fb::DispatchRequested& e) {
  if (auto r = require_id(e.order(), "payload.order")) return r;
  if (auto r = require_id(e.store(), "payload.store")) return r;
  return require_lines(e.lines());
}

Check validate_payload(const fb::Envelope& env) {
  switch (env.payload_type()) {
    case fb::Payload::LocationDefined: return validate(*env.payload_as_LocationDefined());
    case fb::Payload::ProductionCompleted: return validate(*env.payload_as_ProductionCompleted());
    case fb::Payload::OrderPlaced: return validate(*env.payload_as_OrderPlaced());
    case fb::Payload::ShipmentDispatched: return validate(*env.payload_as_ShipmentDispatched());
    case fb::Payload::ShipmentReceived: return validate(*env.payload_as_ShipmentReceived());
    case fb::Payload::ScanOut: return validate(*env.payload_as_ScanOut());
    case fb::Payload::SkuDefined: return validate(*env.payload_as_SkuDefined());
    case fb::Payload::PartyRegistered: return validate(*env.payload_as_PartyRegistered());
    case fb::Payload::StoreAssigned: return validate(*env.payload_as_StoreAssigned());
    case fb::Payload::OrderPaid: return validate(*env.payload_as_OrderPaid());
    case fb::Payload::OrderCancelled: return validate(*env.payload_as_OrderCancelled());
    case fb::Payload::StockCounted: return validate(*env.payload_as_StockCounted());
    case fb::Payload::TargetSet: return validate(*env.payload_as_TargetSet());
    case fb::Payload::RebatePolicySet: return validate(*env.payload_as_RebatePolicySet());
    case fb::Payload::RebateAdjusted: return validate(*env.payload_as_RebateAdjusted());
    case fb::Payload::FeedbackRecorded: return validate(*env.payload_as_FeedbackRecorded());
    case fb::Payload::TrainingCompleted: return validate(*env.payload_as_TrainingCompleted());
    case fb::Payload::DispatchRequested: return validate(*env.payload_as_DispatchRequested());
    case fb::Payload::RebateSettled: return validate(*env.payload_as_RebateSettled());
    case fb::Payload::ShipmentTransferred: return validate(*env.payload_as_ShipmentTransferred());
    case fb::Payload::NONE: break;
  }
  return reject(RejectReason::missing_field, "payload", "is required");
}

}  // namespace

const char* reason_name(RejectReason reason) {
  switch (reason) {
    case RejectReason::malformed: return "malformed";
    case RejectReason::unsupported_schema_version: return "unsupported_schema_version";
    case RejectReason::missing_field: return "missing_field";
    case RejectReason::invalid_value: return "invalid_value";
    case RejectReason::unknown_location: return "unknown_location";
    case RejectReason::wrong_location_kind: return "wrong_location_kind";
    case RejectReason::insufficient_stock: return "insufficient_stock";
    case RejectReason::conflicting_duplicate: return "conflicting_duplicate";
    case RejectReason::unknown_order: return "unknown_order";
    case RejectReason::unknown_shipment: return "unknown_shipment";
    case RejectReason::illegal_transition: return "illegal_transition";
    case RejectReason::exceeds_order: return "exceeds_order";
    case RejectReason::already_exists: return "already_exists";
    case RejectReason::exceeds_outstanding: return "exceeds_outstanding";
  }
  return "unknown_reason";
}

std::string Rejection::to_string() const {
  if (field.empty()) return fmt::format("{} ({})", message, reason_name(reason));
  return fmt::format("{}: {} ({})", field, message, reason_name(reason));
}

Decoded decode(std::span<const std::uint8_t> bytes) {
  assert(reinterpret_cast<std::uintptr_t>(bytes.data()) % kEventAlignment == 0 && "decode needs aligned bytes");
  if (bytes.size() > kEventBytesMax) {
    return reject(RejectReason::malformed, "",
                  fmt::format("event is {} bytes, the limit is {}", bytes.size(), kEventBytesMax));
  }
  if (bytes.size() < flatbuffers::kFileIdentifierLength + sizeof(flatbuffers::uoffset_t) ||
      !flatbuffers::BufferHasIdentifier(bytes.data(), fb::EnvelopeIdentifier())) {
    return reject(RejectReason::malformed, "", "not a qudao event: missing file identifier \"QDAO\"");
  }
  flatbuffers::Verifier verifier(bytes.data(), bytes.size(), kVerifierDepthMax, kVerifierTablesMax);
  if (!fb::VerifyEnvelopeBuffer(verifier)) {
    return reject(RejectReason::malformed, "", "FlatBuffers verification failed (truncated or corrupt bytes)");
  }
  const fb::Envelope* env = fb::GetEnvelope(bytes.data());

  if (env->schema_version() == 0 || env->schema_version() > kSchemaVersion) {
    return reject(RejectReason::unsupported_schema_version, "schema_version",
                  fmt::format("this build understands versions 1..{}, got {}", kSchemaVersion,
                              env->schema_version()));
  }
  const fb::EventId* id = env->event_id();
  if (id->hi() == 0 && id->lo() == 0) return reject(RejectReason::invalid_value, "event_id", "must not be all zero");
  if (env->occurred_at_ms() < kTimeMsMin || env->occurred_at_ms() >= kTimeMsMax) {
    return reject(RejectReason::invalid_value, "occurred_at_ms",
                  fmt::format("must be ms since the epoch between 2000 and 2100, got {}", env->occurred_at_ms()));
  }
  if (auto r = require_text(env->source(), "source")) return *r;
  if (env->payload_type() > fb::Payload::MAX) {
    return reject(RejectReason::unsupported_schema_version, "payload",
                  fmt::format("unknown event type {}", static_cast<int>(env->payload_type())));
  }
  if (auto r = validate_payload(*env)) return *r;
  return Event{EventId{id->hi(), id->lo()}, TimeMs{env->occurred_at_ms()}, env};
}

}  // namespace qudao
