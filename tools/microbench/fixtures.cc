#include "tools/microbench/fixtures.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <string>
#include <utility>

namespace qudao::microbench {

void EventArena::add(std::span<const std::uint8_t> bytes) {
  const std::size_t at = words_.size();
  words_.resize(at + (bytes.size() + 7) / 8);
  std::memcpy(words_.data() + at, bytes.data(), bytes.size());
  items_.push_back({at, static_cast<std::uint32_t>(bytes.size())});
  total_bytes_ += bytes.size();
}

ShardShape ShardShape::for_stock_keys(std::size_t keys) {
  constexpr std::size_t kSkus = 1'000;
  if (keys < kSkus) return {1, std::max<std::size_t>(keys, 1)};
  return {keys / kSkus, kSkus};
}

const Shard& loaded_shard(std::size_t stock_keys, std::size_t dedup_window_events) {
  static std::map<std::pair<std::size_t, std::size_t>, std::unique_ptr<Shard>> cache;
  auto& slot = cache[{stock_keys, dedup_window_events}];
  if (slot) return *slot;

  const ShardShape shape = ShardShape::for_stock_keys(stock_keys);
  auto shard = std::make_unique<Shard>(PartitionId{0}, dedup_window_events);
  shard->restore_location(kWarehouse, LocationInfo{fb::LocationKind::SubWarehouse, "East hub", "Hangzhou", "East"});
  for (std::size_t k = 0; k < shape.skus; ++k) {
    shard->restore_balance(Account{sku_id(k), kWarehouse, Bucket::on_hand}, Quantity{kWarehouseOnHand});
  }
  for (std::size_t s = 0; s < shape.stores; ++s) {
    shard->restore_location(store_id(s), LocationInfo{fb::LocationKind::Store, fmt::format("store {}", s + 1),
                                                      fmt::format("City {}", s / 50), "East"});
    for (std::size_t k = 0; k < shape.skus; ++k) {
      shard->restore_balance(Account{sku_id(k), store_id(s), Bucket::on_hand}, Quantity{kStoreOnHand});
    }
  }
  std::vector<std::pair<EventId, std::uint64_t>> window;
  window.reserve(dedup_window_events);
  Rng rng(dedup_window_events);
  for (std::uint64_t i = 0; i < dedup_window_events; ++i) window.emplace_back(EventId{kWindowIdHi, i + 1}, rng.next());
  shard->restore_seen_segment(0, window);
  shard->finish_restore();
  slot = std::move(shard);
  return *slot;
}

const std::vector<Posting>& scan_out_postings(std::size_t stock_keys) {
  static std::map<std::size_t, std::vector<Posting>> cache;
  auto& postings = cache[stock_keys];
  if (!postings.empty()) return postings;
  const ShardShape shape = ShardShape::for_stock_keys(stock_keys);
  Rng rng(stock_keys);
  postings.reserve(2 * kScanOutPostingEvents);
  for (std::size_t i = 0; i < kScanOutPostingEvents; ++i) {
    const SkuId sku = sku_id(rng.below(shape.skus));
    const LocationId store = store_id(rng.below(shape.stores));
    const std::int64_t qty = 1 + static_cast<std::int64_t>(rng.below(3));
    postings.push_back({Account{sku, store, Bucket::on_hand}, Quantity{-qty}});
    postings.push_back({Account{sku, kVirtualLocation, Bucket::consumers}, Quantity{qty}});
  }
  return postings;
}

namespace {

class StreamBuilder {
 public:
  StreamBuilder(std::size_t stock_keys, EventArena& out)
      : shape_(ShardShape::for_stock_keys(stock_keys)), rng_(stock_keys + 7), out_(out) {}

  Header header() {
    ++seq_;
    return Header{EventId{kStreamIdHi, seq_}, TimeMs{kT0 + static_cast<std::int64_t>(seq_) * 1'000}, kSource};
  }

  void scan_out() {
    const LocationId store = store_id(rng_.below(shape_.stores));
    const SkuId sku = sku_id(rng_.below(shape_.skus));
    const Quantity qty{1 + static_cast<std::int64_t>(rng_.below(3))};
    // As the simulator: three scan-outs in ten carry the item's code.
    const std::string code = rng_.below(10) < 3 ? fmt::format("QR{:012}", seq_ + 1) : std::string();
    out_.add(writer_.scan_out(header(), store, sku, qty, code));
  }

  // One order's life, its steps spread over 20 events with 16 scan-outs between them.
  void order_life() {
    const std::uint64_t n = ++orders_;
    const OrderId order{n};
    const ShipmentId shipment{n};
    const LocationId store = store_id(rng_.below(shape_.stores));
    // A third are proxy orders (代下单), placed by the distributor: they reserve at the warehouse.
    const std::uint64_t placed_by = n % 3 == 0 ? 1'000'000 + kWarehouse.value : store.value;
    std::vector<PricedLine> priced;
    std::vector<Line> lines;
    std::int64_t due = 0;
    while (priced.size() < std::min<std::size_t>(3, shape_.skus)) {
      const SkuId sku = sku_id(rng_.below(shape_.skus));
      if (std::any_of(priced.begin(), priced.end(), [&](const PricedLine& l) { return l.sku == sku; })) continue;
      const Quantity qty{1 + static_cast<std::int64_t>(rng_.below(10))};
      const Fen price{1'000 + 100 * static_cast<std::int64_t>(sku.value % 50)};
      priced.push_back({sku, qty, price});
      lines.push_back({sku, qty});
      due += qty.value * price.value;
    }
    const Header placed = header();
    const TimeMs deadline{placed.occurred_at.value + 3 * 86'400'000};
    out_.add(writer_.order_placed(placed, order, store, placed_by, kWarehouse, deadline, priced));
    for (int i = 0; i < 5; ++i) scan_out();
    out_.add(writer_.order_paid(header(), order, placed_by, Fen{due}));
    for (int i = 0; i < 5; ++i) scan_out();
    out_.add(writer_.shipment_dispatched(header(), shipment, kWarehouse, store, order, lines));
    for (int i = 0; i < 6; ++i) scan_out();
    out_.add(writer_.shipment_received(header(), shipment, store, lines));
  }

 private:
  ShardShape shape_;
  Rng rng_;
  EventArena& out_;
  EventWriter writer_;
  std::uint64_t seq_ = 0;
  std::uint64_t orders_ = 0;
};

}  // namespace

const EventArena& event_stream(StreamKind kind, std::size_t stock_keys) {
  static std::map<std::pair<StreamKind, std::size_t>, EventArena> cache;
  EventArena& arena = cache[{kind, stock_keys}];
  if (arena.size() > 0) return arena;
  StreamBuilder b(stock_keys, arena);
  while (arena.size() < kStreamEvents) {
    if (kind == StreamKind::scan_outs) {
      b.scan_out();
    } else {
      b.order_life();
    }
  }
  return arena;
}

}  // namespace qudao::microbench
