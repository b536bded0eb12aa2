#include "projections/stock.h"

#include <cassert>

namespace qudao {

std::shared_lock<std::shared_mutex> StockProjection::read_lock() const {
  readers_waiting_.fetch_add(1, std::memory_order_relaxed);
  std::shared_lock lock(mutex_);
  readers_waiting_.fetch_sub(1, std::memory_order_relaxed);
  return lock;
}

void StockProjection::define_location(LocationId id, const LocationInfo& info) {
  auto [it, inserted] = locations_.try_emplace(id);
  // The ledger refuses to move a location between regions, so totals never need moving here.
  assert((inserted || it->second.info.region == info.region) && "a location keeps its region");
  it->second.info = info;
  RegionTotals& r = regions_[info.region];
  r.region = info.region;
  it->second.region = &r;
  if (inserted) ++r.locations;
}

void StockProjection::project(std::span<const Posting> postings) {
  for (const Posting& p : postings) {
    if (p.account.location == kVirtualLocation) continue;
    if (p.account.bucket != Bucket::on_hand && p.account.bucket != Bucket::reserved &&
        p.account.bucket != Bucket::in_transit) {
      continue;
    }
    auto it = locations_.find(p.account.location);
    assert(it != locations_.end() && "the ledger only posts to defined locations");
    StockLevels& at = it->second.skus[p.account.sku];
    StockLevels& region = it->second.region->levels;
    if (p.account.bucket == Bucket::on_hand) {
      at.on_hand.value += p.delta.value;
      region.on_hand.value += p.delta.value;
    } else if (p.account.bucket == Bucket::reserved) {  // held stock is still on hand
      at.on_hand.value += p.delta.value;
      region.on_hand.value += p.delta.value;
      at.reserved.value += p.delta.value;
      region.reserved.value += p.delta.value;
    } else {
      at.in_transit.value += p.delta.value;
      region.in_transit.value += p.delta.value;
    }
  }
}

std::optional<LocationStock> StockProjection::location_stock(LocationId location, std::optional<SkuId> sku,
                                                             const RegionScope& scope) const {
  const auto lock = read_lock();
  auto it = locations_.find(location);
  if (it == locations_.end() || !scope.contains(it->second.info.region)) return std::nullopt;
  const Entry& e = it->second;
  LocationStock out{location, e.info, {}};
  if (sku) {
    auto s = e.skus.find(*sku);
    if (s != e.skus.end()) out.rows.push_back({location, *sku, s->second});
    return out;
  }
  out.rows.reserve(e.skus.size());
  for (const auto& [id, levels] : e.skus) out.rows.push_back({location, id, levels});
  return out;
}

std::vector<RegionTotals> StockProjection::region_totals(const RegionScope& scope) const {
  const auto lock = read_lock();
  std::vector<RegionTotals> out;
  if (scope.is_all()) {
    out.reserve(regions_.size());
    for (const auto& [name, totals] : regions_) out.push_back(totals);
    return out;
  }
  // Look up only the scope's regions (sorted, so the output stays ordered by name).
  for (const std::string& name : scope.regions()) {
    auto it = regions_.find(name);
    if (it != regions_.end()) out.push_back(it->second);
  }
  return out;
}

}  // namespace qudao
