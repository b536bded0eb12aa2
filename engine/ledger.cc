#include "engine/ledger.h"

#include <xxhash.h>

#include <cassert>
#include <cstdio>
#include <cstdlib>
#include <algorithm>
#include <cstring>

#include "engine/codec.h"

namespace qudao {

Quantity Shard::balance(const Account& a) const {
  if (const int slot = stock_slot(a.bucket); slot >= 0) {
    auto it = stock_.find(PairKey{a.sku, a.location});
    return Quantity{it == stock_.end() ? 0 : it->second.qty[slot]};
  }
  auto it = virtual_.find(a);
  return Quantity{it == virtual_.end() ? 0 : it->second.qty};
}

const LocationInfo* Shard::location(LocationId id) const {
  auto it = locations_.find(id);
  return it == locations_.end() ? nullptr : &it->second.info;
}

std::uint64_t Shard::balance_hash(const Account& a, std::int64_t qty) const {
  if (qty == 0) return 0;  // an account at zero is the same as no account
  unsigned char buf[4 + 8 + 8 + 1 + 8];
  unsigned char* p = buf;
  std::memcpy(p, &partition_.value, 4), p += 4;
  std::memcpy(p, &a.sku.value, 8), p += 8;
  std::memcpy(p, &a.location.value, 8), p += 8;
  *p++ = static_cast<unsigned char>(a.bucket);
  std::memcpy(p, &qty, 8);
  return XXH3_64bits(buf, sizeof buf);
}

std::uint64_t Shard::location_hash(LocationId id, const LocationInfo& info) const {
  std::string buf;
  codec::put_le<std::int32_t>(buf, partition_.value);
  codec::put_le<std::uint64_t>(buf, id.value);
  codec::put_le<std::uint8_t>(buf, static_cast<std::uint8_t>(info.kind));
  for (const std::string* s : {&info.name, &info.city, &info.region}) codec::put_text(buf, *s);
  return XXH3_64bits(buf.data(), buf.size());
}

void Shard::record_applied(Offset offset, Anomaly anomaly) {
  assert(offset >= next_offset_ && "records are applied in offset order, once");
  next_offset_ = Offset{offset.value + 1};
  ++counts_.consumed;
  ++counts_.applied;
  if (anomaly == Anomaly::flagged) ++counts_.anomalies;
  header_dirty_ = true;
}

void Shard::record_rejected(Offset offset, Rejection rejection, std::string bytes, std::string_view key) {
  assert(offset >= next_offset_ && "records are applied in offset order, once");
  next_offset_ = Offset{offset.value + 1};
  ++counts_.consumed;
  ++counts_.rejected;
  // The dead-letter topic gets the original bytes with the reason in headers; the store keeps its
  // own copy for listing (the D keys).
  emit(OutboxTopic::dead_letters, std::to_string(partition_.value), bytes,
       {{"qudao-reason", reason_name(rejection.reason)},
        {"qudao-field", rejection.field},
        {"qudao-message", rejection.message},
        {"qudao-source-offset", std::to_string(offset.value)},
        {"qudao-source-key", std::string(key)}});
  dead_letters_.push_back(DeadLetter{offset, std::move(rejection), std::move(bytes)});
  header_dirty_ = true;
}

void Shard::record_duplicate(Offset offset) {
  assert(offset >= next_offset_ && "records are applied in offset order, once");
  next_offset_ = Offset{offset.value + 1};
  ++counts_.consumed;
  ++counts_.duplicates;
  header_dirty_ = true;
}

Seen Shard::seen(const EventId& id, std::uint64_t bytes_hash) const {
  const std::optional<SeenEvent> e = window_.find(id);
  if (!e) return Seen::new_event;
  return e->bytes_hash == bytes_hash ? Seen::duplicate : Seen::conflict;
}

void Shard::remember(const EventId& id, std::uint64_t bytes_hash) {
  const bool added = window_.push(id, bytes_hash);
  assert(added && "only new events are remembered");
  (void)added;
  seen_pending_.emplace_back(id, bytes_hash);
}

std::vector<std::uint64_t> Shard::expired_seen_segments() const {
  const std::uint64_t oldest = seen_oldest_seq();
  std::vector<std::uint64_t> out;
  for (const auto& [first, last] : seen_segments_) {
    if (last >= oldest) break;
    out.push_back(first);
  }
  return out;
}

void Shard::restore_seen_segment(std::uint64_t first_seq, std::span<const std::pair<EventId, std::uint64_t>> entries) {
  window_.continue_at(first_seq);
  for (const auto& [id, bytes_hash] : entries) (void)window_.push(id, bytes_hash);  // an id may recur (see push)
  if (!entries.empty()) seen_segments_.emplace_back(first_seq, first_seq + entries.size() - 1);
}

void Shard::finish_restore() {
  // Exactly the stored window: a segment may still hold ids that had left it before the commit. (A
  // smaller window than the stored one has kept the newest ids; the next commit deletes the rest.)
  window_.drop_older_than(restored_seen_oldest_seq_);
}

Shard::DirtyBalances Shard::take_dirty_balances() {
  DirtyBalances out;
  out.pairs.reserve(dirty_balances_.size());
  const std::size_t n = dirty_balances_.size();
  for (std::size_t i = 0; i < n; ++i) {
    if (i + kPrefetchAheadKeys < n) prefetch_balance(dirty_balances_[i + kPrefetchAheadKeys]);
    const Account& a = dirty_balances_[i];
    if (stock_slot(a.bucket) >= 0) {
      StockEntry& e = stock_.find(PairKey{a.sku, a.location})->second;
      if (e.dirty == 0) continue;  // taken with another bucket of its pair
      out.pairs.push_back(DirtyPair{a.sku, a.location, {e.qty[0], e.qty[1], e.qty[2]}, e.exists, e.legacy,
                                    Day{e.changed_day}});
      e.dirty = 0, e.legacy = 0;
    } else {
      BalanceEntry& e = virtual_.find(a)->second;
      e.dirty = false;
      out.accounts.push_back(DirtyBalance{a, e.qty});
    }
  }
  dirty_balances_.clear();
  release_if_large(dirty_balances_);
  return out;
}

void Shard::prefetch_balance(const Account& a) const {
  if (stock_slot(a.bucket) >= 0) stock_.prefetch(PairKey{a.sku, a.location});
  else virtual_.prefetch(a);
}

Quantity Shard::post(const Posting& p) {
  const int slot = stock_slot(p.account.bucket);
  if (slot < 0) {
    BalanceEntry& e = virtual_[p.account];
    const Quantity before{e.qty};
    digest_ -= balance_hash(p.account, e.qty);
    e.qty += p.delta.value;
    digest_ += balance_hash(p.account, e.qty);
    if (!e.dirty) {
      e.dirty = true;
      dirty_balances_.push_back(p.account);
    }
    return before;
  }
  StockEntry& e = stock_[PairKey{p.account.sku, p.account.location}];
  const auto bit = static_cast<std::uint8_t>(1u << slot);
  const Quantity before{e.qty[slot]};
  digest_ -= balance_hash(p.account, e.qty[slot]);
  e.qty[slot] += p.delta.value;
  digest_ += balance_hash(p.account, e.qty[slot]);
  e.exists |= bit;
  if (!(e.dirty & bit)) {
    e.dirty |= bit;
    dirty_balances_.push_back(p.account);
  }
  if (p.account.location != kVirtualLocation) e.changed_day = today_.value;
  return before;
}

void Shard::close_changed() {
  // One linear pass over the pairs, not a list of those changed today: the list cost 16 bytes per
  // pair changed in the day (a bulk load changes every pair), the pass a few ms per million pairs
  // once a shard day. Each pair is closed at most once, so each row has its own key and the order
  // of the rows (the map's) cannot change what the store holds.
  const Day day = today_;
  for (const auto& [k, e] : stock_) {
    if (e.changed_day != day.value) continue;
    history_.record_closing(Closing{day, k.location, k.sku, ClosingLevels{e.qty[0] + e.qty[1], e.qty[1], e.qty[2]}});
  }
}

namespace {
bool is_warehouse(fb::LocationKind k) { return k == fb::LocationKind::Warehouse || k == fb::LocationKind::SubWarehouse; }
void insert_sorted(std::vector<LocationId>& v, LocationId id) {
  auto it = std::lower_bound(v.begin(), v.end(), id);
  if (it == v.end() || *it != id) v.insert(it, id);
}
void erase_sorted(std::vector<LocationId>& v, LocationId id) {
  auto it = std::lower_bound(v.begin(), v.end(), id);
  if (it != v.end() && *it == id) v.erase(it);
}
}  // namespace

void Shard::index_warehouse(LocationId id, const LocationInfo* old, const LocationInfo& info) {
  if (old != nullptr && is_warehouse(old->kind)) {
    erase_sorted(warehouses_by_city_[old->city], id);
    if (old->kind == fb::LocationKind::Warehouse) erase_sorted(hq_warehouses_, id);
  }
  if (is_warehouse(info.kind)) insert_sorted(warehouses_by_city_[info.city], id);
  if (info.kind == fb::LocationKind::Warehouse) insert_sorted(hq_warehouses_, id);
}

std::span<const LocationId> Shard::warehouses_in(const std::string& city) const {
  auto it = warehouses_by_city_.find(city);
  if (it == warehouses_by_city_.end()) return {};
  return it->second;
}

void Shard::emit(OutboxTopic topic, std::string key, std::string value,
                 std::vector<std::pair<std::string, std::string>> headers) {
  outbox_pending_.push_back(OutboxRow{outbox_next_seq_++, topic, std::move(key), std::move(value), std::move(headers), 0});
  header_dirty_ = true;
}

void Shard::mark_relayed(std::uint64_t through_seq) {
  if (relayed_through_ && *relayed_through_ >= through_seq) return;
  relayed_through_ = through_seq;
  relayed_dirty_ = true;
}

void Shard::define_location(LocationId id, LocationInfo info) {
  LocationEntry& e = locations_[id];
  index_warehouse(id, e.info.kind == fb::LocationKind::Unknown ? nullptr : &e.info, info);
  if (e.info.kind != fb::LocationKind::Unknown) digest_ -= location_hash(id, e.info);
  e.info = std::move(info);
  digest_ += location_hash(id, e.info);
  if (!e.dirty) {
    e.dirty = true;
    dirty_locations_.push_back(id);
  }
}

std::uint64_t Shard::order_hash(OrderId id, const Order& o) {
  std::string& buf = hash_scratch_;
  buf.assign(1, 'O');
  codec::put_le<std::int32_t>(buf, partition_.value);
  codec::put_le<std::uint64_t>(buf, id.value);
  encode_to(buf, o);
  return XXH3_64bits(buf.data(), buf.size());
}

std::uint64_t Shard::shipment_hash(ShipmentId id, const Shipment& s) {
  std::string& buf = hash_scratch_;
  buf.assign(1, 'S');
  codec::put_le<std::int32_t>(buf, partition_.value);
  codec::put_le<std::uint64_t>(buf, id.value);
  encode_to(buf, s);
  return XXH3_64bits(buf.data(), buf.size());
}

namespace {
bool expires(const Order& o) { return o.state == OrderState::placed && o.proxy() && o.deadline.value > 0; }
// Ended: no event changes it again (engine/eviction.h).
bool ended(const Order& o) {
  return o.state == OrderState::received || o.state == OrderState::cancelled || o.state == OrderState::expired;
}
bool ended(const Shipment& s) { return s.received || s.handed_over; }
[[noreturn]] void missing_evicted(const char* what, PartitionId p, std::uint64_t id) {
  std::fprintf(stderr, "qudao: partition %d: evicted %s %llu is not in the store (corrupt state)\n", p.value, what,
               static_cast<unsigned long long>(id));
  std::abort();
}
}  // namespace

const Order* Shard::order(OrderId id) const {
  auto it = orders_.find(id);
  assert(it != orders_.end() || !evicted_orders_.contains(id));
  return it == orders_.end() ? nullptr : &it->second.order;
}

const Order* Shard::order(OrderId id) {
  if (auto it = orders_.find(id); it != orders_.end()) return &it->second.order;
  if (!evicted_orders_.contains(id)) return nullptr;  // a new id: no read
  std::optional<Order> o = cold_->read_order(partition_, id);
  if (!o) missing_evicted("order", partition_, id.value);
  evicted_orders_.erase(id);
  ++eviction_counts_.orders_reloaded;
  ended_orders_.emplace_back(id, 0);  // durable as read: it may leave again
  OrderEntry& e = orders_[id];
  e.order = std::move(*o);
  return &e.order;
}

void Shard::put_order(OrderId id, Order o) {
  assert(!evicted_orders_.contains(id) && "an evicted order is looked up (and so read back) before it is put");
  auto [it, inserted] = orders_.try_emplace(id);
  OrderEntry& e = it->second;
  if (!inserted) {
    digest_ -= order_hash(id, e.order);
    if (expires(e.order)) expiry_.erase({e.order.deadline.value, id.value});
  }
  e.order = std::move(o);
  digest_ += order_hash(id, e.order);
  if (expires(e.order)) expiry_.insert({e.order.deadline.value, id.value});
  if (!e.dirty) {
    e.dirty = true;
    dirty_orders_.push_back(id);
  }
  if (!e.undrained) {
    e.undrained = true;
    order_changes_.push_back(id);
  }
}

const Shipment* Shard::shipment(ShipmentId id) const {
  auto it = shipments_.find(id);
  assert(it != shipments_.end() || !evicted_shipments_.contains(id));
  return it == shipments_.end() ? nullptr : &it->second.shipment;
}

const Shipment* Shard::shipment(ShipmentId id) {
  if (auto it = shipments_.find(id); it != shipments_.end()) return &it->second.shipment;
  if (!evicted_shipments_.contains(id)) return nullptr;
  std::optional<Shipment> s = cold_->read_shipment(partition_, id);
  if (!s) missing_evicted("shipment", partition_, id.value);
  evicted_shipments_.erase(id);
  ++eviction_counts_.shipments_reloaded;
  ended_shipments_.emplace_back(id, 0);
  ShipmentEntry& e = shipments_[id];
  e.shipment = std::move(*s);
  return &e.shipment;
}

void Shard::set_eviction(const EvictionPolicy& policy, ColdReader* cold) {
  eviction_ = policy;
  cold_ = cold;
  ended_orders_.clear();
  ended_shipments_.clear();
  if (!evicting()) return;
  std::vector<OrderId> orders;
  for (const auto& [id, e] : orders_) if (!e.dirty && ended(e.order)) orders.push_back(id);
  std::sort(orders.begin(), orders.end());
  for (OrderId id : orders) ended_orders_.emplace_back(id, 0);
  std::vector<ShipmentId> shipments;
  for (const auto& [id, e] : shipments_) if (!e.dirty && ended(e.shipment)) shipments.push_back(id);
  std::sort(shipments.begin(), shipments.end());
  for (ShipmentId id : shipments) ended_shipments_.emplace_back(id, 0);
}

template <class Map, class Id>
void Shard::evict_oldest(Map& entries, std::deque<std::pair<Id, std::uint64_t>>& ended_ids,
                         absl::flat_hash_set<Id>& evicted, std::uint64_t& count) {
  const std::size_t before = entries.size();
  while (ended_ids.size() > eviction_.terminal_kept_max) {
    const auto [id, commit] = ended_ids.front();
    if (commit >= commits_) break;  // written by the commit being prepared: not durable yet
    if (auto it = entries.find(id); it != entries.end()) {
      if (it->second.undrained) break;  // the order projection has not seen its last change yet
      // Written by the commit being prepared (changed after a read back): not durable yet, and
      // queued again below with this commit.
      if (!it->second.dirty) {
        entries.erase(it);
        evicted.insert(id);
        ++count;
      }
    }
    ended_ids.pop_front();
  }
  if (entries.size() < before && entries.capacity() > kShrinkSlotsMin &&
      entries.capacity() > kShrinkSlotsPerEntry * entries.size()) {
    entries.rehash(0);
  }
}

void Shard::put_shipment(ShipmentId id, Shipment s) {
  assert(!evicted_shipments_.contains(id) && "an evicted shipment is looked up (and so read back) before it is put");
  auto [it, inserted] = shipments_.try_emplace(id);
  ShipmentEntry& e = it->second;
  if (!inserted) digest_ -= shipment_hash(id, e.shipment);
  e.shipment = std::move(s);
  digest_ += shipment_hash(id, e.shipment);
  if (!e.dirty) {
    e.dirty = true;
    dirty_shipments_.push_back(id);
  }
  if (!e.undrained) {
    e.undrained = true;
    shipment_changes_.push_back(id);
  }
}

std::vector<OrderId> Shard::orders_due(TimeMs now) const {
  std::vector<OrderId> out;
  for (const auto& [deadline, id] : expiry_) {
    if (deadline >= now.value) break;
    out.push_back(OrderId{id});
  }
  return out;
}

void Shard::restore_order(OrderId id, Order o) {
  digest_ += order_hash(id, o);
  if (expires(o)) expiry_.insert({o.deadline.value, id.value});
  orders_[id].order = std::move(o);
}

void Shard::restore_shipment(ShipmentId id, Shipment s) {
  digest_ += shipment_hash(id, s);
  shipments_[id].shipment = std::move(s);
}

void Shard::mark_clean() {
  ++commits_;
  const bool evict = evicting();
  // Before the dirty marks are cleared: what this commit writes stays until a later one.
  if (evict) {
    evict_oldest(orders_, ended_orders_, evicted_orders_, eviction_counts_.orders_evicted);
    evict_oldest(shipments_, ended_shipments_, evicted_shipments_, eviction_counts_.shipments_evicted);
  }
  for (OrderId id : dirty_orders_) {
    OrderEntry& e = orders_[id];
    e.dirty = false;
    if (evict && ended(e.order)) ended_orders_.emplace_back(id, commits_);
  }
  for (ShipmentId id : dirty_shipments_) {
    ShipmentEntry& e = shipments_[id];
    e.dirty = false;
    if (evict && ended(e.shipment)) ended_shipments_.emplace_back(id, commits_);
  }
  dirty_orders_.clear();
  dirty_shipments_.clear();
  if (!dirty_balances_.empty()) (void)take_dirty_balances();  // a commit has taken them already
  for (LocationId id : dirty_locations_) locations_[id].dirty = false;
  dirty_balances_.clear();
  dirty_locations_.clear();
  dead_letters_.clear();
  channel_.mark_clean();
  outbox_pending_.clear();
  relayed_dirty_ = false;
  // The same segments the commit deleted (computed before the new one is added), then the new one.
  for (std::size_t n = expired_seen_segments().size(); n > 0; --n) seen_segments_.pop_front();
  if (!seen_pending_.empty()) {
    seen_segments_.emplace_back(seen_pending_first_seq(), window_.next_seq() - 1);
    seen_pending_.clear();
    release_if_large(seen_pending_);
  }
  header_dirty_ = false;
}

void Shard::restore_header(Offset next_offset, const OutcomeCounts& counts, TimeMs watermark,
                           std::uint64_t outbox_next_seq, std::uint64_t seen_oldest_seq) {
  next_offset_ = next_offset;
  outbox_next_seq_ = outbox_next_seq;
  watermark_ = watermark;
  counts_ = counts;
  restored_seen_oldest_seq_ = seen_oldest_seq;
  today_ = day_of(watermark);
}

void Shard::restore_balance(const Account& a, Quantity q, Day changed_day, StoredBalanceLayout stored) {
  digest_ += balance_hash(a, q.value);
  if (const int slot = stock_slot(a.bucket); slot >= 0) {
    StockEntry& e = stock_[PairKey{a.sku, a.location}];
    assert(!(e.exists & (1u << slot)) && "a balance is restored once");
    e.qty[slot] = q.value;
    e.exists |= static_cast<std::uint8_t>(1u << slot);
    if (stored == StoredBalanceLayout::per_bucket) e.legacy |= static_cast<std::uint8_t>(1u << slot);
    // The pair's last change is the newest of its buckets' (each written with the pair's day then).
    if (a.location != kVirtualLocation) e.changed_day = std::max(e.changed_day, changed_day.value);
    return;
  }
  BalanceEntry& e = virtual_[a];
  assert(e.qty == 0 && "a balance is restored once");
  e.qty = q.value;
}

void Shard::restore_location(LocationId id, LocationInfo info) {
  LocationEntry& e = locations_[id];
  index_warehouse(id, nullptr, info);
  e.info = std::move(info);
  digest_ += location_hash(id, e.info);
}

}  // namespace qudao
