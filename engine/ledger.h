// The ledger state one shard (one Kafka partition) owns, and the postings events turn into.
//
// Stock is double-entry: an Account is (sku, location, bucket). Real locations have the buckets
// on_hand, reserved and in_transit; the virtual accounts production (source of goods), consumers
// (sink of scan-outs), adjustments, losses and clearing use location 0. Every applied event posts a
// set of deltas that sums to zero per sku, so for every sku the sum over all accounts is zero.
//
// Movements between shards (design §6) go through the clearing account, in two legs, each balanced
// on its own shard: the source's ShipmentDispatched posts on_hand -> clearing (+q) and emits the
// arrival leg, a ShipmentTransferred, to the destination's partition through the outbox
// (OutboxTopic::events); the destination posts clearing (-q) -> in_transit. So each shard conserves
// stock by itself, and the clearing accounts of all shards sum to zero per sku once every arrival
// leg is applied (`qudao audit` checks both; a positive sum is goods still between shards).
//
// The shard also owns its channel ledger (engine/channel.h: parties, assignments, targets, rebates,
// money in fen), committed and digested with the rest.
//
// A Shard is owned by the one thread that applies its partition's events; it is not thread-safe.
// Hot state is in memory (abseil open-addressing maps); every change marks its entry dirty, and the
// next commit (engine/store.h) writes the dirty entries and clears the marks; orders and shipments
// are also listed for the order projection (projections/orders.h) until it drains them. Orders and
// shipments that have ended may be evicted once durable and are read back when an event names them
// (engine/eviction.h; off unless set_eviction() is called). The shard's
// stock history (daily closings, sold per day, anomalies: engine/history.h) is collected the same way;
// a day's closings are recorded when the shard's clock leaves that day, and until then the day's
// closing of a (location, sku) is its balance, stored with the shard day of its last change.
#pragma once

#include <absl/container/btree_set.h>
#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>

#include <deque>
#include <optional>

#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "engine/channel.h"
#include "engine/dedup_window.h"
#include "engine/eviction.h"
#include "engine/history.h"
#include "engine/huge_pages.h"
#include "engine/orders.h"
#include "engine/prefetch.h"
#include "events/decode.h"
#include "events/types.h"

namespace qudao {

enum class Bucket : std::uint8_t {
  on_hand = 1,
  reserved = 2,
  in_transit = 3,
  production = 10,   // virtual, location 0
  consumers = 11,    // virtual, location 0
  adjustments = 12,  // virtual, location 0
  losses = 13,       // virtual, location 0
  clearing = 14,     // virtual, location 0: goods between shards (source leg +, arrival leg -)
};

inline constexpr LocationId kVirtualLocation{0};

struct Account {
  SkuId sku;
  LocationId location;
  Bucket bucket = Bucket::on_hand;

  friend constexpr bool operator==(const Account&, const Account&) = default;
  friend constexpr auto operator<=>(const Account&, const Account&) = default;
  template <typename H>
  friend H AbslHashValue(H h, const Account& a) {
    return H::combine(std::move(h), a.sku.value, a.location.value, a.bucket);
  }
};

struct Posting {
  Account account;
  Quantity delta;
};

struct LocationInfo {
  fb::LocationKind kind = fb::LocationKind::Unknown;
  std::string name;
  std::string city;
  std::string region;

  friend bool operator==(const LocationInfo&, const LocationInfo&) = default;
};

// Every consumed record ends in exactly one of applied, duplicate, rejected:
// consumed == applied + duplicates + rejected, always. Anomalies are a subset of applied.
struct OutcomeCounts {
  std::uint64_t consumed = 0;
  std::uint64_t applied = 0;
  std::uint64_t duplicates = 0;
  std::uint64_t rejected = 0;
  std::uint64_t anomalies = 0;

  OutcomeCounts& operator+=(const OutcomeCounts& o) {
    consumed += o.consumed, applied += o.applied, duplicates += o.duplicates;
    rejected += o.rejected, anomalies += o.anomalies;
    return *this;
  }
};

enum class Anomaly : std::uint8_t { none, flagged };

// How a store holds a stock bucket's balance (engine/store.h): in its (sku, location)'s one key, or,
// in stores written before that, as a key of its own.
enum class StoredBalanceLayout : std::uint8_t { per_pair, per_bucket };

// What the duplicate window says about an event id and the hash of its bytes.
enum class Seen : std::uint8_t {
  new_event,  // not in the window
  duplicate,  // applied before with the same bytes: ignore
  conflict,   // applied before with different bytes: reject
};

inline constexpr std::size_t kDedupWindowEventsDefault = 200'000;

// A rejected record, kept with its original bytes until the commit makes it durable.
struct DeadLetter {
  Offset offset;
  Rejection rejection;
  std::string bytes;
};

// What the engine sends out through its outbox: warehouse dispatch requests, dead letters, and the
// arrival legs of shipments between shards (ShipmentTransferred, to the events topic itself, keyed
// by the destination's region).
enum class OutboxTopic : std::uint8_t { dispatch = 1, dead_letters = 2, events = 3 };

// One output record, written to the store in the same commit as the state change that caused it,
// and sent by the relay (connectors/relay.h) after that commit is durable. `seq` numbers a shard's
// rows from 0 in apply order, so a replay of the same log produces the same rows.
struct OutboxRow {
  std::uint64_t seq = 0;
  OutboxTopic topic = OutboxTopic::dispatch;
  std::string key;
  std::string value;
  std::vector<std::pair<std::string, std::string>> headers;
  std::int64_t created_ms = 0;  // wall clock when committed (bounds the relay's search after a restart)
};

class Shard {
 public:
  // `dedup_window_events`: how many applied event ids (per shard, newest first) are remembered to
  // recognise a re-sent event. Kept across restarts.
  explicit Shard(PartitionId partition, std::size_t dedup_window_events = kDedupWindowEventsDefault)
      : partition_(partition), window_(dedup_window_events) {}

  PartitionId partition() const { return partition_; }

  // The offset of the next record to apply: everything before it is in this state.
  Offset next_offset() const { return next_offset_; }

  Quantity balance(const Account& a) const;
  const LocationInfo* location(LocationId id) const;
  const OutcomeCounts& counts() const { return counts_; }

  // Order-independent digest of all balances and locations: a sum of per-entry hashes, kept up to
  // date as entries change, so two shards with equal state have equal digests whatever the history.
  std::uint64_t digest() const { return digest_ + channel_.digest(); }

  // Every consumed record is recorded exactly once, as applied or as rejected, which advances
  // next_offset past it. The caller posts an applied event's postings before recording it.
  void record_applied(Offset offset, Anomaly anomaly);
  // `key`: the record's Kafka key (the shard key), kept with the dead letter so it can be re-driven.
  void record_rejected(Offset offset, Rejection rejection, std::string bytes, std::string_view key = {});
  void record_duplicate(Offset offset);

  // The duplicate window: only applied events enter it (a rejected event may be re-driven later).
  Seen seen(const EventId& id, std::uint64_t bytes_hash) const;
  void remember(const EventId& id, std::uint64_t bytes_hash);

  // A hint for a batch that applies `event` a few records from now: prefetches what applying it
  // will read (engine/prefetch.h); changes nothing. Defined in engine/prefetch.cc.
  void prefetch(const Event& event) const;

  // Returns the account's balance before the posting (a check and its posting: one lookup).
  Quantity post(const Posting& p);
  void define_location(LocationId id, LocationInfo info);
  // Warehouses (either kind) in `city`, and the brand's HQ warehouses (kind Warehouse) on this
  // shard, each by ascending id.
  std::span<const LocationId> warehouses_in(const std::string& city) const;
  std::span<const LocationId> hq_warehouses() const { return hq_warehouses_; }

  // The outbox: rows emitted since the last commit; the next seq; and the seq through which the
  // relay has delivered every row (the next commit deletes those rows from the store).
  void emit(OutboxTopic topic, std::string key, std::string value,
            std::vector<std::pair<std::string, std::string>> headers = {});
  const std::vector<OutboxRow>& outbox_pending() const { return outbox_pending_; }
  std::uint64_t outbox_next_seq() const { return outbox_next_seq_; }
  void mark_relayed(std::uint64_t through_seq);
  // Rows at or below this seq are delivered; the store deletes them at the next commit.
  std::optional<std::uint64_t> relayed_through() const { return relayed_through_; }
  bool relayed_dirty() const { return relayed_dirty_; }

  // Parties, assignments, targets, rebates and money (engine/channel.h): part of this shard's state,
  // its commits and its digest.
  ChannelLedger& channel() { return channel_; }
  const ChannelLedger& channel() const { return channel_; }

  // Orders and shipments (engine/orders.h). put_* replaces the whole entry (looked up first: an
  // evicted one is read back by the lookup). The non-const lookups (the applier's) read an evicted
  // entry back from the store (engine/eviction.h); the const ones see resident entries only and must
  // not be asked for an evicted one.
  const Order* order(OrderId id);
  const Order* order(OrderId id) const;
  void put_order(OrderId id, Order o);
  const Shipment* shipment(ShipmentId id);
  const Shipment* shipment(ShipmentId id) const;
  void put_shipment(ShipmentId id, Shipment s);
  // Eviction of ended orders and shipments (engine/eviction.h): off until this is called. `cold`:
  // where evicted entries are read back from (the store this shard commits to), outliving the shard
  // or the next set_eviction. The ended entries already in memory (a load's) are durable and
  // queued for eviction at the next commit, in id order.
  void set_eviction(const EvictionPolicy& policy, ColdReader* cold);
  const EvictionCounts& eviction_counts() const { return eviction_counts_; }
  std::size_t resident_orders() const { return orders_.size(); }
  std::size_t resident_shipments() const { return shipments_.size(); }
  // Event time: the highest occurred_at of the events this shard has decoded. Proxy orders still
  // unpaid when it passes their deadline expire (expiry never looks at the wall clock).
  TimeMs watermark() const { return watermark_; }
  // Passing into a new UTC day closes the old one: the stock of every (location, sku) changed that
  // day is recorded as that day's closing (engine/history.h).
  void advance_watermark(TimeMs t) {
    if (t <= watermark_) return;
    if (const Day day = day_of(t); day != today_) {
      close_changed();
      today_ = day;
    }
    watermark_ = t, header_dirty_ = true;
  }
  // The shard's day: day_of(watermark()).
  Day today() const { return today_; }
  // The history rows since the last commit; the store writes them with the commit.
  StockHistory& history() { return history_; }
  const StockHistory& history() const { return history_; }
  // Unpaid proxy orders whose deadline is before `now`, oldest deadline first.
  std::vector<OrderId> orders_due(TimeMs now) const;

  // Iteration over all state (for load-time rebuilds of projections, tests and audits). Orders and
  // shipments: the resident ones (all of them after a load, before the first commit evicts).
  template <class F> void for_each_balance(F&& f) const {
    for (const auto& [k, e] : stock_) {
      for (int i = 0; i < kStockBuckets; ++i) {
        if (e.exists & (1u << i)) f(Account{k.sku, k.location, kStockBucketOf[i]}, Quantity{e.qty[i]});
      }
    }
    for (const auto& [a, e] : virtual_) f(a, Quantity{e.qty});
  }
  template <class F> void for_each_location(F&& f) const {
    for (const auto& [id, e] : locations_) f(id, e.info);
  }
  template <class F> void for_each_order(F&& f) const {
    for (const auto& [id, e] : orders_) f(id, e.order);
  }
  template <class F> void for_each_shipment(F&& f) const {
    for (const auto& [id, e] : shipments_) f(id, e.shipment);
  }

  // Projection support (projections/orders.h): the orders and shipments put since the last drain,
  // each once, in the order first changed, handed to f(id, entry). Kept apart from the commit's dirty
  // lists because a projection drains after every poll batch, a commit only every interval. A shard
  // nobody drains (replay, audit) holds at most one id per order or shipment here.
  bool has_order_changes() const { return !order_changes_.empty() || !shipment_changes_.empty(); }
  template <class F> void drain_order_changes(F&& f) {
    drain(orders_, order_changes_, [&](OrderId id, const OrderEntry& e) { f(id, e.order); });
  }
  template <class F> void drain_shipment_changes(F&& f) {
    drain(shipments_, shipment_changes_, [&](ShipmentId id, const ShipmentEntry& e) { f(id, e.shipment); });
  }

  // Commit support (engine/store.cc): what changed since the last commit.
  bool header_dirty() const { return header_dirty_; }
  const std::vector<Account>& dirty_balances() const { return dirty_balances_; }
  // The dirty balances as the commit stores them (engine/store.h): a (sku, location) with any dirty
  // stock bucket once, with its three buckets (one key: a receipt's in_transit and on_hand, an
  // order's on_hand and reserved were two), and the shard day of its last change, which a restart
  // needs to close that day (kNoDay at location 0, which has no closings); each dirty virtual account
  // on its own.
  static constexpr int kStockBuckets = 3;
  static constexpr Bucket kStockBucketOf[kStockBuckets] = {Bucket::on_hand, Bucket::reserved, Bucket::in_transit};
  static constexpr std::int32_t kNoDay = std::numeric_limits<std::int32_t>::min();
  struct DirtyPair {
    SkuId sku;
    LocationId location;
    std::int64_t qty[kStockBuckets] = {0, 0, 0};  // by slot: on_hand, reserved, in_transit
    std::uint8_t exists = 0;  // a bit per slot: the account exists (posted or restored; kept at zero)
    std::uint8_t legacy = 0;  // a bit per slot stored as a key of its own (a store written before
                              // pairs were one key): the commit deletes those keys
    Day changed_day{kNoDay};
  };
  struct DirtyBalance {
    Account account;
    std::int64_t qty = 0;
  };
  struct DirtyBalances {
    std::vector<DirtyPair> pairs;
    std::vector<DirtyBalance> accounts;  // the virtual accounts
  };
  // The dirty balances with their quantities (in the order they were first changed), marked clean:
  // one lookup each, where reading them and then marking them clean took two.
  DirtyBalances take_dirty_balances();
  // The history rows since the last commit, handed over whole; the shard starts an empty one.
  StockHistory take_history() { return std::exchange(history_, StockHistory{}); }
  const std::vector<LocationId>& dirty_locations() const { return dirty_locations_; }
  const std::vector<OrderId>& dirty_orders() const { return dirty_orders_; }
  const std::vector<ShipmentId>& dirty_shipments() const { return dirty_shipments_; }
  const std::vector<DeadLetter>& dead_letters() const { return dead_letters_; }
  std::optional<SeenEvent> seen_entry(const EventId& id) const { return window_.find(id); }
  // The seq of the oldest id in the window (stored, so a restart restores exactly this window).
  std::uint64_t seen_oldest_seq() const { return window_.oldest_seq(); }
  // The duplicate window is stored in segments, one per commit: the ids remembered since the last
  // commit (the next segment, starting at seq seen_pending_first_seq()), and the stored segments
  // (by first seq) whose every id has left the window and can be deleted.
  const std::vector<std::pair<EventId, std::uint64_t>>& seen_pending() const { return seen_pending_; }
  std::uint64_t seen_pending_first_seq() const { return window_.next_seq() - seen_pending_.size(); }
  std::vector<std::uint64_t> expired_seen_segments() const;
  void mark_clean();

  // Load support: restores committed state without marking it dirty.
  void restore_header(Offset next_offset, const OutcomeCounts& counts, TimeMs watermark, std::uint64_t outbox_next_seq,
                      std::uint64_t seen_oldest_seq);
  void restore_order(OrderId id, Order o);
  void restore_shipment(ShipmentId id, Shipment s);
  // `changed_day`: for a stock bucket, the stored day of its pair's last change (kNoDay if unknown:
  // a store written before it was kept, whose commits wrote the current day's closings themselves).
  // `stored`: a stock bucket stored as a key of its own (an older store) is marked so that the commit
  // that next writes its pair deletes that key.
  void restore_balance(const Account& a, Quantity q, Day changed_day = Day{kNoDay},
                       StoredBalanceLayout stored = StoredBalanceLayout::per_pair);
  void restore_location(LocationId id, LocationInfo info);
  // One stored segment of the window, oldest segment first.
  void restore_seen_segment(std::uint64_t first_seq, std::span<const std::pair<EventId, std::uint64_t>> entries);
  // Ends a load: checks the window. (The pairs changed on the restored current day need no list:
  // their restored changed_day is that day, so leaving it closes them as if nothing had restarted.)
  void finish_restore();

 private:
  // Records the closing on today_ of every (location, sku) changed on it (at a day change): one
  // pass over stock_, for the entries whose changed_day is today_.
  void close_changed();
  // The buckets a real location holds of a sku (on_hand, reserved, in_transit) share one entry per
  // (sku, location): a scan-out's check and its posting cost one lookup (one cache miss) instead of
  // one per bucket, and a day's closing of the pair reads one entry. Every other bucket (the virtual accounts)
  // is a BalanceEntry of its own.
  static int stock_slot(Bucket b) {  // the slot of a stock bucket, -1 for a virtual one
    switch (b) {
      case Bucket::on_hand: return 0;
      case Bucket::reserved: return 1;
      case Bucket::in_transit: return 2;
      default: return -1;
    }
  }
  struct PairKey {
    SkuId sku;
    LocationId location;
    friend constexpr bool operator==(const PairKey&, const PairKey&) = default;
    template <typename H>
    friend H AbslHashValue(H h, const PairKey& k) {
      return H::combine(std::move(h), k.sku.value, k.location.value);
    }
  };
  struct StockEntry {
    std::int64_t qty[kStockBuckets] = {0, 0, 0};
    std::uint8_t exists = 0;  // a bit per slot: the account was posted or restored (kept at zero)
    std::uint8_t dirty = 0;   // a bit per slot: changed since the last commit
    std::uint8_t legacy = 0;  // a bit per slot: stored as a key of its own (DirtyPair::legacy)
    // The shard day of the last posting (real locations only): equal to today_ means the pair is
    // closed when the day ends. A day, not a flag, so that no pass is needed to clear it after a
    // close, and so that the store can keep it with the balance for a restart. (Layout: 24 + 1 + 1
    // + 1 + 1 padding + 4 = 32 bytes, 48 with the key in a slot.)
    std::int32_t changed_day = kNoDay;
  };
  static_assert(sizeof(StockEntry) == 32, "a stock slot is 48 bytes with its key: memory per key (README)");
  struct BalanceEntry {
    std::int64_t qty = 0;
    bool dirty = false;
  };
  struct LocationEntry {
    LocationInfo info;
    bool dirty = false;
  };

  // Going through a list of random keys (a commit's dirty balances: thousands,
  // each a cache miss in a large table), the slot kPrefetchAheadKeys entries ahead is prefetched,
  // so the misses overlap instead of each waiting for the one before.
  static constexpr std::size_t kPrefetchAheadKeys = 8;
  void prefetch_balance(const Account& a) const;
  // The per-commit lists are cleared, not freed, at a commit, and keep their capacity for the next;
  // one longer than this (a burst: a restore's first commit, a bulk load) is freed instead, so that
  // the memory of a burst is not held for good. Entries, not bytes: a list's entries are small.
  static constexpr std::size_t kCommitListKeptEntriesMax = 1 << 16;
  template <class V>
  static void release_if_large(V& v) {
    if (v.capacity() > kCommitListKeptEntriesMax) V().swap(v);
  }

  std::uint64_t balance_hash(const Account& a, std::int64_t qty) const;
  std::uint64_t location_hash(LocationId id, const LocationInfo& info) const;

  PartitionId partition_;
  Offset next_offset_{0};
  OutcomeCounts counts_;
  std::uint64_t digest_ = 0;
  bool header_dirty_ = false;

  // on_hand, reserved, in_transit. The largest table (48-byte slots, ~100 MB per million pairs) and
  // probed at random by nearly every event: in huge pages (engine/huge_pages.h).
  absl::flat_hash_map<PairKey, StockEntry, absl::Hash<PairKey>, std::equal_to<PairKey>,
                      HugePageAllocator<std::pair<const PairKey, StockEntry>>>
      stock_;
  absl::flat_hash_map<Account, BalanceEntry> virtual_;  // production, consumers, adjustments, losses
  absl::flat_hash_map<LocationId, LocationEntry> locations_;
  std::vector<Account> dirty_balances_;
  std::vector<LocationId> dirty_locations_;
  std::vector<DeadLetter> dead_letters_;
  Day today_{0};  // day_of(watermark_)
  StockHistory history_;

  std::uint64_t order_hash(OrderId id, const Order& o);
  std::uint64_t shipment_hash(ShipmentId id, const Shipment& s);
  std::string hash_scratch_;  // reused by the hashes above: no allocation per event
  struct OrderEntry {
    Order order;
    bool dirty = false;
    bool undrained = false;  // in order_changes_
  };
  struct ShipmentEntry {
    Shipment shipment;
    bool dirty = false;
    bool undrained = false;  // in shipment_changes_
  };
  absl::flat_hash_map<OrderId, OrderEntry> orders_;
  absl::flat_hash_map<ShipmentId, ShipmentEntry> shipments_;
  std::vector<OrderId> dirty_orders_;
  std::vector<ShipmentId> dirty_shipments_;
  template <class Map, class Id, class F>
  static void drain(Map& entries, std::vector<Id>& changed, F&& f) {
    for (Id id : changed) {
      auto& e = entries.find(id)->second;
      e.undrained = false;
      f(id, std::as_const(e));
    }
    changed.clear();
  }
  // Eviction (engine/eviction.h). The queues hold (id, commit that wrote it ended), oldest first;
  // an id may be stale (evicted already), which the eviction skips.
  bool evicting() const { return cold_ != nullptr && eviction_.terminal_kept_max != kTerminalKeptAll; }
  template <class Map, class Id>
  void evict_oldest(Map& entries, std::deque<std::pair<Id, std::uint64_t>>& ended, absl::flat_hash_set<Id>& evicted,
                    std::uint64_t& count);
  // A flat map keeps its slots when entries leave: after a mass eviction (a load's first commit)
  // one with more than this many slots per entry is shrunk, and one smaller than the minimum is left.
  static constexpr std::size_t kShrinkSlotsPerEntry = 4;
  static constexpr std::size_t kShrinkSlotsMin = 1024;
  EvictionPolicy eviction_{kTerminalKeptAll};
  ColdReader* cold_ = nullptr;
  std::uint64_t commits_ = 0;  // mark_clean calls: the seq of the last commit prepared
  absl::flat_hash_set<OrderId> evicted_orders_;
  absl::flat_hash_set<ShipmentId> evicted_shipments_;
  std::deque<std::pair<OrderId, std::uint64_t>> ended_orders_;
  std::deque<std::pair<ShipmentId, std::uint64_t>> ended_shipments_;
  EvictionCounts eviction_counts_;
  std::vector<OrderId> order_changes_;        // since the last drain_order_changes
  std::vector<ShipmentId> shipment_changes_;  // since the last drain_shipment_changes
  absl::btree_set<std::pair<std::int64_t, std::uint64_t>> expiry_;  // (deadline ms, order id)
  TimeMs watermark_{0};

  void index_warehouse(LocationId id, const LocationInfo* old, const LocationInfo& info);
  absl::flat_hash_map<std::string, std::vector<LocationId>> warehouses_by_city_;
  std::vector<LocationId> hq_warehouses_;
  std::vector<OutboxRow> outbox_pending_;
  std::uint64_t outbox_next_seq_ = 0;
  std::optional<std::uint64_t> relayed_through_;
  bool relayed_dirty_ = false;

  ChannelLedger channel_;
  DedupWindow window_;
  std::vector<std::pair<EventId, std::uint64_t>> seen_pending_;  // (id, bytes hash) since the last commit
  std::deque<std::pair<std::uint64_t, std::uint64_t>> seen_segments_;  // stored: (first seq, last seq)
  std::uint64_t restored_seen_oldest_seq_ = 0;
};

}  // namespace qudao
