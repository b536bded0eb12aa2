// StockProjection::project: the read model's share of every applied event.
#include <benchmark/benchmark.h>

#include <map>
#include <memory>

#include "projections/stock.h"
#include "tools/microbench/fixtures.h"

namespace qudao::microbench {
namespace {

// A projection holding every stock key of loaded_shard(stock_keys), built as the pipeline rebuilds
// it on start (locations defined, then each balance projected); kept for the whole run.
StockProjection& loaded_projection(std::size_t stock_keys) {
  static std::map<std::size_t, std::unique_ptr<StockProjection>> cache;
  auto& slot = cache[stock_keys];
  if (slot) return *slot;
  slot = std::make_unique<StockProjection>();
  const Shard& shard = loaded_shard(stock_keys, 0);
  StockProjection::Writer w(*slot);
  shard.for_each_location([&](LocationId id, const LocationInfo& info) { w.define_location(id, info); });
  std::vector<Posting> postings;
  shard.for_each_balance([&](const Account& a, Quantity q) { postings.push_back({a, q}); });
  w.project(postings);
  return *slot;
}

// One scan-out's postings (the store's on_hand, projected; the virtual consumers account, skipped)
// into a projection of range(0) (location, sku) rows, at a random row. The writer lock is taken
// once, as the pipeline takes it once per poll batch.
void BM_stock_project(benchmark::State& state) {
  const auto stock_keys = static_cast<std::size_t>(state.range(0));
  StockProjection& projection = loaded_projection(stock_keys);
  const std::vector<Posting>& postings = scan_out_postings(stock_keys);
  const std::span<const Posting> all(postings);
  StockProjection::Writer w(projection);
  std::size_t i = 0;
  for (auto _ : state) {
    w.project(all.subspan(i, 2));
    i += 2;
    if (i == all.size()) i = 0;
  }
  benchmark::ClobberMemory();
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(BM_stock_project)->ArgName("stock_keys")->Arg(10'000)->Arg(1'000'000);

}  // namespace
}  // namespace qudao::microbench
