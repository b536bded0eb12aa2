#include "projections/stock_history.h"

#include <algorithm>

namespace qudao {
namespace {

// Units sold per sku over from..to at one location (a sorted vector: few skus per location).
Result<std::vector<std::pair<SkuId, std::int64_t>>> sold_per_sku(HistoryReader& history, PartitionId p, LocationId location,
                                                                 Day from, Day to) {
  std::vector<std::pair<SkuId, std::int64_t>> out;
  if (p == kNoPartition) return out;
  auto sales = history.sales(p, location, from, to);
  if (!sales.is_ok()) return sales.status();
  for (const Sale& s : sales.value()) out.emplace_back(s.sku, s.qty.value);
  std::sort(out.begin(), out.end());
  std::size_t w = 0;
  for (std::size_t r = 0; r < out.size(); ++r) {
    if (w > 0 && out[w - 1].first == out[r].first) out[w - 1].second += out[r].second;
    else out[w++] = out[r];
  }
  out.resize(w);
  return out;
}

std::int64_t lookup(const std::vector<std::pair<SkuId, std::int64_t>>& sold, SkuId sku) {
  auto it = std::lower_bound(sold.begin(), sold.end(), sku, [](const auto& e, SkuId s) { return e.first < s; });
  return it != sold.end() && it->first == sku ? it->second : 0;
}

Day window_start(Day last) { return Day{last.value - kCoverWindowDays + 1}; }

}  // namespace

Status apply_as_of(HistoryReader& history, LocationStock& location, Day as_of) {
  std::vector<SkuId> skus;
  skus.reserve(location.rows.size());
  for (const StockRow& r : location.rows) skus.push_back(r.sku);
  std::vector<Closing> closings;
  if (location.partition != kNoPartition) {
    auto c = history.closings(location.partition, location.location, skus, as_of);
    if (!c.is_ok()) return c.status();
    closings = c.take();
  }
  auto sold = sold_per_sku(history, location.partition, location.location, window_start(as_of), as_of);
  if (!sold.is_ok()) return sold.status();
  std::size_t next = 0;  // closings come in the rows' sku order, some missing
  for (StockRow& r : location.rows) {
    r.levels = {};
    if (next < closings.size() && closings[next].sku == r.sku) {
      const ClosingLevels& l = closings[next++].levels;
      r.levels = StockLevels{Quantity{l.on_hand}, Quantity{l.reserved}, Quantity{l.in_transit}};
    }
    r.sold_window = Quantity{lookup(sold.value(), r.sku)};
  }
  location.today = as_of;
  return Status::ok();
}

Status add_sold_period(HistoryReader& history, LocationStock& location, Day from, Day to) {
  auto sold = sold_per_sku(history, location.partition, location.location, from, to);
  if (!sold.is_ok()) return sold.status();
  for (StockRow& r : location.rows) r.sold_period = Quantity{lookup(sold.value(), r.sku)};
  return Status::ok();
}

Result<std::vector<GroupStock>> rollup_as_of(HistoryReader& history, const std::vector<GroupRefs>& groups, Day as_of,
                                             const ReorderRule& reorder) {
  std::vector<GroupStock> out;
  for (const GroupRefs& g : groups) {
    GroupStock& total = out.emplace_back();
    total.region = g.region;
    total.city = g.city;
    total.locations = g.locations.size();
    for (const LocationRef& ref : g.locations) {
      LocationStock ls{ref.location, {}, {}, ref.partition, ref.today};
      for (std::size_t i = 0; i < ref.skus.size(); ++i) {
        ls.rows.push_back(StockRow{ref.location, ref.skus[i], {}, {}, {}, ref.sku_reorder_cover_days[i]});
      }
      if (Status s = apply_as_of(history, ls, as_of); !s.is_ok()) return s;
      for (const StockRow& r : ls.rows) {
        total.levels += r.levels;
        total.sold_window.value += r.sold_window.value;
        const ReorderThreshold t = reorder.threshold(r.sku_reorder_cover_days);
        if (cover(r.levels.on_hand, r.sold_window, t.days).below_reorder) ++total.rows_below_reorder;
      }
    }
  }
  return out;
}

Status add_sold_period(HistoryReader& history, const std::vector<GroupRefs>& refs, Day from, Day to,
                       std::vector<GroupStock>& groups) {
  for (GroupStock& g : groups) {
    auto ref = std::find_if(refs.begin(), refs.end(),
                            [&](const GroupRefs& r) { return r.region == g.region && r.city == g.city; });
    g.sold_period = Quantity{0};
    if (ref == refs.end()) continue;
    for (const LocationRef& l : ref->locations) {
      auto sold = sold_per_sku(history, l.partition, l.location, from, to);
      if (!sold.is_ok()) return sold.status();
      for (const auto& [sku, n] : sold.value()) g.sold_period->value += n;
    }
  }
  return Status::ok();
}

Status rebuild_sold_window(HistoryReader& history, const Shard& shard, StockProjection::Writer& projection) {
  const Day today = day_of(shard.watermark());
  projection.advance_day(shard.partition(), today);
  Status status = Status::ok();
  shard.for_each_location([&](LocationId id, const LocationInfo&) {
    if (!status.is_ok()) return;
    auto sales = history.sales(shard.partition(), id, window_start(today), today);
    if (!sales.is_ok()) {
      status = sales.status();
      return;
    }
    for (const Sale& s : sales.value()) projection.record_sale(id, s.sku, s.day, s.qty);
  });
  return status;
}

}  // namespace qudao
