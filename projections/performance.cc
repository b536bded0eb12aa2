#include "projections/performance.h"

#include <algorithm>
#include <mutex>

namespace qudao {

void PerformanceProjection::publish(Shard& shard) {
  if (!shard.channel().has_changes()) return;
  const ChannelLedger::Changes changes = shard.channel().drain_changes();
  std::unique_lock lock(mutex_);
  publish_changes(shard, changes);
}

void PerformanceProjection::rebuild(Shard& shard) {
  ChannelLedger& channel = shard.channel();
  (void)channel.drain_changes();  // everything is copied below
  ChannelLedger::Changes all;
  channel.for_each_party([&](PartyId id, const PartyInfo&) { all.parties.push_back(id); });
  channel.for_each_stats([&](PartyPeriod k, const PeriodStats&) { all.periods.push_back(k); });
  channel.for_each_conflict([&](const StoreConflict& c) { all.conflicts.push_back(c); });
  channel.for_each_assignment([&](LocationId store, PartyId d) { all.assignments.emplace_back(store, d); });
  std::unique_lock lock(mutex_);
  publish_changes(shard, all);
}

void PerformanceProjection::publish_changes(Shard& shard, const ChannelLedger::Changes& changes) {
  const ChannelLedger& channel = shard.channel();
  for (PartyId id : changes.parties) put_party(id, *channel.party(id));
  for (PartyPeriod k : changes.periods) put_row(channel, k);
  for (const StoreConflict& c : changes.conflicts) {
    // A conflict belongs to the store's region (its shard's), else to the distributor holding it.
    std::string region;
    if (const LocationInfo* loc = shard.location(c.store)) region = loc->region;
    else if (const PartyInfo* p = channel.party(c.assigned)) region = p->region;
    conflicts_[region][{c.store, c.claimant}] = c;
  }
  for (const auto& [store, distributor] : changes.assignments) stores_[distributor].insert(store);
}

void PerformanceProjection::put_party(PartyId id, const PartyInfo& info) {
  auto [it, inserted] = parties_.try_emplace(id, info);
  if (!inserted) {
    if (it->second.parent != info.parent) {
      if (auto c = children_.find(it->second.parent); c != children_.end()) c->second.erase(id);
    }
    it->second = info;
  }
  if (info.parent != kHqParty) children_[info.parent].insert(id);
}

void PerformanceProjection::put_row(const ChannelLedger& channel, PartyPeriod k) {
  const PeriodStats* stats = channel.stats(k);
  if (stats == nullptr) return;
  Row& row = rows_[k];
  const std::int64_t old_attainment = row.stats.attainment_bp;
  row.stats = *stats;
  row.accrued = channel.balance(MoneyAccount{k.party, k.period, MoneyBucket::rebate_accrued});
  row.adjusted = channel.balance(MoneyAccount{k.party, k.period, MoneyBucket::rebate_adjusted});
  row.settled = Fen{-channel.balance(MoneyAccount{k.party, k.period, MoneyBucket::rebate_settled}).value};
  if (const auto* rows = channel.history(k)) {
    std::vector<RebateHistoryRow>& copy = history_[k];
    copy.insert(copy.end(), rows->begin() + static_cast<std::ptrdiff_t>(copy.size()), rows->end());
  }
  const PartyInfo* info = channel.party(k.party);
  if (info == nullptr || (info->kind != fb::PartyKind::Distributor && info->kind != fb::PartyKind::Agent)) return;
  absl::btree_set<BoardKey>& board = boards_[BoardId{info->region, k.period, info->kind}];
  board.erase(BoardKey{-old_attainment, k.party.value});
  board.insert(BoardKey{-row.stats.attainment_bp, k.party.value});
}

PerformanceRow PerformanceProjection::row_of(PartyPeriod k, const PartyInfo& info, const Row& r) const {
  return PerformanceRow{k.party, info, k.period, r.stats, r.accrued, r.adjusted, r.settled,
                        Fen{r.accrued.value + r.adjusted.value - r.settled.value}};
}

const PartyInfo* PerformanceProjection::visible_party(PartyId id, const RegionScope& scope) const {
  auto it = parties_.find(id);
  if (it == parties_.end() || !scope.contains(it->second.region)) return nullptr;
  return &it->second;
}

std::optional<PartyPerformance> PerformanceProjection::performance(PartyId party, Period period,
                                                                   const RegionScope& scope) const {
  std::shared_lock lock(mutex_);
  const PartyInfo* info = visible_party(party, scope);
  if (info == nullptr) return std::nullopt;
  PartyPerformance out;
  auto it = rows_.find(PartyPeriod{party, period});
  out.row = row_of(PartyPeriod{party, period}, *info, it == rows_.end() ? Row{} : it->second);
  if (info->kind == fb::PartyKind::Agent) {
    if (auto c = children_.find(party); c != children_.end()) {
      for (PartyId child : c->second) {
        if (out.rolls_up.size() == kRollUpPartiesMax) break;
        auto p = parties_.find(child);
        if (p != parties_.end() && p->second.kind == fb::PartyKind::Distributor) out.rolls_up.push_back(child);
      }
    }
  }
  return out;
}

std::optional<LeaderboardPage> PerformanceProjection::leaderboard(const std::string& region, Period period,
                                                                  fb::PartyKind kind, const RegionScope& scope,
                                                                  std::optional<LeaderboardCursor> after,
                                                                  std::size_t limit) const {
  if (!scope.contains(region)) return std::nullopt;
  std::shared_lock lock(mutex_);
  LeaderboardPage page;
  auto b = boards_.find(BoardId{region, period, kind});
  if (b == boards_.end()) return page;
  const absl::btree_set<BoardKey>& board = b->second;
  page.total = board.size();
  auto it = board.begin();
  std::uint32_t rank = 1;
  if (after) {
    it = board.upper_bound(BoardKey{-after->attainment_bp, after->party.value});
    // Ranks are positions: the entries before the cursor are counted, once per page.
    rank = static_cast<std::uint32_t>(std::distance(board.begin(), it)) + 1;
  }
  for (; it != board.end() && page.entries.size() < limit; ++it, ++rank) {
    const PartyPeriod k{PartyId{it->second}, period};
    page.entries.push_back(LeaderboardEntry{rank, row_of(k, parties_.at(k.party), rows_.at(k))});
  }
  if (it != board.end() && !page.entries.empty()) {
    const PerformanceRow& last = page.entries.back().row;
    page.next = LeaderboardCursor{last.stats.attainment_bp, last.party};
  }
  return page;
}

std::optional<RebatePeriods> PerformanceProjection::rebate_periods(PartyId party, const RegionScope& scope,
                                                                   std::optional<Period> after,
                                                                   std::size_t limit) const {
  std::shared_lock lock(mutex_);
  const PartyInfo* info = visible_party(party, scope);
  if (info == nullptr) return std::nullopt;
  RebatePeriods out;
  out.info = *info;
  auto it = after ? rows_.upper_bound(PartyPeriod{party, *after}) : rows_.lower_bound(PartyPeriod{party, Period{0}});
  for (; it != rows_.end() && it->first.party == party; ++it) {
    const Row& r = it->second;
    if (r.accrued.value == 0 && r.adjusted.value == 0 && r.settled.value == 0 && r.stats.tier == 0 &&
        r.stats.history_rows == 0) {
      continue;
    }
    if (out.periods.size() == limit) {
      out.next = out.periods.back().period;
      break;
    }
    out.periods.push_back(row_of(it->first, *info, r));
  }
  return out;
}

std::optional<RebateHistoryPage> PerformanceProjection::rebate_history(PartyId party, Period period,
                                                                       const RegionScope& scope, std::uint32_t after,
                                                                       std::size_t limit) const {
  std::shared_lock lock(mutex_);
  const PartyInfo* info = visible_party(party, scope);
  if (info == nullptr) return std::nullopt;
  const PartyPeriod k{party, period};
  RebateHistoryPage page;
  auto r = rows_.find(k);
  page.row = row_of(k, *info, r == rows_.end() ? Row{} : r->second);
  auto h = history_.find(k);
  if (h == history_.end()) return page;
  const std::vector<RebateHistoryRow>& rows = h->second;
  for (std::size_t i = std::min<std::size_t>(after, rows.size()); i < rows.size(); ++i) {
    if (page.rows.size() == limit) {
      page.next = page.rows.back().seq;
      break;
    }
    page.rows.push_back(rows[i]);
  }
  return page;
}

ConflictsPage PerformanceProjection::conflicts(
    const RegionScope& scope, const std::optional<std::pair<std::string, std::pair<LocationId, PartyId>>>& after,
    std::size_t limit) const {
  std::shared_lock lock(mutex_);
  ConflictsPage page;
  auto visit = [&](const std::string& region, const auto& by_store) {
    auto it = by_store.begin();
    if (after && after->first == region) it = by_store.upper_bound(after->second);
    for (; it != by_store.end(); ++it) {
      if (page.conflicts.size() == limit) {
        page.next = std::pair{page.conflicts.back().region,
                              std::pair{page.conflicts.back().conflict.store, page.conflicts.back().conflict.claimant}};
        return false;
      }
      page.conflicts.push_back(ConflictRow{it->second, region});
    }
    return true;
  };
  // Only the scope's regions are visited: the scope is part of the lookup.
  auto start = after ? conflicts_.lower_bound(after->first) : conflicts_.begin();
  if (scope.is_all()) {
    for (auto it = start; it != conflicts_.end(); ++it) {
      if (!visit(it->first, it->second)) break;
    }
  } else {
    for (const std::string& region : scope.regions()) {
      if (after && region < after->first) continue;
      auto it = conflicts_.find(region);
      if (it != conflicts_.end() && !visit(it->first, it->second)) break;
    }
  }
  return page;
}

std::optional<AssignedStores> PerformanceProjection::assigned_stores(PartyId party, const RegionScope& scope) const {
  std::shared_lock lock(mutex_);
  const PartyInfo* info = visible_party(party, scope);
  if (info == nullptr) return std::nullopt;
  AssignedStores out{*info, {}};
  auto add = [&](PartyId distributor) {
    if (auto s = stores_.find(distributor); s != stores_.end()) out.stores.insert(out.stores.end(), s->second.begin(), s->second.end());
  };
  if (info->kind == fb::PartyKind::Distributor) {
    add(party);
  } else if (info->kind == fb::PartyKind::Agent) {
    if (auto c = children_.find(party); c != children_.end()) {
      for (PartyId child : c->second) add(child);
    }
    std::sort(out.stores.begin(), out.stores.end());
  }
  return out;
}

}  // namespace qudao
