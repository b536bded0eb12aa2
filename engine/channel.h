// Channel ledger: the part of a shard's state about parties rather than goods (issue 6 item 2,
// issue 4's money postings). Parties (agents, distributors, stores), store assignments (客户报备)
// and their conflicts, targets, rebate policies, a price list, per party × period performance
// counters, money accounts in fen, and the rebate history.
//
// Periods: every event counts in the month ("YYYY-MM") and the quarter ("YYYY-Qn") of its own
// occurred_at (UTC), so a late event lands in the period it happened in, not the one it arrived in.
//
// What each counter means (per party × period):
//   orders_store    orders placed by a store assigned to the party, for itself
//   orders_proxy    orders the party placed on behalf of a store (代下单: placed_by is the party)
//   sell_in_fen     money paid on orders of the party's assigned stores (OrderPaid.amount_fen, in
//                   the payment's period), less what a cancellation of a paid order gives back (in
//                   the cancellation's period). The contract prices orders, not shipments, so paid
//                   money (回款) is the sell-in a rebate is computed on.
//   sell_through_*  its assigned stores' scan-outs: units, and their value at the sku's list price
//                   (SkuDefined on this shard), else at the latest order-line price of the sku seen
//                   on this shard; units with neither are counted in sell_through_unpriced_qty
//   active_stores   distinct assigned stores with at least one scan-out in the period
//   ratings         FeedbackRecorded for the party: count and sum (average = sum / count)
//   trainings       TrainingCompleted by the party itself
// A distributor's orders, sell-in, sell-through, active stores and ratings also count for its parent
// when that parent is a registered Agent (agents roll up their distributors).
//
// Rebates: a (party, period) with a policy has attainment_bp = sell_in × 10000 / target (the
// period's TargetSet; for a quarter without one, the sum of its months' targets), its tier is the
// highest whose attainment_bp it reaches, and the rebate due is sell_in × rebate_bp / 10000 (floor,
// sell-in below zero counts as zero). After every event that changes sell-in, target or policy, the
// difference between the rebate due and what is accrued is posted: rebate_accrued(party, period)
// += d against rebate_expense(HQ, period) -= d. A tier change also appends a history row naming the
// event that caused it, its time, the old and new tier and rate, sell-in and target. RebateAdjusted
// posts its signed amount to rebate_adjusted(party, period) against adjustment_expense(HQ, period)
// and appends a history row with its reason. RebateSettled pays money out: what the party is owed
// for the period, its outstanding balance = rebate_accrued + rebate_adjusted + rebate_settled (the
// sum of its three accounts; rebate_settled is never positive), moves to rebate_paid(HQ, period):
// rebate_settled(party, period) -= amount against rebate_paid(HQ, period) += amount, with a history
// row carrying the payment reference. Settling more than is outstanding is rejected
// (exceeds_outstanding); a late event that lowers the accrual afterwards is applied all the same and
// may leave the outstanding negative: a claw-back the party owes the brand, kept and shown. Every
// posting is a balanced pair in integer fen, so the sum over all money accounts of a shard is zero
// after every event.
//
// What crosses shards: events are keyed by region, so a region's parties, stores, targets and
// orders are on one shard and everything above is per shard. The simulator keys the catalogue
// (SkuDefined) to the HQ shard, so a regional shard prices sell-through at order-line prices.
// An agent's distributors must be in the agent's region (the roll-up is within a shard).
//
// A ChannelLedger belongs to its Shard: same thread, same commit, same digest. Every entry change
// marks the entry dirty for the next commit (engine/store.cc writes it, see the grammar in
// engine/store.h) and, separately, changed for the performance projection, which drains the
// changes after each poll batch. The digest is a sum of XXH3 hashes of each entry's stored key and
// value, so it is order-independent and a restart recomputes it from what was stored. A period stats
// entry is re-hashed lazily: a scan-out changes up to four of them, and encoding and hashing each
// (~120 bytes) at every change was ~5 % of the apply row's CPU. A stats entry is hashed when it
// becomes clean instead: while it is dirty its `hash` is the one it had when it was last clean, and
// only touch_stats marks a stats entry dirty, so the stats refs in the dirty list are exactly the
// entries whose hash is stale. digest() adds their pending difference and mark_clean() (every
// commit) folds it in: the same value, computed once per entry per commit instead of once per change.
#pragma once

#include <absl/container/btree_map.h>
#include <absl/container/flat_hash_map.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "events/decode.h"
#include "events/encode.h"  // RebateTierBp
#include "events/types.h"
#include "engine/prefetch.h"

namespace qudao {

using PartyId = Strong<struct PartyIdTag, std::uint64_t>;
inline constexpr PartyId kHqParty{0};  // the virtual party of expense accounts

// A month or a quarter: year × 16 + slot, slot 1..12 for months and 13..16 for quarters 1..4.
struct Period {
  std::uint16_t code = 0;

  static Period month(int year, int month) { return Period{static_cast<std::uint16_t>(year * 16 + month)}; }
  static Period quarter(int year, int quarter) { return Period{static_cast<std::uint16_t>(year * 16 + 12 + quarter)}; }
  int year() const { return code / 16; }
  bool is_quarter() const { return code % 16 > 12; }
  // The quarter a month is in (a quarter is its own).
  Period quarter() const { return is_quarter() ? *this : quarter(year(), (code % 16 - 1) / 3 + 1); }
  std::string text() const;  // "2026-03" or "2026-Q1"

  friend constexpr auto operator<=>(const Period&, const Period&) = default;
};

// "YYYY-MM" or "YYYY-Qn" (what events/decode.cc accepts); nothing for anything else.
std::optional<Period> parse_period(std::string_view text);
// The month of a time in ms since the Unix epoch (UTC).
Period month_of(TimeMs t);

struct PartyPeriod {
  PartyId party;
  Period period;
  friend constexpr auto operator<=>(const PartyPeriod&, const PartyPeriod&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const PartyPeriod& k) { return H::combine(std::move(h), k.party.value, k.period.code); }
};

struct PartyInfo {
  fb::PartyKind kind = fb::PartyKind::Unknown;
  PartyId parent;
  LocationId location;  // a store party's Store location
  std::string name;
  std::string region;
  std::string industry;
  friend bool operator==(const PartyInfo&, const PartyInfo&) = default;
};

struct PeriodStats {
  std::int64_t orders_store = 0;
  std::int64_t orders_proxy = 0;
  Fen sell_in;
  Quantity sell_through;
  Fen sell_through_value;
  Quantity sell_through_unpriced;
  std::int64_t active_stores = 0;
  std::int64_t ratings = 0;
  std::int64_t rating_sum = 0;
  std::int64_t trainings = 0;
  std::int32_t tier = 0;          // 1-based index of the tier reached; 0: none (or no policy)
  std::int32_t rebate_bp = 0;     // that tier's rate
  std::int64_t attainment_bp = 0;
  Fen target;                     // the target attainment was measured against (0: none)
  std::uint32_t history_rows = 0;
  friend bool operator==(const PeriodStats&, const PeriodStats&) = default;
};

enum class MoneyBucket : std::uint8_t {
  rebate_accrued = 1,      // owed to the party
  rebate_adjusted = 2,     // manual corrections owed to the party (signed)
  rebate_settled = 3,      // paid out to the party: minus the sum of its settlements (never positive)
  rebate_expense = 10,     // virtual, party 0: the brand's side of accruals
  adjustment_expense = 11, // virtual, party 0: the brand's side of corrections
  rebate_paid = 12,        // virtual, party 0: the brand's side of settlements (what it paid out)
};

struct MoneyAccount {
  PartyId party;
  Period period;
  MoneyBucket bucket = MoneyBucket::rebate_accrued;
  friend constexpr auto operator<=>(const MoneyAccount&, const MoneyAccount&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const MoneyAccount& a) {
    return H::combine(std::move(h), a.party.value, a.period.code, a.bucket);
  }
};

// Why the rebate of a party × period moved.
struct RebateHistoryRow {
  std::uint32_t seq = 0;  // per party × period, from 1
  EventId event;
  TimeMs occurred_at;
  fb::Payload cause = fb::Payload::NONE;
  std::int32_t old_tier = 0, new_tier = 0;
  std::int32_t old_rebate_bp = 0, new_rebate_bp = 0;
  Fen sell_in, target;
  Fen delta;               // what it did to the outstanding balance: the accrual difference, the
                           // adjustment, or minus the settled amount
  std::string reason;      // RebateAdjusted's reason, RebateSettled's payment reference; empty otherwise
};

struct StoreConflict {
  LocationId store;
  PartyId assigned;        // who holds the store
  PartyId claimant;        // who claimed it as well
  TimeMs first_claim, last_claim;
  std::uint32_t claims = 0;
};

class ChannelLedger {
 public:
  // The event being applied: its id and time, for periods and history rows.
  struct Context {
    EventId id;
    TimeMs occurred_at;
    fb::Payload type = fb::Payload::NONE;
  };

  // Channel events. A rejection names the field; nothing changes then.
  std::optional<Rejection> apply(const Context& c, const fb::PartyRegistered& e);
  std::optional<Rejection> apply(const Context& c, const fb::StoreAssigned& e, fb::LocationKind store_kind);
  std::optional<Rejection> apply(const Context& c, const fb::TargetSet& e);
  std::optional<Rejection> apply(const Context& c, const fb::RebatePolicySet& e);
  std::optional<Rejection> apply(const Context& c, const fb::RebateAdjusted& e);
  std::optional<Rejection> apply(const Context& c, const fb::RebateSettled& e);
  std::optional<Rejection> apply(const Context& c, const fb::FeedbackRecorded& e);
  std::optional<Rejection> apply(const Context& c, const fb::TrainingCompleted& e);
  void apply(const fb::SkuDefined& e);
  // Hooks from the goods ledger, after its own event applied (never rejected here).
  void order_placed(const Context& c, LocationId store, PartyId placed_by, const fb::OrderPlaced& e);
  void paid(const Context& c, LocationId store, Fen amount);  // a cancellation's refund: a negative amount
  void scanned_out(const Context& c, LocationId store, SkuId sku, Quantity qty);
  // A hint, no change: prefetches the store's assignment and the sku's price, which scanned_out reads
  // first (engine/prefetch.h, engine/prefetch.cc).
  void prefetch_scan_out(LocationId store, SkuId sku) const;

  // Reads.
  const PartyInfo* party(PartyId id) const;
  std::optional<PartyId> distributor_of(LocationId store) const;
  const PeriodStats* stats(PartyPeriod k) const;
  Fen balance(const MoneyAccount& a) const;
  // What the party is owed for the period: accrued + adjusted - settled (negative: a claw-back).
  Fen outstanding(PartyPeriod k) const;
  Fen money_sum() const;  // over every money account: zero, always (the conservation check)
  std::uint64_t digest() const;
  const std::vector<RebateHistoryRow>* history(PartyPeriod k) const;
  template <class F> void for_each_party(F&& f) const { for (const auto& [id, e] : parties_) f(id, e.value); }
  template <class F> void for_each_stats(F&& f) const { for (const auto& [k, e] : stats_) f(k, e.value); }
  template <class F> void for_each_money(F&& f) const { for (const auto& [a, e] : money_) f(a, e.value); }
  template <class F> void for_each_conflict(F&& f) const {
    for (const auto& [k, e] : conflicts_) f(conflict(k, e));
  }
  // f(store, distributor) for every assigned store.
  template <class F> void for_each_assignment(F&& f) const {
    for (const auto& [store, e] : assignments_) f(store, e.value);
  }
  // f(sku, days) for every sku SkuDefined on this shard: its production lead time (the last one).
  template <class F> void for_each_lead_time(F&& f) const {
    for (const auto& [sku, e] : prices_) {
      if (e.value.lead_time_days >= 0) f(sku, e.value.lead_time_days);
    }
  }
  // f(sku, days) for every sku whose last SkuDefined on this shard gave it a reorder point
  // (reorder_cover_days 1..365; the stock projection's per-sku threshold, projections/stock.h).
  template <class F> void for_each_reorder_point(F&& f) const {
    for (const auto& [sku, e] : prices_) {
      if (e.value.reorder_cover_days > 0) f(sku, e.value.reorder_cover_days);
    }
  }

  // Projection support: what changed since the last drain (each key once).
  struct Changes {
    std::vector<PartyId> parties;
    std::vector<PartyPeriod> periods;  // stats, money or history of these changed
    std::vector<StoreConflict> conflicts;
    std::vector<std::pair<LocationId, PartyId>> assignments;  // stores newly assigned: (store, distributor)
  };
  bool has_changes() const {
    return !changed_parties_.empty() || !changed_periods_.empty() || !changed_conflicts_.empty() ||
           !changed_assignments_.empty();
  }
  Changes drain_changes();

  // Commit support: stored (key, value) pairs of the dirty entries, each key starting with its tag
  // ('P', 'G', 'M', 'R', 'N'; engine/store.cc puts the partition after the tag).
  bool dirty() const { return !dirty_.empty(); }
  template <class F> void for_each_dirty(F&& f) {
    std::string key, value;
    for (const DirtyRef& d : dirty_) {
      if (encode(d, key, value)) f(key, value);
    }
  }
  void mark_clean();
  // Load support: one stored entry (key without the partition); false if it does not parse.
  [[nodiscard]] bool restore(std::string_view key, std::string_view value);
  static bool is_channel_tag(char tag);

 private:
  enum class Kind : std::uint8_t { party, assignment, conflict, target, policy, price, stats, money, active, history };
  struct DirtyRef {
    Kind kind;
    std::uint64_t a = 0, b = 0;  // the entry's key fields (see encode)
    std::uint16_t period = 0;
    std::uint8_t extra = 0;
  };
  template <class T>
  struct Entry {
    T value{};
    std::uint64_t hash = 0;  // of its stored key and value, in digest_
    bool dirty = false;      // for the next commit
    bool changed = false;    // for the projection's next drain (stats entries only)
  };
  struct ConflictState {
    PartyId assigned;
    TimeMs first_claim, last_claim;
    std::uint32_t claims = 0;
  };
  struct Price {
    Fen list;    // from SkuDefined
    Fen agreed;  // the latest order line's unit price
    std::int32_t lead_time_days = -1;  // from SkuDefined (production); -1: never defined on this shard
    std::int32_t reorder_cover_days = 0;  // from SkuDefined; 0: none (stored only when set)
  };

  bool encode(const DirtyRef& d, std::string& key, std::string& value) const;
  // Re-hashes an entry after a change and marks it dirty and changed.
  template <class T> void touch(Entry<T>& e, const DirtyRef& ref);
  void changed(PartyPeriod k, Entry<PeriodStats>& e);
  static StoreConflict conflict(const std::pair<LocationId, PartyId>& k, const Entry<ConflictState>& e);

  Entry<PeriodStats>& stats_entry(PartyPeriod k);
  // Marks a stats entry dirty and changed without re-hashing it (see the header comment): the only
  // way a stats entry becomes dirty.
  void touch_stats(PartyPeriod k, Entry<PeriodStats>& e);
  // The hash of a stats entry's current stored key and value, encoded into the given buffers.
  std::uint64_t stats_hash(const DirtyRef& ref, std::string& key, std::string& value) const;
  // Brings every dirty stats entry's hash (and digest_) up to date.
  void rehash_stats();
  // The party and its registered Agent parent: who a distributor's activity counts for.
  int chain(PartyId party, PartyId out[2]) const;
  enum class RollUp : std::uint8_t { none, to_agent };
  // Calls f(key, stats) for the party (and its agent, with RollUp::to_agent) in the month and the
  // quarter of the event, then re-hashes and marks each entry.
  template <class F> void count(const Context& c, PartyId party, RollUp roll_up, F&& f);
  void post(const MoneyAccount& to, const MoneyAccount& from, Fen amount);
  void recompute_rebate(const Context& c, PartyPeriod k);
  Fen target_of(PartyPeriod k) const;
  void append_history(PartyPeriod k, RebateHistoryRow row);
  std::optional<Rejection> require_party(PartyId id, const char* field, fb::PartyKind kind = fb::PartyKind::Unknown) const;

  absl::flat_hash_map<PartyId, Entry<PartyInfo>> parties_;
  absl::flat_hash_map<LocationId, Entry<PartyId>> assignments_;
  absl::btree_map<std::pair<LocationId, PartyId>, Entry<ConflictState>> conflicts_;
  absl::flat_hash_map<PartyPeriod, Entry<Fen>> targets_;
  absl::flat_hash_map<PartyPeriod, Entry<std::vector<RebateTierBp>>> policies_;
  absl::flat_hash_map<SkuId, Entry<Price>> prices_;
  absl::flat_hash_map<PartyPeriod, Entry<PeriodStats>> stats_;
  absl::flat_hash_map<MoneyAccount, Entry<Fen>> money_;
  struct ActiveKey {
    PartyPeriod pp;
    LocationId store;
    friend constexpr bool operator==(const ActiveKey&, const ActiveKey&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const ActiveKey& k) { return H::combine(std::move(h), k.pp, k.store.value); }
  };
  absl::flat_hash_map<ActiveKey, Entry<char>> active_;
  absl::flat_hash_map<PartyPeriod, std::vector<RebateHistoryRow>> history_;  // rows never change

  std::uint64_t digest_ = 0;  // less the pending differences of the dirty stats entries
  std::string key_scratch_, value_scratch_;
  Fen money_sum_;
  std::vector<DirtyRef> dirty_;
  std::vector<PartyId> changed_parties_;
  std::vector<PartyPeriod> changed_periods_;
  std::vector<std::pair<LocationId, PartyId>> changed_conflicts_;
  std::vector<std::pair<LocationId, PartyId>> changed_assignments_;
};

}  // namespace qudao
