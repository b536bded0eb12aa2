// decode = FlatBuffers verify + validate, per event type, from aligned bytes in memory: the first
// thing the engine does with every record (qudao bench's "decode" row runs it over a whole stream).
#include <benchmark/benchmark.h>

#include <variant>
#include <vector>

#include "tools/microbench/fixtures.h"

namespace qudao::microbench {
namespace {

enum class EventKind : std::uint8_t {
  scan_out,
  scan_out_with_code,
  order_placed_3_lines,
  shipment_dispatched_3_lines,
  production_completed_100_lines,  // a warehouse's production batch: how decode scales with lines
};

// The shapes the simulator emits, with its source name and field sizes.
EventArena one_event(EventKind kind) {
  EventWriter w;
  const Header h{EventId{kStreamIdHi, 42}, TimeMs{kT0}, kSource};
  const LocationId store = store_id(7);
  const Line lines[] = {{sku_id(3), Quantity{12}}, {sku_id(41), Quantity{6}}, {sku_id(97), Quantity{24}}};
  const PricedLine priced[] = {{sku_id(3), Quantity{12}, Fen{1'300}},
                               {sku_id(41), Quantity{6}, Fen{5'100}},
                               {sku_id(97), Quantity{24}, Fen{800}}};
  EventArena arena;
  switch (kind) {
    case EventKind::scan_out: arena.add(w.scan_out(h, store, sku_id(3), Quantity{1}, "")); break;
    case EventKind::scan_out_with_code: arena.add(w.scan_out(h, store, sku_id(3), Quantity{1}, "QR000000123456")); break;
    case EventKind::order_placed_3_lines:
      arena.add(w.order_placed(h, OrderId{9}, store, 1'000'001, kWarehouse, TimeMs{kT0 + 3 * 86'400'000}, priced));
      break;
    case EventKind::shipment_dispatched_3_lines:
      arena.add(w.shipment_dispatched(h, ShipmentId{9}, kWarehouse, store, OrderId{9}, lines));
      break;
    case EventKind::production_completed_100_lines: {
      std::vector<Line> batch;
      for (std::size_t i = 0; i < 100; ++i) batch.push_back({sku_id(i), Quantity{500}});
      arena.add(w.production_completed(h, 9, kWarehouse, batch));
      break;
    }
  }
  return arena;
}

void BM_decode(benchmark::State& state, EventKind kind) {
  const EventArena arena = one_event(kind);
  const std::span<const std::uint8_t> bytes = arena[0];
  if (!std::holds_alternative<Event>(decode(bytes))) {
    state.SkipWithError("the benchmark's event does not decode");
    return;
  }
  for (auto _ : state) {
    Decoded d = decode(bytes);
    benchmark::DoNotOptimize(d);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * bytes.size()));
  state.counters["event_bytes"] = static_cast<double>(bytes.size());
}

BENCHMARK_CAPTURE(BM_decode, scan_out, EventKind::scan_out);
BENCHMARK_CAPTURE(BM_decode, scan_out_with_code, EventKind::scan_out_with_code);
BENCHMARK_CAPTURE(BM_decode, order_placed_3_lines, EventKind::order_placed_3_lines);
BENCHMARK_CAPTURE(BM_decode, shipment_dispatched_3_lines, EventKind::shipment_dispatched_3_lines);
BENCHMARK_CAPTURE(BM_decode, production_completed_100_lines, EventKind::production_completed_100_lines);

}  // namespace
}  // namespace qudao::microbench
