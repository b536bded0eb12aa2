#include "events/decode.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

TEST_CASE("decode: every event type round-trips through EventWriter") {
  Events ev;
  SUBCASE("LocationDefined") {
    const Bytes b = ev.location(5, fb::LocationKind::Store, "East", "Ningbo");  // the event views these bytes
    const Event e = must_decode(b);
    const auto* p = e.envelope->payload_as_LocationDefined();
    REQUIRE(p != nullptr);
    CHECK(p->location() == 5);
    CHECK(p->kind() == fb::LocationKind::Store);
    CHECK(p->city()->str() == "Ningbo");
    CHECK(p->region()->str() == "East");
    CHECK(e.id == EventId{7, 1});
    CHECK(e.occurred_at == TimeMs{kT0 + 1000});
  }
  SUBCASE("ProductionCompleted") {
    const Bytes b = ev.production(2, {line(1, 10), line(2, 20)});
    const auto* p = must_decode(b).envelope->payload_as_ProductionCompleted();
    REQUIRE(p != nullptr);
    CHECK(p->location() == 2);
    REQUIRE(p->lines()->size() == 2);
    CHECK(p->lines()->Get(1)->sku() == 2);
    CHECK(p->lines()->Get(1)->qty() == 20);
  }
  SUBCASE("OrderPlaced") {
    const Bytes b = ev.order(9, 3, {PricedLine{SkuId{4}, Quantity{6}, Fen{1250}}});
    const auto* p = must_decode(b).envelope->payload_as_OrderPlaced();
    REQUIRE(p != nullptr);
    CHECK(p->order() == 9);
    CHECK(p->store() == 3);
    CHECK(p->lines()->Get(0)->unit_price_fen() == 1250);
  }
  SUBCASE("ShipmentDispatched and ShipmentReceived") {
    const Bytes db = ev.dispatch(2, 3, {line(1, 4)});
    const auto* d = must_decode(db).envelope->payload_as_ShipmentDispatched();
    REQUIRE(d != nullptr);
    CHECK(d->from_location() == 2);
    CHECK(d->to_location() == 3);
    const Bytes rb = ev.receive(3, {line(1, 4)});
    const auto* r = must_decode(rb).envelope->payload_as_ShipmentReceived();
    REQUIRE(r != nullptr);
    CHECK(r->shipment() == d->shipment());
  }
  SUBCASE("RebateSettled with its payment reference") {
    const Bytes b = copy(ev.writer().rebate_settled(ev.next(), 500, "2026-Q1", Fen{150'000}, "FIN-2026-04-000123"));
    const Event e = must_decode(b);
    CHECK(e.type() == fb::Payload::RebateSettled);
    const auto* p = e.envelope->payload_as_RebateSettled();
    REQUIRE(p != nullptr);
    CHECK(p->party() == 500);
    CHECK(p->period()->str() == "2026-Q1");
    CHECK(p->amount_fen() == 150'000);
    CHECK(p->payment_reference()->str() == "FIN-2026-04-000123");
  }
  SUBCASE("ScanOut with an item code") {
    const Bytes b = copy(ev.writer().scan_out(ev.next(), LocationId{3}, SkuId{1}, Quantity{2}, "QR000001"));
    const auto* s = must_decode(b).envelope->payload_as_ScanOut();
    REQUIRE(s != nullptr);
    CHECK(s->item_code()->str() == "QR000001");
  }
}

TEST_CASE("decode: bytes that are not a qudao event are rejected as malformed") {
  CHECK(must_reject(Bytes{}).reason == RejectReason::malformed);
  CHECK(must_reject(Bytes{1, 2, 3, 4, 5, 6, 7, 8, 9}).message.find("file identifier") != std::string::npos);
  Events ev;
  Bytes good = ev.scan_out(3, 1, 2);
  SUBCASE("truncated") {
    good.resize(good.size() / 2);
    const Rejection r = must_reject(good);
    CHECK(r.reason == RejectReason::malformed);
  }
  SUBCASE("an offset pointing outside the buffer") {
    good[0] = 0xff;
    good[1] = 0xff;
    CHECK(must_reject(good).reason == RejectReason::malformed);
  }
  SUBCASE("larger than the limit") {
    good.resize(kEventBytesMax + 1);
    CHECK(must_reject(good).message == fmt::format("event is {} bytes, the limit is {}", kEventBytesMax + 1, kEventBytesMax));
  }
}

TEST_CASE("decode: validation names the field and the problem") {
  Events ev;
  EventWriter& w = ev.writer();
  SUBCASE("a settlement of nothing, a negative one, a bad period, no payment reference or a long one") {
    CHECK(must_reject(copy(w.rebate_settled(ev.next(), 500, "2026-Q1", Fen{0}, "FIN-1"))).to_string() ==
          "payload.amount_fen: must be > 0, got 0 (invalid_value)");
    CHECK(must_reject(copy(w.rebate_settled(ev.next(), 500, "2026-Q1", Fen{-5}, "FIN-1"))).to_string() ==
          "payload.amount_fen: must be > 0, got -5 (invalid_value)");
    CHECK(must_reject(copy(w.rebate_settled(ev.next(), 0, "2026-Q1", Fen{5}, "FIN-1"))).to_string() ==
          "payload.party: must be > 0, got 0 (invalid_value)");
    CHECK(must_reject(copy(w.rebate_settled(ev.next(), 500, "2026-Q9", Fen{5}, "FIN-1"))).field == "payload.period");
    CHECK(must_reject(copy(w.rebate_settled(ev.next(), 500, "2026-Q1", Fen{5}, ""))).to_string() ==
          "payload.payment_reference: must not be empty (invalid_value)");
    CHECK(must_reject(copy(w.rebate_settled(ev.next(), 500, "2026-Q1", Fen{5}, std::string(257, 'r')))).to_string() ==
          "payload.payment_reference: must be at most 256 bytes, got 257 (invalid_value)");
  }
  SUBCASE("a negative line quantity") {
    const Rejection r = must_reject(ev.dispatch(2, 3, {line(1, 4), line(2, 1), line(3, -5)}));
    CHECK(r.to_string() == "payload.lines[2].qty: must be > 0, got -5 (invalid_value)");
  }
  SUBCASE("a zero sku") {
    CHECK(must_reject(ev.production(2, {line(0, 4)})).to_string() == "payload.lines[0].sku: must be > 0, got 0 (invalid_value)");
  }
  SUBCASE("no lines") {
    CHECK(must_reject(ev.production(2, {})).to_string() == "payload.lines: must have 1..1000 lines, got 0 (invalid_value)");
  }
  SUBCASE("too many lines") {
    std::vector<Line> many(kLinesMax + 1, line(1, 1));
    CHECK(must_reject(ev.production(2, many)).field == "payload.lines");
  }
  SUBCASE("a shipment to where it came from") {
    CHECK(must_reject(ev.dispatch(2, 2, {line(1, 1)})).to_string() ==
          "payload.to_location: must differ from from_location, both are 2 (invalid_value)");
  }
  SUBCASE("a zero scan-out quantity") {
    CHECK(must_reject(ev.scan_out(3, 1, 0)).to_string() == "payload.qty: must be > 0, got 0 (invalid_value)");
  }
  SUBCASE("a negative unit price") {
    CHECK(must_reject(ev.order(1, 3, {PricedLine{SkuId{1}, Quantity{1}, Fen{-1}}})).to_string() ==
          "payload.lines[0].unit_price_fen: must be >= 0, got -1 (invalid_value)");
  }
  SUBCASE("an unknown location kind") {
    CHECK(must_reject(copy(w.location_defined(ev.next(), LocationId{1}, fb::LocationKind::Unknown, "a", "b", "c")))
              .to_string() == "payload.kind: must be Warehouse, SubWarehouse or Store, got 0 (invalid_value)");
  }
  SUBCASE("a missing region") {
    CHECK(must_reject(copy(w.location_defined(ev.next(), LocationId{1}, fb::LocationKind::Store, "a", "b", "")))
              .to_string() == "payload.region: must not be empty (invalid_value)");
  }
  SUBCASE("an all-zero event id") {
    Header h = ev.next();
    h.id = EventId{};
    CHECK(must_reject(copy(w.scan_out(h, LocationId{3}, SkuId{1}, Quantity{1}, ""))).to_string() ==
          "event_id: must not be all zero (invalid_value)");
  }
  SUBCASE("event time in seconds instead of milliseconds") {
    Header h = ev.next();
    h.occurred_at = TimeMs{kT0 / 1000};
    CHECK(must_reject(copy(w.scan_out(h, LocationId{3}, SkuId{1}, Quantity{1}, ""))).field == "occurred_at_ms");
  }
  SUBCASE("a missing source") {
    Header h = ev.next();
    h.source = "";
    CHECK(must_reject(copy(w.scan_out(h, LocationId{3}, SkuId{1}, Quantity{1}, ""))).to_string() ==
          "source: must not be empty (invalid_value)");
  }
}

TEST_CASE("decode: schema versions newer than this build are recognised as such") {
  Events ev;
  Header h = ev.next();
  h.schema_version = kSchemaVersion + 1;
  const Rejection r = must_reject(copy(ev.writer().scan_out(h, LocationId{3}, SkuId{1}, Quantity{1}, "")));
  CHECK(r.reason == RejectReason::unsupported_schema_version);
  CHECK(r.to_string() == fmt::format("schema_version: this build understands versions 1..{}, got {} (unsupported_schema_version)",
                                     kSchemaVersion, kSchemaVersion + 1));
}

}  // namespace qudao
