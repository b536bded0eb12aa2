#include "projections/stock.h"

#include <algorithm>
#include <cassert>
#include <cmath>

namespace qudao {

Cover cover(Quantity on_hand, Quantity sold_window, std::int64_t reorder_cover_days) {
  if (sold_window.value <= 0) return {};
  const double per_day = static_cast<double>(sold_window.value) / kCoverWindowDays;
  // One decimal: the figure is a planning aid, and a stable text form keeps answers comparable.
  const double days = std::round(std::max<std::int64_t>(on_hand.value, 0) / per_day * 10.0) / 10.0;
  return Cover{days, days < static_cast<double>(reorder_cover_days)};
}

const char* reorder_source_name(ReorderSource s) {
  switch (s) {
    case ReorderSource::query: return "query";
    case ReorderSource::sku: return "sku";
    case ReorderSource::default_days: return "default";
  }
  return "unknown";
}

std::shared_lock<PiMutex> StockProjection::read_lock() const {
  readers_waiting_.fetch_add(1, std::memory_order_relaxed);
  std::shared_lock lock(mutex_);
  readers_waiting_.fetch_sub(1, std::memory_order_relaxed);
  return lock;
}

void StockProjection::define_location(LocationId id, const LocationInfo& info, PartitionId partition) {
  auto [it, inserted] = locations_.try_emplace(id);
  Entry& e = it->second;
  // The ledger refuses to move a location between regions, so totals never need moving here.
  assert((inserted || e.info.region == info.region) && "a location keeps its region");
  if (!inserted && e.city != nullptr && e.info.city != info.city) {
    // A location may move to another city of its region: its stock moves with it.
    Totals& old = *e.city;
    for (const auto& [sku, levels] : e.skus.items()) {
      old.levels.on_hand.value -= levels.on_hand.value;
      old.levels.reserved.value -= levels.reserved.value;
      old.levels.in_transit.value -= levels.in_transit.value;
    }
    std::erase(old.locations, id);
    e.city = nullptr;
  }
  e.info = info;
  if (partition != kNoPartition) e.partition = partition;
  Totals& r = regions_[info.region];
  r.region = info.region;
  e.region = &r;
  if (inserted) {
    r.locations.insert(std::lower_bound(r.locations.begin(), r.locations.end(), id), id);
    ordered_.insert(id);
  }
  if (e.city == nullptr) {
    Totals& c = cities_[{info.region, info.city}];
    c.region = info.region;
    c.city = info.city;
    c.locations.insert(std::lower_bound(c.locations.begin(), c.locations.end(), id), id);
    for (const auto& [sku, levels] : e.skus.items()) c.levels += levels;
    e.city = &c;
  }
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
    StockLevels delta;
    if (p.account.bucket == Bucket::on_hand) {
      delta.on_hand = p.delta;
    } else if (p.account.bucket == Bucket::reserved) {  // held stock is still on hand
      delta.on_hand = p.delta;
      delta.reserved = p.delta;
    } else {
      delta.in_transit = p.delta;
    }
    it->second.skus.add(p.account.sku) += delta;
    it->second.region->levels += delta;
    it->second.city->levels += delta;
  }
}

Day StockProjection::today(const Entry& e) const {
  auto it = today_.find(e.partition.value);
  return it == today_.end() ? Day{0} : it->second;
}

void StockProjection::advance_day(PartitionId partition, Day today) {
  Day& d = today_[partition.value];
  if (today > d) d = today;
}

void StockProjection::define_reorder_point(PartitionId partition, SkuId sku, std::int32_t reorder_cover_days) {
  auto& points = reorder_points_[sku];
  auto at = std::lower_bound(points.begin(), points.end(), partition.value,
                             [](const auto& e, std::int32_t p) { return e.first < p; });
  const bool present = at != points.end() && at->first == partition.value;
  if (reorder_cover_days <= 0) {
    if (present) points.erase(at);
    if (points.empty()) reorder_points_.erase(sku);
    return;
  }
  if (present) at->second = reorder_cover_days;
  else points.insert(at, {partition.value, reorder_cover_days});
}

std::int32_t StockProjection::reorder_point(SkuId sku, PartitionId partition) const {
  auto it = reorder_points_.find(sku);
  if (it == reorder_points_.end()) return 0;
  for (const auto& [p, days] : it->second) {
    if (p == partition.value) return days;
  }
  return it->second.front().second;  // the lowest-numbered partition's: the vector is never empty
}

bool StockProjection::day_unchanged(PartitionId partition, Day today) const {
  auto it = today_.find(partition.value);
  return it != today_.end() && today <= it->second;
}

void StockProjection::record_sale(LocationId location, SkuId sku, Day day, Quantity qty) {
  auto it = locations_.find(location);
  assert(it != locations_.end() && "the ledger only sells at defined locations");
  Entry& e = it->second;
  const Day first{today(e).value - kCoverWindowDays + 1};
  // Days that have left the window go as the location sells again; a quiet location keeps at most
  // a window's worth of days, which the readers skip.
  auto stale = std::find_if(e.sales.begin(), e.sales.end(), [&](const DaySales& d) { return d.day >= first; });
  e.sales.erase(e.sales.begin(), stale);
  if (day < first) return;  // too late to be in the window; the stored history has it
  auto at = std::lower_bound(e.sales.begin(), e.sales.end(), day, [](const DaySales& d, Day x) { return d.day < x; });
  if (at == e.sales.end() || at->day != day) at = e.sales.insert(at, DaySales{day, {}});
  for (auto& [s, n] : at->sold) {
    if (s == sku) {
      n += qty.value;
      return;
    }
  }
  at->sold.emplace_back(sku, qty.value);
}

void StockProjection::sold_window(const Entry& e, absl::flat_hash_map<SkuId, std::int64_t>& out) const {
  out.clear();
  const Day last = today(e);
  const Day first{last.value - kCoverWindowDays + 1};
  for (const DaySales& d : e.sales) {
    if (d.day < first || d.day > last) continue;
    for (const auto& [sku, n] : d.sold) out[sku] += n;
  }
}

LocationStock StockProjection::make_location_stock(LocationId id, const Entry& e, std::optional<SkuId> sku,
                                                   std::optional<SkuId> from_sku, std::size_t limit) const {
  LocationStock out{id, e.info, {}, e.partition, today(e)};
  absl::flat_hash_map<SkuId, std::int64_t> sold;
  sold_window(e, sold);
  auto row = [&](SkuId s, const StockLevels& levels) {
    auto it = sold.find(s);
    out.rows.push_back({id, s, levels, Quantity{it == sold.end() ? 0 : it->second}, std::nullopt,
                        reorder_point(s, e.partition)});
  };
  if (sku) {
    const StockLevels* levels = e.skus.find(*sku);
    if (levels != nullptr && limit > 0 && (!from_sku || *from_sku <= *sku)) row(*sku, *levels);
    return out;
  }
  out.rows.reserve(std::min(e.skus.size(), limit));
  for (std::size_t k = from_sku ? e.skus.rank_of_first_at_or_after(*from_sku) : 0;
       k < e.skus.size() && out.rows.size() < limit; ++k) {
    const SkuLevels::Item& item = e.skus.by_rank(k);
    row(item.sku, item.levels);
  }
  return out;
}

std::optional<LocationStock> StockProjection::location_stock(LocationId location, std::optional<SkuId> sku,
                                                             const RegionScope& scope) const {
  const auto lock = read_lock();
  auto it = locations_.find(location);
  if (it == locations_.end() || !scope.contains(it->second.info.region)) return std::nullopt;
  return make_location_stock(location, it->second, sku, std::nullopt, it->second.skus.size() + 1);
}

std::vector<RegionTotals> StockProjection::region_totals(const RegionScope& scope) const {
  const auto lock = read_lock();
  std::vector<RegionTotals> out;
  auto add = [&](const Totals& t) { out.push_back(RegionTotals{t.region, t.locations.size(), t.levels}); };
  if (scope.is_all()) {
    out.reserve(regions_.size());
    for (const auto& [name, totals] : regions_) add(totals);
    return out;
  }
  // Look up only the scope's regions (sorted, so the output stays ordered by name).
  for (const std::string& name : scope.regions()) {
    auto it = regions_.find(name);
    if (it != regions_.end()) add(it->second);
  }
  return out;
}

std::optional<StockPage> StockProjection::stock_page(const StockFilter& filter, const RegionScope& scope,
                                                     std::optional<StockCursor> from, std::size_t limit) const {
  const auto lock = read_lock();
  // A named region or city must exist within the scope; otherwise the answer is "not found".
  if (filter.region && (!scope.contains(*filter.region) || !regions_.contains(*filter.region))) return std::nullopt;
  const Totals* city = nullptr;
  if (filter.city) {
    // Cities are named within a region; without a region filter, the first region in scope that has it.
    for (auto it = cities_.begin(); it != cities_.end() && city == nullptr; ++it) {
      if (it->first.second == *filter.city && scope.contains(it->first.first) &&
          (!filter.region || it->first.first == *filter.region)) {
        city = &it->second;
      }
    }
    if (city == nullptr) return std::nullopt;
  }
  StockPage page;
  std::size_t rows = 0;
  auto visit = [&](LocationId id) -> bool {  // false: the page is full
    const Entry& e = locations_.at(id);
    if (!scope.contains(e.info.region)) return true;
    if (filter.region && e.info.region != *filter.region) return true;
    if (city != nullptr && e.city != city) return true;
    const bool resume = from && from->location == id;
    // One row more than the page holds, to know where the next page starts.
    LocationStock ls = make_location_stock(id, e, filter.sku, resume ? std::optional(from->sku) : std::nullopt,
                                           limit - rows + 1);
    if (rows + ls.rows.size() > limit) {
      page.next = StockCursor{id, ls.rows.back().sku};
      ls.rows.pop_back();
      if (!ls.rows.empty()) page.locations.push_back(std::move(ls));
      return false;
    }
    rows += ls.rows.size();
    if (!ls.rows.empty() || filter.location) page.locations.push_back(std::move(ls));
    return true;
  };
  if (filter.location) {
    auto it = locations_.find(*filter.location);
    if (it == locations_.end() || !scope.contains(it->second.info.region)) return std::nullopt;
    if ((filter.region && it->second.info.region != *filter.region) || (city != nullptr && it->second.city != city)) {
      return std::nullopt;
    }
    visit(*filter.location);
    return page;
  }
  for (auto it = from ? ordered_.lower_bound(from->location) : ordered_.begin(); it != ordered_.end(); ++it) {
    if (!visit(*it)) break;
  }
  return page;
}

std::optional<std::vector<const StockProjection::Totals*>> StockProjection::groups(
    RollupLevel level, const RegionScope& scope, const std::optional<std::string>& region,
    const std::pair<std::string, std::string>& from, std::size_t limit, bool& more) const {
  more = false;
  if (region && (!scope.contains(*region) || !regions_.contains(*region))) return std::nullopt;
  std::vector<const Totals*> out;
  auto take = [&](const Totals& t) {
    if (region && t.region != *region) return true;
    if (!scope.contains(t.region)) return true;
    if (level != RollupLevel::nation && out.size() == limit) {
      more = true;
      return false;
    }
    out.push_back(&t);
    return true;
  };
  if (level == RollupLevel::city) {
    for (auto it = cities_.lower_bound(from); it != cities_.end() && take(it->second); ++it) {}
  } else {
    // The nation is every region of the scope, in one group.
    for (auto it = level == RollupLevel::nation ? regions_.begin() : regions_.lower_bound(from.first);
         it != regions_.end() && take(it->second); ++it) {}
  }
  return out;
}

std::optional<std::vector<GroupStock>> StockProjection::rollup(RollupLevel level, const RegionScope& scope,
                                                               const std::optional<std::string>& region,
                                                               const std::pair<std::string, std::string>& from,
                                                               std::size_t limit, const ReorderRule& reorder,
                                                               bool& more) const {
  const auto lock = read_lock();
  auto found = groups(level, scope, region, from, limit, more);
  if (!found) return std::nullopt;
  std::vector<GroupStock> out;
  absl::flat_hash_map<SkuId, std::int64_t> sold;
  auto add = [&](GroupStock& g, const Totals& t) {
    g.locations += t.locations.size();
    g.levels += t.levels;
    for (LocationId id : t.locations) {
      const Entry& e = locations_.at(id);
      sold_window(e, sold);
      for (const auto& [sku, levels] : e.skus.items()) {  // sums: any order
        auto s = sold.find(sku);
        const Quantity window{s == sold.end() ? 0 : s->second};
        g.sold_window.value += window.value;
        const ReorderThreshold t = reorder.threshold(reorder_point(sku, e.partition));
        if (cover(levels.on_hand, window, t.days).below_reorder) ++g.rows_below_reorder;
      }
    }
  };
  if (level == RollupLevel::nation) {
    GroupStock& g = out.emplace_back();
    for (const Totals* t : *found) add(g, *t);
    return out;
  }
  for (const Totals* t : *found) {
    GroupStock& g = out.emplace_back();
    g.region = t->region;
    if (level == RollupLevel::city) g.city = t->city;
    add(g, *t);
  }
  return out;
}

std::optional<std::vector<GroupRefs>> StockProjection::rollup_refs(RollupLevel level, const RegionScope& scope,
                                                                   const std::optional<std::string>& region,
                                                                   const std::pair<std::string, std::string>& from,
                                                                   std::size_t limit, bool& more) const {
  const auto lock = read_lock();
  auto found = groups(level, scope, region, from, limit, more);
  if (!found) return std::nullopt;
  std::vector<GroupRefs> out;
  for (const Totals* t : *found) {
    if (level != RollupLevel::nation || out.empty()) out.emplace_back();
    GroupRefs& g = out.back();
    if (level != RollupLevel::nation) g.region = t->region;
    if (level == RollupLevel::city) g.city = t->city;
    for (LocationId id : t->locations) {
      const Entry& e = locations_.at(id);
      LocationRef& ref = g.locations.emplace_back(LocationRef{id, e.partition, today(e), {}});
      ref.skus.reserve(e.skus.size());
      ref.sku_reorder_cover_days.reserve(e.skus.size());
      for (std::size_t k = 0; k < e.skus.size(); ++k) {
        const SkuId sku = e.skus.by_rank(k).sku;
        ref.skus.push_back(sku);
        ref.sku_reorder_cover_days.push_back(reorder_point(sku, e.partition));
      }
    }
  }
  return out;
}

std::optional<LocationRef> StockProjection::locate(LocationId location, const RegionScope& scope) const {
  const auto lock = read_lock();
  auto it = locations_.find(location);
  if (it == locations_.end() || !scope.contains(it->second.info.region)) return std::nullopt;
  return LocationRef{location, it->second.partition, today(it->second), {}};
}

}  // namespace qudao
