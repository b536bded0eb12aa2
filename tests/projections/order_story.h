// Orders through every state, on the locations of tests/connectors/api_fixture.h (1: East
// sub-warehouse with sku 1 and 2 in stock, 2: East store, 3: West sub-warehouse, 4: West store;
// distributor 101 is East's): the story the order projection and the order endpoint tests check.
// Ids are 8:n and times start a day after kT0, one minute apart, so they never meet tests::Events'
// ids or times.
//
//   31  store 2's own order, fulfilment 1: sku1 10 × 500 + sku2 5 × 1000 = 10,000 fen due; paid in
//       two parts (4,000, 6,000); shipment 601 carries sku1 4 (dispatched in part) and is received;
//       shipment 602 carries the rest (sku1 6, sku2 5) and is received short (sku2 4): received
//   32  store 2's own order, sku2 2 × 1000; cancelled
//   33  a proxy order (代下单) for store 2 placed by distributor 101 at warehouse 1: sku1 5 × 500,
//       reserved 5; its payment deadline passes with the next event's time: expired, nothing held
//   34  West store 4's own order, fulfilment 3: sku1 1 × 500; placed
//   35  a proxy order for store 2 by 101 at warehouse 1: sku2 3 × 1000, reserved 3; deadline a day
//       later: still placed
#pragma once

#include "engine/history.h"
#include "tests/support.h"

namespace qudao::test {

inline constexpr std::uint64_t kStoryDistributor = 101;

struct OrderStory {
  std::vector<Bytes> events;
  TimeMs proxy_deadline;   // order 33's: between its own event and the next
  std::size_t expired_at;  // the index of the event whose time expires order 33
};

inline OrderStory order_story() {
  EventWriter w;
  std::uint64_t seq = 0;
  OrderStory story;
  auto at = [&] {
    ++seq;
    return Header{EventId{8, seq}, TimeMs{kT0 + kDayLengthMs + static_cast<std::int64_t>(seq) * 60'000}, "test"};
  };
  auto add = [&](std::span<const std::uint8_t> b) { story.events.push_back(copy(b)); };
  const TimeMs next_day{kT0 + 2 * kDayLengthMs};
  const LocationId wh{1}, store{2}, west_wh{3}, west_store{4};
  add(w.order_placed(at(), OrderId{31}, store, store.value, wh, next_day,
                     std::vector{PricedLine{SkuId{1}, Quantity{10}, Fen{500}}, PricedLine{SkuId{2}, Quantity{5}, Fen{1'000}}}));
  add(w.order_paid(at(), OrderId{31}, store.value, Fen{4'000}));
  add(w.order_paid(at(), OrderId{31}, store.value, Fen{6'000}));
  add(w.shipment_dispatched(at(), ShipmentId{601}, wh, store, OrderId{31}, std::vector{line(1, 4)}));
  add(w.shipment_received(at(), ShipmentId{601}, store, std::vector{line(1, 4)}));
  add(w.shipment_dispatched(at(), ShipmentId{602}, wh, store, OrderId{31}, std::vector{line(1, 6), line(2, 5)}));
  add(w.shipment_received(at(), ShipmentId{602}, store, std::vector{line(1, 6), line(2, 4)}));
  add(w.order_placed(at(), OrderId{32}, store, store.value, wh, next_day, std::vector{PricedLine{SkuId{2}, Quantity{2}, Fen{1'000}}}));
  add(w.order_cancelled(at(), OrderId{32}, "changed mind"));
  const Header proxy = at();
  story.proxy_deadline = TimeMs{proxy.occurred_at.value + 30'000};
  add(w.order_placed(proxy, OrderId{33}, store, kStoryDistributor, wh, story.proxy_deadline,
                     std::vector{PricedLine{SkuId{1}, Quantity{5}, Fen{500}}}));
  story.expired_at = story.events.size();
  add(w.order_placed(at(), OrderId{34}, west_store, west_store.value, west_wh, next_day,
                     std::vector{PricedLine{SkuId{1}, Quantity{1}, Fen{500}}}));
  add(w.order_placed(at(), OrderId{35}, store, kStoryDistributor, wh, TimeMs{next_day.value + kDayLengthMs},
                     std::vector{PricedLine{SkuId{2}, Quantity{3}, Fen{1'000}}}));
  return story;
}

}  // namespace qudao::test
