// Helpers for tests: build contract events with EventWriter and keep their bytes alive.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <variant>
#include <vector>

#include "events/encode.h"

namespace qudao::test {

inline constexpr std::int64_t kT0 = 1'767'225'600'000;  // 2026-01-01T00:00:00Z

using Bytes = std::vector<std::uint8_t>;

inline Bytes copy(std::span<const std::uint8_t> b) { return Bytes(b.begin(), b.end()); }

// Sequential ids and times, so tests read as a story.
class Events {
 public:
  Header next() {
    ++seq_;
    return Header{EventId{7, seq_}, TimeMs{kT0 + static_cast<std::int64_t>(seq_) * 1000}, "test"};
  }
  Bytes location(std::uint64_t id, fb::LocationKind kind, const char* region, const char* city = "Hangzhou") {
    return copy(w_.location_defined(next(), LocationId{id}, kind, "loc", city, region));
  }
  Bytes production(std::uint64_t at, std::vector<Line> lines) {
    return copy(w_.production_completed(next(), 1, LocationId{at}, lines));
  }
  Bytes order(std::uint64_t id, std::uint64_t store, std::vector<PricedLine> lines) {
    return copy(w_.order_placed(next(), OrderId{id}, LocationId{store}, store, LocationId{0}, TimeMs{kT0}, lines));
  }
  Bytes dispatch(std::uint64_t from, std::uint64_t to, std::vector<Line> lines, std::uint64_t order = 0) {
    return copy(w_.shipment_dispatched(next(), ShipmentId{++shipments_}, LocationId{from}, LocationId{to}, OrderId{order}, lines));
  }
  // An order placed by distributor `by` on the store's behalf (代下单), to ship from `from`.
  Bytes proxy_order(std::uint64_t id, std::uint64_t store, std::uint64_t by, std::uint64_t from, TimeMs deadline,
                    std::vector<PricedLine> lines) {
    return copy(w_.order_placed(next(), OrderId{id}, LocationId{store}, by, LocationId{from}, deadline, lines));
  }
  Bytes paid(std::uint64_t order, std::int64_t fen) { return copy(w_.order_paid(next(), OrderId{order}, 500, Fen{fen})); }
  Bytes cancelled(std::uint64_t order) { return copy(w_.order_cancelled(next(), OrderId{order}, "changed mind")); }
  // Events are one second apart from kT0: the time of the n-th event is kT0 + n s.
  TimeMs time_after(std::uint64_t events_from_now) const {
    return TimeMs{kT0 + static_cast<std::int64_t>(seq_ + events_from_now) * 1000};
  }
  Bytes receive(std::uint64_t at, std::vector<Line> lines) {
    return copy(w_.shipment_received(next(), ShipmentId{shipments_}, LocationId{at}, lines));
  }
  Bytes scan_out(std::uint64_t store, std::uint64_t sku, std::int64_t qty) {
    return copy(w_.scan_out(next(), LocationId{store}, SkuId{sku}, Quantity{qty}, ""));
  }
  EventWriter& writer() { return w_; }

 private:
  EventWriter w_;
  std::uint64_t seq_ = 0;
  std::uint64_t shipments_ = 0;
};

inline Event must_decode(const Bytes& b) {
  Decoded d = decode(b);
  if (auto* r = std::get_if<Rejection>(&d)) FAIL("unexpected rejection: " << r->to_string());
  return std::get<Event>(d);
}

inline Rejection must_reject(const Bytes& b) {
  Decoded d = decode(b);
  REQUIRE_MESSAGE(std::holds_alternative<Rejection>(d), "expected a rejection");
  return std::get<Rejection>(d);
}

inline Line line(std::uint64_t sku, std::int64_t qty) { return Line{SkuId{sku}, Quantity{qty}}; }

// A fresh directory under the system temp dir, removed when the object goes.
class TempDir {
 public:
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "qudao-test-XXXXXX").string();
    REQUIRE(mkdtemp(tmpl.data()) != nullptr);
    path_ = tmpl;
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

}  // namespace qudao::test
