// A few days of stock at four locations on one partition, with known closings, sales and anomalies:
// the story the stock-history tests (projection, store, HTTP) check against. Times are chosen per
// event (day d is 2026-01-01 + d); ids are 9:n, so they never meet tests::Events' ids.
//
//   10 East SubWarehouse Hangzhou   11 East Store Hangzhou   12 East Store Ningbo   13 West Store Xian
//
//   day 0  production 10: sku1 100, sku2 50; ship 10->11 sku1 40, sku2 10, received sku1 40, sku2 8
//          (receipt shortage: sku2 2); ship 10->12 sku1 20, received
//   day 1  13 scans out sku1 1 (beyond stock: 1); 11 scans out sku1 5
//   day 2  11 scans out sku1 3; 12 scans out sku1 4; ship 10->12 sku2 5 (in transit)
//   day 3  11 scans out sku2 20 (beyond stock: 12); a late scan-out from day 1 at 11: sku1 2
//
// Closings: (11, sku1) 40, 35, 32, 30 on days 0..3; (11, sku2) 8 on day 0, -12 on day 3; (12, sku1)
// 20 on day 0, 16 on day 2; (10, sku1) 40 on day 0; (10, sku2) 40 on day 0, 35 on day 2; (12, sku2)
// 5 in transit on day 2; (13, sku1) -1 on day 1. Sold: (11, sku1) 7 on day 1 (5 + the late 2), 3 on
// day 2; (11, sku2) 20 on day 3; (12, sku1) 4 on day 2; (13, sku1) 1 on day 1.
#pragma once

#include "engine/history.h"
#include "tests/support.h"

namespace qudao::test {

inline constexpr std::uint64_t kStoryWarehouse = 10, kStoryStore = 11, kStoryNingboStore = 12, kStoryWestStore = 13;

inline Day story_day(int d) { return day_of(TimeMs{kT0 + d * kDayLengthMs}); }

inline std::vector<Bytes> history_story() {
  EventWriter w;
  std::uint64_t seq = 0;
  std::vector<Bytes> out;
  auto at = [&](int day, int hour) {
    return Header{EventId{9, ++seq}, TimeMs{kT0 + day * kDayLengthMs + hour * 3'600'000LL}, "test"};
  };
  auto add = [&](std::span<const std::uint8_t> b) { out.push_back(copy(b)); };
  const std::vector<Line> none;
  add(w.location_defined(at(0, 1), LocationId{kStoryWarehouse}, fb::LocationKind::SubWarehouse, "wh", "Hangzhou", "East"));
  add(w.location_defined(at(0, 1), LocationId{kStoryStore}, fb::LocationKind::Store, "s11", "Hangzhou", "East"));
  add(w.location_defined(at(0, 1), LocationId{kStoryNingboStore}, fb::LocationKind::Store, "s12", "Ningbo", "East"));
  add(w.location_defined(at(0, 1), LocationId{kStoryWestStore}, fb::LocationKind::Store, "s13", "Xian", "West"));
  add(w.production_completed(at(0, 2), 1, LocationId{kStoryWarehouse}, std::vector{line(1, 100), line(2, 50)}));
  add(w.shipment_dispatched(at(0, 3), ShipmentId{501}, LocationId{kStoryWarehouse}, LocationId{kStoryStore}, OrderId{0},
                            std::vector{line(1, 40), line(2, 10)}));
  add(w.shipment_received(at(0, 4), ShipmentId{501}, LocationId{kStoryStore}, std::vector{line(1, 40), line(2, 8)}));
  add(w.shipment_dispatched(at(0, 5), ShipmentId{502}, LocationId{kStoryWarehouse}, LocationId{kStoryNingboStore},
                            OrderId{0}, std::vector{line(1, 20)}));
  add(w.shipment_received(at(0, 6), ShipmentId{502}, LocationId{kStoryNingboStore}, std::vector{line(1, 20)}));
  add(w.scan_out(at(1, 9), LocationId{kStoryWestStore}, SkuId{1}, Quantity{1}, ""));
  add(w.scan_out(at(1, 10), LocationId{kStoryStore}, SkuId{1}, Quantity{5}, ""));
  add(w.scan_out(at(2, 10), LocationId{kStoryStore}, SkuId{1}, Quantity{3}, ""));
  add(w.scan_out(at(2, 11), LocationId{kStoryNingboStore}, SkuId{1}, Quantity{4}, ""));
  add(w.shipment_dispatched(at(2, 12), ShipmentId{503}, LocationId{kStoryWarehouse}, LocationId{kStoryNingboStore},
                            OrderId{0}, std::vector{line(2, 5)}));
  add(w.scan_out(at(3, 9), LocationId{kStoryStore}, SkuId{2}, Quantity{20}, ""));
  add(w.scan_out(at(1, 15), LocationId{kStoryStore}, SkuId{1}, Quantity{2}, ""));  // late: sold on day 1
  return out;
}

}  // namespace qudao::test
