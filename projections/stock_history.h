// Stock history queries: the stock projection (projections/stock.h) joined with the history the
// engine stores (engine/history.h): stock as of a past day, units sold in a period, the sold window
// after a restart. Every function starts from rows the projection has already found within the
// reader's RegionScope, so the scope is applied before anything is read from the store.
//
// As of day D, a (location, sku) has the newest stored closing at or before D (one SeekForPrev), or
// nothing if its stock never changed up to D (all zero). The closing of the current shard day is the
// one written by the last commit (at most a commit interval behind the live projection). As of D,
// the cover window is the kCoverWindowDays days ending on D.
//
// Reads go to RocksDB through the caller's HistoryReader (one per query or rebuild: engine/store.h),
// without holding the projection's lock.
#pragma once

#include "engine/store.h"
#include "projections/stock.h"

namespace qudao {

inline constexpr std::int32_t kSoldPeriodDaysMax = 366;  // the longest period one query may sum

// Replaces each row's levels and sold window with those as of `as_of` (its reorder point stays).
[[nodiscard]] Status apply_as_of(HistoryReader& history, LocationStock& location, Day as_of);
// Sets each row's sold_period to the units sold from..to (inclusive).
[[nodiscard]] Status add_sold_period(HistoryReader& history, LocationStock& location, Day from, Day to);

// A roll-up as of `as_of`, one group per GroupRefs (projections: StockProjection::rollup_refs), each
// row below reorder by `reorder` with the sku's current reorder point.
Result<std::vector<GroupStock>> rollup_as_of(HistoryReader& history, const std::vector<GroupRefs>& groups, Day as_of,
                                             const ReorderRule& reorder);
// Sets each group's sold_period; `refs` are the same groups, matched by (region, city).
[[nodiscard]] Status add_sold_period(HistoryReader& history, const std::vector<GroupRefs>& refs, Day from, Day to,
                                     std::vector<GroupStock>& groups);

// Rebuilds the sold window of `shard`'s locations from the stored sold rows (on start, after the
// projection has its locations and stock).
[[nodiscard]] Status rebuild_sold_window(HistoryReader& history, const Shard& shard, StockProjection::Writer& projection);

}  // namespace qudao
