#include "engine/channel.h"

#include <fmt/format.h>
#include <xxhash.h>

#include <algorithm>
#include <cassert>
#include <cstring>

#include "engine/codec.h"

namespace qudao {
namespace {

constexpr char kPartyTag = 'P';
constexpr char kTargetTag = 'G';
constexpr char kMoneyTag = 'M';
constexpr char kHistoryTag = 'R';
constexpr char kAssignmentTag = 'N';
// Sub-kinds after the tag.
constexpr std::uint8_t kAssignmentSub = 1, kConflictSub = 2;
constexpr std::uint8_t kTargetSub = 1, kPolicySub = 2, kPriceSub = 3;
constexpr std::uint8_t kStatsSub = 1, kMoneySub = 2, kActiveSub = 3;
constexpr std::int64_t kBasisPoints = 10'000;
constexpr std::size_t kPolicyTiersMax = 20;  // what decode accepts

// Products of fen and basis points can pass 2^63 before the division.
__extension__ typedef __int128 Wide;

std::uint64_t entry_hash(std::string_view key, std::string_view value) {
  return XXH3_64bits_withSeed(value.data(), value.size(), XXH3_64bits(key.data(), key.size()));
}

Rejection reject(const char* field, std::string message) {
  return Rejection{RejectReason::invalid_value, field, std::move(message)};
}

// Fixed width, written with memcpy into one buffer: a scan-out re-encodes four of these.
void put_stats(std::string& v, const PeriodStats& s) {
  const std::int64_t wide[] = {s.orders_store, s.orders_proxy, s.sell_in.value, s.sell_through.value,
                               s.sell_through_value.value, s.sell_through_unpriced.value, s.active_stores, s.ratings,
                               s.rating_sum, s.trainings, s.attainment_bp, s.target.value};
  const std::int32_t narrow[] = {s.tier, s.rebate_bp, static_cast<std::int32_t>(s.history_rows)};
  char buf[sizeof wide + sizeof narrow];
  std::memcpy(buf, wide, sizeof wide);  // little-endian, as codec::put_le (x86-64 / arm64 only)
  std::memcpy(buf + sizeof wide, narrow, sizeof narrow);
  v.append(buf, sizeof buf);
}

PeriodStats read_stats(codec::Reader& r) {
  PeriodStats s;
  s.orders_store = r.le<std::int64_t>();
  s.orders_proxy = r.le<std::int64_t>();
  s.sell_in = Fen{r.le<std::int64_t>()};
  s.sell_through = Quantity{r.le<std::int64_t>()};
  s.sell_through_value = Fen{r.le<std::int64_t>()};
  s.sell_through_unpriced = Quantity{r.le<std::int64_t>()};
  s.active_stores = r.le<std::int64_t>();
  s.ratings = r.le<std::int64_t>();
  s.rating_sum = r.le<std::int64_t>();
  s.trainings = r.le<std::int64_t>();
  s.attainment_bp = r.le<std::int64_t>();
  s.target = Fen{r.le<std::int64_t>()};
  s.tier = r.le<std::int32_t>();
  s.rebate_bp = r.le<std::int32_t>();
  s.history_rows = r.le<std::uint32_t>();
  return s;
}

void put_history(std::string& v, const RebateHistoryRow& h) {
  codec::put_le<std::uint64_t>(v, h.event.hi);
  codec::put_le<std::uint64_t>(v, h.event.lo);
  codec::put_le<std::int64_t>(v, h.occurred_at.value);
  codec::put_le<std::uint8_t>(v, static_cast<std::uint8_t>(h.cause));
  for (std::int32_t n : {h.old_tier, h.new_tier, h.old_rebate_bp, h.new_rebate_bp}) codec::put_le<std::int32_t>(v, n);
  for (Fen f : {h.sell_in, h.target, h.delta}) codec::put_le<std::int64_t>(v, f.value);
  codec::put_text(v, h.reason);
}

void party_period_key(std::string& k, PartyPeriod pp) {
  codec::put_be<std::uint64_t>(k, pp.party.value);
  codec::put_be<std::uint16_t>(k, pp.period.code);
}

// Days since 1970-01-01 → (year, month), H. Hinnant's civil_from_days.
std::pair<int, int> year_month(std::int64_t epoch_day) {
  const std::int64_t z = epoch_day + 719'468;
  const std::int64_t era = (z >= 0 ? z : z - 146'096) / 146'097;
  const std::int64_t doe = z - era * 146'097;
  const std::int64_t yoe = (doe - doe / 1460 + doe / 36'524 - doe / 146'096) / 365;
  const std::int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const std::int64_t mp = (5 * doy + 2) / 153;
  const int m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  return {static_cast<int>(yoe + era * 400 + (m <= 2 ? 1 : 0)), m};
}

}  // namespace

std::string Period::text() const {
  if (is_quarter()) return fmt::format("{:04}-Q{}", year(), code % 16 - 12);
  return fmt::format("{:04}-{:02}", year(), code % 16);
}

std::optional<Period> parse_period(std::string_view p) {
  auto digits = [&](std::size_t from, std::size_t n) {
    for (std::size_t i = from; i < from + n; ++i) {
      if (p[i] < '0' || p[i] > '9') return false;
    }
    return true;
  };
  if (p.size() != 7 || !digits(0, 4) || p[4] != '-' || p.substr(0, 2) != "20") return std::nullopt;
  const int year = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
  if (p[5] == 'Q') {
    if (p[6] < '1' || p[6] > '4') return std::nullopt;
    return Period::quarter(year, p[6] - '0');
  }
  if (!digits(5, 2)) return std::nullopt;
  const int month = (p[5] - '0') * 10 + (p[6] - '0');
  if (month < 1 || month > 12) return std::nullopt;
  return Period::month(year, month);
}

Period month_of(TimeMs t) {
  constexpr std::int64_t kDayMs = 86'400'000;
  const std::int64_t day = t.value >= 0 ? t.value / kDayMs : (t.value - kDayMs + 1) / kDayMs;
  const auto [y, m] = year_month(day);
  return Period::month(y, m);
}

bool ChannelLedger::is_channel_tag(char tag) {
  return tag == kPartyTag || tag == kTargetTag || tag == kMoneyTag || tag == kHistoryTag || tag == kAssignmentTag;
}

// ---- reads ----

const PartyInfo* ChannelLedger::party(PartyId id) const {
  auto it = parties_.find(id);
  return it == parties_.end() ? nullptr : &it->second.value;
}

std::optional<PartyId> ChannelLedger::distributor_of(LocationId store) const {
  auto it = assignments_.find(store);
  if (it == assignments_.end()) return std::nullopt;
  return it->second.value;
}

const PeriodStats* ChannelLedger::stats(PartyPeriod k) const {
  auto it = stats_.find(k);
  return it == stats_.end() ? nullptr : &it->second.value;
}

Fen ChannelLedger::balance(const MoneyAccount& a) const {
  auto it = money_.find(a);
  return it == money_.end() ? Fen{0} : it->second.value;
}

Fen ChannelLedger::outstanding(PartyPeriod k) const {
  return Fen{balance(MoneyAccount{k.party, k.period, MoneyBucket::rebate_accrued}).value +
             balance(MoneyAccount{k.party, k.period, MoneyBucket::rebate_adjusted}).value +
             balance(MoneyAccount{k.party, k.period, MoneyBucket::rebate_settled}).value};
}

Fen ChannelLedger::money_sum() const { return money_sum_; }

const std::vector<RebateHistoryRow>* ChannelLedger::history(PartyPeriod k) const {
  auto it = history_.find(k);
  return it == history_.end() ? nullptr : &it->second;
}

StoreConflict ChannelLedger::conflict(const std::pair<LocationId, PartyId>& k, const Entry<ConflictState>& e) {
  return StoreConflict{k.first, e.value.assigned, k.second, e.value.first_claim, e.value.last_claim, e.value.claims};
}

// ---- entries, dirty marks, digest ----

bool ChannelLedger::encode(const DirtyRef& d, std::string& key, std::string& value) const {
  key.clear();
  value.clear();
  const PartyPeriod pp{PartyId{d.a}, Period{d.period}};
  switch (d.kind) {
    case Kind::party: {
      const PartyInfo& p = parties_.at(PartyId{d.a}).value;
      key.push_back(kPartyTag);
      codec::put_be<std::uint64_t>(key, d.a);
      codec::put_le<std::uint8_t>(value, static_cast<std::uint8_t>(p.kind));
      codec::put_le<std::uint64_t>(value, p.parent.value);
      codec::put_le<std::uint64_t>(value, p.location.value);
      for (const std::string* s : {&p.name, &p.region, &p.industry}) codec::put_text(value, *s);
      return true;
    }
    case Kind::assignment:
      key.push_back(kAssignmentTag);
      codec::put_be<std::uint8_t>(key, kAssignmentSub);
      codec::put_be<std::uint64_t>(key, d.a);
      codec::put_le<std::uint64_t>(value, assignments_.at(LocationId{d.a}).value.value);
      return true;
    case Kind::conflict: {
      const ConflictState& c = conflicts_.at({LocationId{d.a}, PartyId{d.b}}).value;
      key.push_back(kAssignmentTag);
      codec::put_be<std::uint8_t>(key, kConflictSub);
      codec::put_be<std::uint64_t>(key, d.a);
      codec::put_be<std::uint64_t>(key, d.b);
      codec::put_le<std::uint64_t>(value, c.assigned.value);
      codec::put_le<std::int64_t>(value, c.first_claim.value);
      codec::put_le<std::int64_t>(value, c.last_claim.value);
      codec::put_le<std::uint32_t>(value, c.claims);
      return true;
    }
    case Kind::target:
      key.push_back(kTargetTag);
      codec::put_be<std::uint8_t>(key, kTargetSub);
      party_period_key(key, pp);
      codec::put_le<std::int64_t>(value, targets_.at(pp).value.value);
      return true;
    case Kind::policy: {
      const auto& tiers = policies_.at(pp).value;
      key.push_back(kTargetTag);
      codec::put_be<std::uint8_t>(key, kPolicySub);
      party_period_key(key, pp);
      codec::put_le<std::uint32_t>(value, static_cast<std::uint32_t>(tiers.size()));
      for (const RebateTierBp& t : tiers) {
        codec::put_le<std::int32_t>(value, t.attainment_bp);
        codec::put_le<std::int32_t>(value, t.rebate_bp);
      }
      return true;
    }
    case Kind::price: {
      const Price& p = prices_.at(SkuId{d.a}).value;
      key.push_back(kTargetTag);
      codec::put_be<std::uint8_t>(key, kPriceSub);
      codec::put_be<std::uint64_t>(key, d.a);
      codec::put_le<std::int64_t>(value, p.list.value);
      codec::put_le<std::int64_t>(value, p.agreed.value);
      codec::put_le<std::int32_t>(value, p.lead_time_days);
      // Only when set, so that a catalogue without reorder points stores (and digests) exactly what
      // it did before the field existed.
      if (p.reorder_cover_days != 0) codec::put_le<std::int32_t>(value, p.reorder_cover_days);
      return true;
    }
    case Kind::stats:
      key.push_back(kMoneyTag);
      codec::put_be<std::uint8_t>(key, kStatsSub);
      party_period_key(key, pp);
      put_stats(value, stats_.at(pp).value);
      return true;
    case Kind::money: {
      const MoneyAccount a{pp.party, pp.period, static_cast<MoneyBucket>(d.extra)};
      key.push_back(kMoneyTag);
      codec::put_be<std::uint8_t>(key, kMoneySub);
      party_period_key(key, pp);
      codec::put_be<std::uint8_t>(key, d.extra);
      codec::put_le<std::int64_t>(value, money_.at(a).value.value);
      return true;
    }
    case Kind::active:
      key.push_back(kMoneyTag);
      codec::put_be<std::uint8_t>(key, kActiveSub);
      party_period_key(key, pp);
      codec::put_be<std::uint64_t>(key, d.b);
      return true;
    case Kind::history: {
      const std::vector<RebateHistoryRow>& rows = history_.at(pp);
      assert(d.b >= 1 && d.b <= rows.size());
      key.push_back(kHistoryTag);
      party_period_key(key, pp);
      codec::put_be<std::uint32_t>(key, static_cast<std::uint32_t>(d.b));
      put_history(value, rows[d.b - 1]);
      return true;
    }
  }
  return false;
}

template <class T>
void ChannelLedger::touch(Entry<T>& e, const DirtyRef& ref) {
  // Scratch buffers kept between calls: a scan-out touches four entries, none of them allocates.
  encode(ref, key_scratch_, value_scratch_);
  const std::uint64_t h = entry_hash(key_scratch_, value_scratch_);
  digest_ += h - e.hash;
  e.hash = h;
  if (!e.dirty) {
    e.dirty = true;
    dirty_.push_back(ref);
  }
}

void ChannelLedger::changed(PartyPeriod k, Entry<PeriodStats>& e) {
  if (e.changed) return;
  e.changed = true;
  changed_periods_.push_back(k);
}

ChannelLedger::Entry<PeriodStats>& ChannelLedger::stats_entry(PartyPeriod k) { return stats_[k]; }

void ChannelLedger::touch_stats(PartyPeriod k, Entry<PeriodStats>& e) {
  if (!e.dirty) {
    e.dirty = true;
    dirty_.push_back(DirtyRef{Kind::stats, k.party.value, 0, k.period.code, 0});
  }
  changed(k, e);
}

std::uint64_t ChannelLedger::stats_hash(const DirtyRef& ref, std::string& key, std::string& value) const {
  encode(ref, key, value);
  return entry_hash(key, value);
}

std::uint64_t ChannelLedger::digest() const {
  std::uint64_t d = digest_;
  std::string key, value;  // const, so not the scratch buffers: once per commit
  for (const DirtyRef& ref : dirty_) {
    if (ref.kind != Kind::stats) continue;
    d += stats_hash(ref, key, value) - stats_.at(PartyPeriod{PartyId{ref.a}, Period{ref.period}}).hash;
  }
  return d;
}

void ChannelLedger::rehash_stats() {
  for (const DirtyRef& ref : dirty_) {
    if (ref.kind != Kind::stats) continue;
    Entry<PeriodStats>& e = stats_.at(PartyPeriod{PartyId{ref.a}, Period{ref.period}});
    const std::uint64_t h = stats_hash(ref, key_scratch_, value_scratch_);
    digest_ += h - e.hash;
    e.hash = h;
  }
}

void ChannelLedger::mark_clean() {
  rehash_stats();
  for (const DirtyRef& d : dirty_) {
    const PartyPeriod pp{PartyId{d.a}, Period{d.period}};
    switch (d.kind) {
      case Kind::party: parties_.at(PartyId{d.a}).dirty = false; break;
      case Kind::assignment: assignments_.at(LocationId{d.a}).dirty = false; break;
      case Kind::conflict: conflicts_.at({LocationId{d.a}, PartyId{d.b}}).dirty = false; break;
      case Kind::target: targets_.at(pp).dirty = false; break;
      case Kind::policy: policies_.at(pp).dirty = false; break;
      case Kind::price: prices_.at(SkuId{d.a}).dirty = false; break;
      case Kind::stats: stats_.at(pp).dirty = false; break;
      case Kind::money: money_.at(MoneyAccount{pp.party, pp.period, static_cast<MoneyBucket>(d.extra)}).dirty = false; break;
      case Kind::active: active_.at(ActiveKey{pp, LocationId{d.b}}).dirty = false; break;
      case Kind::history: break;  // rows are written once and never change
    }
  }
  dirty_.clear();
}

ChannelLedger::Changes ChannelLedger::drain_changes() {
  Changes c;
  c.parties.swap(changed_parties_);
  c.periods.swap(changed_periods_);
  for (PartyPeriod k : c.periods) stats_.at(k).changed = false;
  for (const auto& k : changed_conflicts_) c.conflicts.push_back(conflict(k, conflicts_.at(k)));
  changed_conflicts_.clear();
  c.assignments.swap(changed_assignments_);
  return c;
}

// ---- money ----

void ChannelLedger::post(const MoneyAccount& to, const MoneyAccount& from, Fen amount) {
  if (amount.value == 0) return;
  for (const auto& [account, delta] : {std::pair{to, amount.value}, std::pair{from, -amount.value}}) {
    Entry<Fen>& e = money_[account];
    e.value.value += delta;
    money_sum_.value += delta;
    touch(e, DirtyRef{Kind::money, account.party.value, 0, account.period.code, static_cast<std::uint8_t>(account.bucket)});
  }
}

void ChannelLedger::append_history(PartyPeriod k, RebateHistoryRow row) {
  std::vector<RebateHistoryRow>& rows = history_[k];
  row.seq = static_cast<std::uint32_t>(rows.size() + 1);
  rows.push_back(std::move(row));
  const DirtyRef ref{Kind::history, k.party.value, rows.size(), k.period.code, 0};
  encode(ref, key_scratch_, value_scratch_);
  digest_ += entry_hash(key_scratch_, value_scratch_);
  dirty_.push_back(ref);
  Entry<PeriodStats>& e = stats_entry(k);
  e.value.history_rows = static_cast<std::uint32_t>(rows.size());
  touch_stats(k, e);
}

Fen ChannelLedger::target_of(PartyPeriod k) const {
  if (auto it = targets_.find(k); it != targets_.end()) return it->second.value;
  if (!k.period.is_quarter()) return Fen{0};
  // A quarter without a target of its own is measured against the sum of its months' targets.
  const int first_month = (k.period.code % 16 - 13) * 3 + 1;
  Fen sum{0};
  for (int m = first_month; m < first_month + 3; ++m) {
    if (auto it = targets_.find(PartyPeriod{k.party, Period::month(k.period.year(), m)}); it != targets_.end()) {
      sum.value += it->second.value.value;
    }
  }
  return sum;
}

void ChannelLedger::recompute_rebate(const Context& c, PartyPeriod k) {
  Entry<PeriodStats>& e = stats_entry(k);
  PeriodStats& s = e.value;
  const Fen target = target_of(k);
  const std::int64_t base = std::max<std::int64_t>(0, s.sell_in.value);
  const std::int64_t attainment =
      target.value > 0 ? static_cast<std::int64_t>(static_cast<Wide>(base) * kBasisPoints / target.value) : 0;
  std::int32_t tier = 0, rate = 0;
  if (auto it = policies_.find(k); it != policies_.end()) {
    const auto& tiers = it->second.value;
    for (std::size_t i = 0; i < tiers.size(); ++i) {
      if (attainment >= tiers[i].attainment_bp) tier = static_cast<std::int32_t>(i + 1), rate = tiers[i].rebate_bp;
    }
  }
  const Fen due{static_cast<std::int64_t>(static_cast<Wide>(base) * rate / kBasisPoints)};
  const Fen delta{due.value - balance(MoneyAccount{k.party, k.period, MoneyBucket::rebate_accrued}).value};
  // Only the difference is posted: a late event that moves the tier corrects the accrual, it does
  // not re-post the period.
  post(MoneyAccount{k.party, k.period, MoneyBucket::rebate_accrued},
       MoneyAccount{kHqParty, k.period, MoneyBucket::rebate_expense}, delta);
  const bool tier_moved = tier != s.tier;
  const RebateHistoryRow row{0, c.id, c.occurred_at, c.type, s.tier, tier, s.rebate_bp, rate, s.sell_in, target, delta, {}};
  if (tier == s.tier && rate == s.rebate_bp && attainment == s.attainment_bp && target == s.target) return;
  s.tier = tier;
  s.rebate_bp = rate;
  s.attainment_bp = attainment;
  s.target = target;
  touch_stats(k, e);
  if (tier_moved) append_history(k, row);
}

// ---- events ----

std::optional<Rejection> ChannelLedger::require_party(PartyId id, const char* field, fb::PartyKind kind) const {
  const PartyInfo* p = party(id);
  if (p == nullptr) return reject(field, fmt::format("party {} is not registered on this shard", id.value));
  if (kind != fb::PartyKind::Unknown && p->kind != kind) {
    return reject(field, fmt::format("party {} is a {}, not a {}", id.value, fb::EnumNamePartyKind(p->kind),
                                     fb::EnumNamePartyKind(kind)));
  }
  return std::nullopt;
}

int ChannelLedger::chain(PartyId party, PartyId out[2]) const {
  out[0] = party;
  const PartyInfo* p = this->party(party);
  if (p == nullptr || p->parent == kHqParty || p->parent == party) return 1;
  const PartyInfo* parent = this->party(p->parent);
  if (parent == nullptr || parent->kind != fb::PartyKind::Agent) return 1;
  out[1] = p->parent;
  return 2;
}

template <class F>
void ChannelLedger::count(const Context& c, PartyId party, RollUp roll_up, F&& f) {
  PartyId parties[2];
  const int n = roll_up == RollUp::to_agent ? chain(party, parties) : (parties[0] = party, 1);
  const Period month = month_of(c.occurred_at);
  for (int i = 0; i < n; ++i) {
    for (Period p : {month, month.quarter()}) {
      const PartyPeriod k{parties[i], p};
      Entry<PeriodStats>& e = stats_entry(k);
      f(k, e.value);
      touch_stats(k, e);
    }
  }
}

std::optional<Rejection> ChannelLedger::apply(const Context&, const fb::PartyRegistered& e) {
  const PartyId id{e.party()};
  PartyInfo info{e.kind(), PartyId{e.parent()}, LocationId{e.location()}, e.name()->str(), e.region()->str(),
                 e.industry() == nullptr ? std::string() : e.industry()->str()};
  auto [it, inserted] = parties_.try_emplace(id);
  if (!inserted && it->second.value.region != info.region) {
    // The region is the shard key: a party moving regions is a shard move, not an edit.
    return reject("payload.region", fmt::format("party {} is in region \"{}\" and cannot move to \"{}\"", id.value,
                                                it->second.value.region, info.region));
  }
  if (!inserted && it->second.value == info) return std::nullopt;
  it->second.value = std::move(info);
  touch(it->second, DirtyRef{Kind::party, id.value, 0, 0, 0});
  changed_parties_.push_back(id);
  return std::nullopt;
}

std::optional<Rejection> ChannelLedger::apply(const Context& c, const fb::StoreAssigned& e, fb::LocationKind store_kind) {
  const LocationId store{e.store()};
  const PartyId distributor{e.distributor()};
  if (store_kind != fb::LocationKind::Store) {
    return Rejection{RejectReason::wrong_location_kind, "payload.store",
                     fmt::format("location {} is a {}, not a Store", store.value, fb::EnumNameLocationKind(store_kind))};
  }
  if (auto r = require_party(distributor, "payload.distributor", fb::PartyKind::Distributor)) return r;
  auto [it, inserted] = assignments_.try_emplace(store);
  if (inserted) {
    it->second.value = distributor;
    touch(it->second, DirtyRef{Kind::assignment, store.value, 0, 0, 0});
    changed_assignments_.emplace_back(store, distributor);
    return std::nullopt;
  }
  if (it->second.value == distributor) return std::nullopt;
  // A second distributor claiming a store is a conflict to resolve, never a silent overwrite.
  const std::pair<LocationId, PartyId> k{store, distributor};
  auto [cit, first] = conflicts_.try_emplace(k);
  ConflictState& s = cit->second.value;
  if (first) s.first_claim = c.occurred_at;
  s.assigned = it->second.value;
  s.last_claim = std::max(s.last_claim, c.occurred_at);
  ++s.claims;
  touch(cit->second, DirtyRef{Kind::conflict, store.value, distributor.value, 0, 0});
  changed_conflicts_.push_back(k);
  return std::nullopt;
}

std::optional<Rejection> ChannelLedger::apply(const Context& c, const fb::TargetSet& e) {
  const PartyId id{e.party()};
  if (auto r = require_party(id, "payload.party")) return r;
  const Period period = *parse_period(e.period()->string_view());  // decode checked it
  const PartyPeriod k{id, period};
  Entry<Fen>& t = targets_[k];
  t.value = Fen{e.amount_fen()};
  touch(t, DirtyRef{Kind::target, id.value, 0, period.code, 0});
  recompute_rebate(c, k);
  if (!period.is_quarter()) recompute_rebate(c, PartyPeriod{id, period.quarter()});
  return std::nullopt;
}

std::optional<Rejection> ChannelLedger::apply(const Context& c, const fb::RebatePolicySet& e) {
  const PartyId id{e.party()};
  if (auto r = require_party(id, "payload.party")) return r;
  const Period period = *parse_period(e.period()->string_view());
  const PartyPeriod k{id, period};
  Entry<std::vector<RebateTierBp>>& p = policies_[k];
  p.value.clear();
  for (const fb::RebateTier* t : *e.tiers()) {
    if (p.value.size() == kPolicyTiersMax) break;
    p.value.push_back(RebateTierBp{t->attainment_bp(), t->rebate_bp()});
  }
  touch(p, DirtyRef{Kind::policy, id.value, 0, period.code, 0});
  recompute_rebate(c, k);
  return std::nullopt;
}

std::optional<Rejection> ChannelLedger::apply(const Context& c, const fb::RebateAdjusted& e) {
  const PartyId id{e.party()};
  if (auto r = require_party(id, "payload.party")) return r;
  const Period period = *parse_period(e.period()->string_view());
  const PartyPeriod k{id, period};
  const Fen amount{e.amount_fen()};
  post(MoneyAccount{id, period, MoneyBucket::rebate_adjusted}, MoneyAccount{kHqParty, period, MoneyBucket::adjustment_expense},
       amount);
  const PeriodStats& s = stats_entry(k).value;
  append_history(k, RebateHistoryRow{0, c.id, c.occurred_at, c.type, s.tier, s.tier, s.rebate_bp, s.rebate_bp, s.sell_in,
                                     s.target, amount, e.reason()->str()});
  return std::nullopt;
}

std::optional<Rejection> ChannelLedger::apply(const Context& c, const fb::RebateSettled& e) {
  const PartyId id{e.party()};
  if (auto r = require_party(id, "payload.party")) return r;
  const Period period = *parse_period(e.period()->string_view());
  const PartyPeriod k{id, period};
  const Fen amount{e.amount_fen()};
  const Fen owed = outstanding(k);
  if (amount > owed) {
    const Fen settled{-balance(MoneyAccount{id, period, MoneyBucket::rebate_settled}).value};
    return Rejection{RejectReason::exceeds_outstanding, "payload.amount_fen",
                     fmt::format("must be at most the {} fen outstanding to party {} for {} (accrued {} + adjusted {} - "
                                 "settled {}), got {}",
                                 owed.value, id.value, period.text(),
                                 balance(MoneyAccount{id, period, MoneyBucket::rebate_accrued}).value,
                                 balance(MoneyAccount{id, period, MoneyBucket::rebate_adjusted}).value, settled.value,
                                 amount.value)};
  }
  post(MoneyAccount{kHqParty, period, MoneyBucket::rebate_paid}, MoneyAccount{id, period, MoneyBucket::rebate_settled},
       amount);
  const PeriodStats& s = stats_entry(k).value;
  append_history(k, RebateHistoryRow{0, c.id, c.occurred_at, c.type, s.tier, s.tier, s.rebate_bp, s.rebate_bp, s.sell_in,
                                     s.target, Fen{-amount.value}, e.payment_reference()->str()});
  return std::nullopt;
}

std::optional<Rejection> ChannelLedger::apply(const Context& c, const fb::FeedbackRecorded& e) {
  const PartyId id{e.distributor()};
  if (auto r = require_party(id, "payload.distributor")) return r;
  count(c, id, RollUp::to_agent, [&](PartyPeriod, PeriodStats& s) {
    ++s.ratings;
    s.rating_sum += e.rating();
  });
  return std::nullopt;
}

std::optional<Rejection> ChannelLedger::apply(const Context& c, const fb::TrainingCompleted& e) {
  const PartyId id{e.party()};
  if (auto r = require_party(id, "payload.party")) return r;
  count(c, id, RollUp::none, [](PartyPeriod, PeriodStats& s) { ++s.trainings; });
  return std::nullopt;
}

void ChannelLedger::apply(const fb::SkuDefined& e) {
  Entry<Price>& p = prices_[SkuId{e.sku()}];
  const auto lead_time_days = static_cast<std::int32_t>(e.production_lead_time_days());
  const auto reorder_cover_days = static_cast<std::int32_t>(e.reorder_cover_days());
  if (p.value.list.value == e.list_price_fen() && p.value.lead_time_days == lead_time_days &&
      p.value.reorder_cover_days == reorder_cover_days && p.hash != 0) {
    return;
  }
  p.value.list = Fen{e.list_price_fen()};
  p.value.lead_time_days = lead_time_days;
  p.value.reorder_cover_days = reorder_cover_days;
  touch(p, DirtyRef{Kind::price, e.sku(), 0, 0, 0});
}

void ChannelLedger::order_placed(const Context& c, LocationId store, PartyId placed_by, const fb::OrderPlaced& e) {
  for (const fb::OrderLine* l : *e.lines()) {
    Entry<Price>& p = prices_[SkuId{l->sku()}];
    if (p.value.agreed.value == l->unit_price_fen() && p.hash != 0) continue;
    p.value.agreed = Fen{l->unit_price_fen()};
    touch(p, DirtyRef{Kind::price, l->sku(), 0, 0, 0});
  }
  // 代下单: placed by a distributor for the store; otherwise the store's own order, which counts for
  // the distributor it is assigned to.
  const PartyInfo* placer = party(placed_by);
  const bool proxy = placer != nullptr && placer->kind == fb::PartyKind::Distributor;
  std::optional<PartyId> owner = proxy ? std::optional(placed_by) : distributor_of(store);
  if (!owner) return;
  count(c, *owner, RollUp::to_agent, [&](PartyPeriod, PeriodStats& s) { ++(proxy ? s.orders_proxy : s.orders_store); });
}

void ChannelLedger::paid(const Context& c, LocationId store, Fen amount) {
  const std::optional<PartyId> owner = distributor_of(store);
  if (!owner || amount.value == 0) return;
  count(c, *owner, RollUp::to_agent, [&](PartyPeriod, PeriodStats& s) { s.sell_in.value += amount.value; });
  PartyId parties[2];
  const int n = chain(*owner, parties);
  const Period month = month_of(c.occurred_at);
  for (int i = 0; i < n; ++i) {
    for (Period p : {month, month.quarter()}) recompute_rebate(c, PartyPeriod{parties[i], p});
  }
}

void ChannelLedger::scanned_out(const Context& c, LocationId store, SkuId sku, Quantity qty) {
  const std::optional<PartyId> owner = distributor_of(store);
  if (!owner) return;
  Fen price{0};
  if (auto it = prices_.find(sku); it != prices_.end()) {
    price = it->second.value.list.value > 0 ? it->second.value.list : it->second.value.agreed;
  }
  count(c, *owner, RollUp::to_agent, [&](PartyPeriod k, PeriodStats& s) {
    s.sell_through.value += qty.value;
    if (price.value > 0) s.sell_through_value.value += qty.value * price.value;
    else s.sell_through_unpriced.value += qty.value;
    auto [a, first_sale] = active_.try_emplace(ActiveKey{k, store});
    if (first_sale) {
      ++s.active_stores;
      touch(a->second, DirtyRef{Kind::active, k.party.value, store.value, k.period.code, 0});
    }
  });
}

// ---- load ----

bool ChannelLedger::restore(std::string_view key, std::string_view value) {
  if (key.empty()) return false;
  codec::Reader k(key.substr(1));
  codec::Reader v(value);
  const std::uint64_t h = entry_hash(key, value);
  auto read_pp = [&] {
    const PartyId party{k.be<std::uint64_t>()};
    return PartyPeriod{party, Period{k.be<std::uint16_t>()}};
  };
  auto restore_entry = [&](auto& e, auto&& v_) {
    e.value = std::move(v_);
    e.hash = h;
  };
  switch (key[0]) {
    case kPartyTag: {
      const PartyId id{k.be<std::uint64_t>()};
      PartyInfo p;
      p.kind = static_cast<fb::PartyKind>(v.le<std::uint8_t>());
      p.parent = PartyId{v.le<std::uint64_t>()};
      p.location = LocationId{v.le<std::uint64_t>()};
      p.name = v.text();
      p.region = v.text();
      p.industry = v.text();
      restore_entry(parties_[id], std::move(p));
      break;
    }
    case kAssignmentTag: {
      const auto sub = k.be<std::uint8_t>();
      const LocationId store{k.be<std::uint64_t>()};
      if (sub == kAssignmentSub) {
        restore_entry(assignments_[store], PartyId{v.le<std::uint64_t>()});
      } else if (sub == kConflictSub) {
        const PartyId claimant{k.be<std::uint64_t>()};
        ConflictState s;
        s.assigned = PartyId{v.le<std::uint64_t>()};
        s.first_claim = TimeMs{v.le<std::int64_t>()};
        s.last_claim = TimeMs{v.le<std::int64_t>()};
        s.claims = v.le<std::uint32_t>();
        restore_entry(conflicts_[{store, claimant}], s);
      } else {
        return false;
      }
      break;
    }
    case kTargetTag: {
      const auto sub = k.be<std::uint8_t>();
      if (sub == kPriceSub) {
        const SkuId sku{k.be<std::uint64_t>()};
        Price p;
        p.list = Fen{v.le<std::int64_t>()};
        p.agreed = Fen{v.le<std::int64_t>()};
        // A store written before lead times were kept has none: the sku is planned once redefined.
        if (!v.empty()) p.lead_time_days = v.le<std::int32_t>();
        if (!v.empty()) p.reorder_cover_days = v.le<std::int32_t>();  // absent: none (or an older store)
        restore_entry(prices_[sku], p);
        break;
      }
      const PartyPeriod pp = read_pp();
      if (sub == kTargetSub) {
        restore_entry(targets_[pp], Fen{v.le<std::int64_t>()});
      } else if (sub == kPolicySub) {
        std::vector<RebateTierBp> tiers(std::min<std::size_t>(v.le<std::uint32_t>(), kPolicyTiersMax));
        for (RebateTierBp& t : tiers) {
          t.attainment_bp = v.le<std::int32_t>();
          t.rebate_bp = v.le<std::int32_t>();
        }
        restore_entry(policies_[pp], std::move(tiers));
      } else {
        return false;
      }
      break;
    }
    case kMoneyTag: {
      const auto sub = k.be<std::uint8_t>();
      const PartyPeriod pp = read_pp();
      if (sub == kStatsSub) {
        restore_entry(stats_[pp], read_stats(v));
      } else if (sub == kMoneySub) {
        const auto bucket = static_cast<MoneyBucket>(k.be<std::uint8_t>());
        const Fen f{v.le<std::int64_t>()};
        money_sum_.value += f.value;
        restore_entry(money_[MoneyAccount{pp.party, pp.period, bucket}], f);
      } else if (sub == kActiveSub) {
        restore_entry(active_[ActiveKey{pp, LocationId{k.be<std::uint64_t>()}}], char{1});
      } else {
        return false;
      }
      break;
    }
    case kHistoryTag: {
      const PartyPeriod pp = read_pp();
      RebateHistoryRow r;
      r.seq = k.be<std::uint32_t>();
      r.event.hi = v.le<std::uint64_t>();
      r.event.lo = v.le<std::uint64_t>();
      r.occurred_at = TimeMs{v.le<std::int64_t>()};
      r.cause = static_cast<fb::Payload>(v.le<std::uint8_t>());
      r.old_tier = v.le<std::int32_t>();
      r.new_tier = v.le<std::int32_t>();
      r.old_rebate_bp = v.le<std::int32_t>();
      r.new_rebate_bp = v.le<std::int32_t>();
      r.sell_in = Fen{v.le<std::int64_t>()};
      r.target = Fen{v.le<std::int64_t>()};
      r.delta = Fen{v.le<std::int64_t>()};
      r.reason = v.text();
      std::vector<RebateHistoryRow>& rows = history_[pp];
      // Keys sort by seq, so rows arrive in order.
      if (r.seq != rows.size() + 1) return false;
      rows.push_back(std::move(r));
      break;
    }
    default:
      return false;
  }
  if (!k.ok() || !v.ok() || !k.empty()) return false;
  digest_ += h;
  return true;
}

}  // namespace qudao
