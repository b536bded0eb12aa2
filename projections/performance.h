// Performance projection: the read model HQ queries for distributor performance and rebates, per
// party × period (month or quarter), region leaderboards, and store-assignment conflicts. It copies
// what the shards' channel ledgers (engine/channel.h) changed: the pipeline publishes each shard's
// changes after every poll batch, and rebuilds the projection from the loaded shards on start. It
// keeps no durable state of its own.
//
// Every lookup takes the reader's RegionScope (projections/scope.h): a party, region or conflict
// outside it is not found, exactly like one that does not exist; the scope is applied inside the
// lookup (per-region indexes), never by filtering a full answer afterwards.
//
// Leaderboards rank a region's parties of one kind (distributors, or agents) for a period by target
// attainment, highest first; ties go to the lower party id, so the order is total and stable. Each
// board is an ordered index kept up to date as rows change, so a page costs O(log n + page).
//
// Pages: every listing takes a cursor (the last item of the previous page, as the answer gives it)
// and a limit, capped by the named maximums below.
//
// Thread-safety: one writer (the pipeline thread; publish() and rebuild() take the exclusive lock)
// and any number of readers. The lock is a PiMutex (engine/pi_mutex.h): readers exclude each other
// too, and a real-time reader lends its priority to the writer it waits for.
#pragma once

#include <absl/container/btree_map.h>
#include <absl/container/btree_set.h>
#include <absl/container/flat_hash_map.h>

#include <map>
#include <optional>
#include <shared_mutex>
#include <string>
#include <vector>

#include "engine/ledger.h"
#include "engine/pi_mutex.h"
#include "projections/scope.h"

namespace qudao {

inline constexpr std::size_t kLeaderboardPageMax = 500;
inline constexpr std::size_t kConflictsPageMax = 1'000;
inline constexpr std::size_t kRebatePeriodsPageMax = 200;
inline constexpr std::size_t kRebateHistoryPageMax = 1'000;
inline constexpr std::size_t kRollUpPartiesMax = 1'000;  // an agent's distributors listed with it

// A party's figures for one period, with its money.
struct PerformanceRow {
  PartyId party;
  PartyInfo info;
  Period period;
  PeriodStats stats;
  Fen rebate_accrued;
  Fen rebate_adjusted;
  Fen rebate_settled;      // paid out to the party (>= 0)
  Fen rebate_outstanding;  // accrued + adjusted - settled: still owed (negative: a claw-back)
};

struct PartyPerformance {
  PerformanceRow row;
  std::vector<PartyId> rolls_up;  // an agent's distributors (at most kRollUpPartiesMax), by id
};

struct LeaderboardEntry {
  std::uint32_t rank = 0;  // 1-based
  PerformanceRow row;
};

// Where a leaderboard page starts: after this (attainment, party).
struct LeaderboardCursor {
  std::int64_t attainment_bp = 0;
  PartyId party;
};

struct LeaderboardPage {
  std::vector<LeaderboardEntry> entries;
  std::size_t total = 0;                   // parties on the board
  std::optional<LeaderboardCursor> next;   // set when more follow
};

struct RebatePeriods {
  PartyInfo info;
  std::vector<PerformanceRow> periods;     // by period
  std::optional<Period> next;
};

struct RebateHistoryPage {
  PerformanceRow row;
  std::vector<RebateHistoryRow> rows;      // by seq
  std::optional<std::uint32_t> next;       // the last seq given, when more follow
};

struct ConflictRow {
  StoreConflict conflict;
  std::string region;
};

struct ConflictsPage {
  std::vector<ConflictRow> conflicts;      // by region, then store, then claimant
  std::optional<std::pair<std::string, std::pair<LocationId, PartyId>>> next;
};

struct AssignedStores {
  PartyInfo info;
  std::vector<LocationId> stores;  // by id
};

class PerformanceProjection {
 public:
  // Copies what `shard`'s channel ledger changed since the last publish (draining its changes).
  void publish(Shard& shard);
  // Copies all of a loaded shard's channel state (on start).
  void rebuild(Shard& shard);

  // Nothing if the party is unknown or outside `scope`; a known party without a row for the period
  // gets zero figures (rebate_history too).
  std::optional<PartyPerformance> performance(PartyId party, Period period, const RegionScope& scope) const;
  // Nothing if the region is outside `scope`; an empty board for a region in scope without rows.
  std::optional<LeaderboardPage> leaderboard(const std::string& region, Period period, fb::PartyKind kind,
                                             const RegionScope& scope, std::optional<LeaderboardCursor> after,
                                             std::size_t limit) const;
  // A party's periods that have rebate money (accrued, adjusted or settled), a policy tier or a
  // history row, after `after`.
  std::optional<RebatePeriods> rebate_periods(PartyId party, const RegionScope& scope, std::optional<Period> after,
                                              std::size_t limit) const;
  // One period's rebate history rows after seq `after`.
  std::optional<RebateHistoryPage> rebate_history(PartyId party, Period period, const RegionScope& scope,
                                                  std::uint32_t after, std::size_t limit) const;
  ConflictsPage conflicts(const RegionScope& scope,
                          const std::optional<std::pair<std::string, std::pair<LocationId, PartyId>>>& after,
                          std::size_t limit) const;
  // The stores assigned to a distributor (StoreAssigned; a later claim by another is a conflict
  // and changes nothing), or to an agent's distributors; none for another kind of party. Nothing
  // if the party is unknown or outside `scope`. The stores' own regions are not checked here: the
  // order projection's lookups take the scope.
  std::optional<AssignedStores> assigned_stores(PartyId party, const RegionScope& scope) const;

 private:
  struct Row {
    PeriodStats stats;
    Fen accrued, adjusted, settled;  // settled: paid out, >= 0
  };
  using BoardKey = std::pair<std::int64_t, std::uint64_t>;  // (-attainment_bp, party)
  struct BoardId {
    std::string region;
    Period period;
    fb::PartyKind kind;
    friend auto operator<=>(const BoardId&, const BoardId&) = default;
  };

  void publish_changes(Shard& shard, const ChannelLedger::Changes& changes);
  void put_party(PartyId id, const PartyInfo& info);
  void put_row(const ChannelLedger& channel, PartyPeriod k);
  PerformanceRow row_of(PartyPeriod k, const PartyInfo& info, const Row& r) const;
  const PartyInfo* visible_party(PartyId id, const RegionScope& scope) const;

  mutable PiMutex mutex_;  // priority inheritance: see engine/pi_mutex.h
  absl::flat_hash_map<PartyId, PartyInfo> parties_;
  absl::flat_hash_map<PartyId, absl::btree_set<PartyId>> children_;
  absl::btree_map<PartyPeriod, Row> rows_;
  absl::flat_hash_map<PartyPeriod, std::vector<RebateHistoryRow>> history_;
  std::map<BoardId, absl::btree_set<BoardKey>> boards_;
  absl::flat_hash_map<PartyId, absl::btree_set<LocationId>> stores_;  // a distributor's assigned stores
  // Per region: (store, claimant) -> conflict.
  std::map<std::string, absl::btree_map<std::pair<LocationId, PartyId>, StoreConflict>> conflicts_;
};

}  // namespace qudao
