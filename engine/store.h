// Store: the durable side of the engine, on RocksDB. One commit writes, in one atomic WriteBatch,
// every shard's dirty balances and locations, its dead letters, its counters and digest, and the
// next input offset of its partition. Those stored offsets are the truth about what has been
// applied; Kafka's committed offsets are advisory. On start, load() restores every shard and the
// engine seeks each partition to its stored next offset, so a kill -9 at any instant loses
// nothing and applies nothing twice.
//
// Key layout (integers big-endian so keys sort by partition, then id; values little-endian):
//
//   key    := topic | header | balance | location | dead_letter | seen | order | shipment | outbox
//             | party | assignment | conflict | target | policy | price | period | money | active
//             | rebate_history | closing_day | sold_day | closing | sold | anomaly
//   topic        := 'T'                                          -> topic name (utf-8)
//   header       := 'H' partition:i32                            -> next_offset:i64 consumed:u64
//                                                                   applied:u64 duplicates:u64
//                                                                   rejected:u64 anomalies:u64 digest:u64
//                                                                   watermark_ms:i64 outbox_next_seq:u64
//                                                                   seen_oldest_seq:u64
//   balance      := stock | account
//   stock        := 'B' partition:i32 sku:u64 location:u64 0x00  -> on_hand:i64 reserved:i64 in_transit:i64
//                                                                   buckets:u8 changed_day:i32
//                   (the three stock buckets of a (sku, location) in one key: a receipt's in_transit and
//                   on_hand, an order's on_hand and reserved cost one key, not two. buckets: a bit per
//                   bucket (1 on_hand, 2 reserved, 4 in_transit) that exists: posted or restored, kept at
//                   zero. changed_day: the shard day of the pair's last change, as a plain Day, kNoDay
//                   at location 0)
//   account      := 'B' partition:i32 sku:u64 location:u64 bucket:u8  -> qty:i64 [changed_day:i32]
//                   (a virtual account: production, consumers, adjustments, losses at location 0. Stores
//                   written before 2026-11-28 hold each stock bucket so, with the pair's changed_day
//                   then, or without it before it was kept; load() and the readers take both, and the
//                   commit that next writes such a pair deletes its bucket keys in the same batch)
//   location     := 'L' partition:i32 location:u64               -> kind:u8 text(name) text(city) text(region)
//   dead_letter  := 'D' partition:i32 offset:i64                 -> reason:u16 text(field) text(message)
//                                                                   bytes (the record value, to the end)
//   seen         := 'E' partition:i32 first_seq:u64   -> (event_id.hi:u64 event_id.lo:u64 bytes_hash:u64)*
//                   (the duplicate window, one segment per commit holding the event ids applied in
//                   it, with seqs first_seq, first_seq+1, ...; a segment is deleted once all its ids
//                   have left the window)
//   order        := 'O' partition:i32 order_id:u64               -> order (engine/orders.h)
//   shipment     := 'S' partition:i32 shipment_id:u64            -> shipment (engine/orders.h)
//   outbox       := 'X' partition:i32 seq:u64      -> topic:u8 created_ms:i64 text(key) header_count:u32
//                                                     (text(name) text(value))* value (to the end)
//                   (topic: 1 dispatch, 2 dead letters, 3 the events topic: an arrival leg)
//                   (rows not yet known delivered; one range delete per commit removes delivered ones)
//   The channel ledger (engine/channel.h); period := year*16 + (1..12 month | 13..16 quarter):u16
//   party        := 'P' partition:i32 party:u64      -> kind:u8 parent:u64 location:u64 text(name)
//                                                       text(region) text(industry)
//   assignment   := 'N' partition:i32 0x01 store:u64 -> distributor:u64
//   conflict     := 'N' partition:i32 0x02 store:u64 claimant:u64 -> assigned:u64 first_ms:i64
//                                                       last_ms:i64 claims:u32
//   target       := 'G' partition:i32 0x01 party:u64 period -> amount_fen:i64
//   policy       := 'G' partition:i32 0x02 party:u64 period -> count:u32 (attainment_bp:i32 rebate_bp:i32)*
//   price        := 'G' partition:i32 0x03 sku:u64   -> list_fen:i64 agreed_fen:i64 lead_time_days:i32
//                                                       [reorder_cover_days:i32]
//                   (lead_time_days -1: no SkuDefined on this shard; absent in stores written before it was kept;
//                   reorder_cover_days, SkuDefined's 1..365, only when the sku has one)
//   period       := 'M' partition:i32 0x01 party:u64 period -> the PeriodStats counters (channel.cc)
//   money        := 'M' partition:i32 0x02 party:u64 period bucket:u8 -> fen:i64 (bucket: MoneyBucket,
//                   channel.h: 1 accrued, 2 adjusted, 3 settled; party 0: the virtual accounts,
//                   10 rebate expense, 11 adjustment expense, 12 rebate paid)
//   active       := 'M' partition:i32 0x03 party:u64 period store:u64 -> (empty) a store that sold
//   rebate_history := 'R' partition:i32 party:u64 period seq:u32 -> event_id:u64*2 occurred_ms:i64
//                     cause:u8 old_tier:i32 new_tier:i32 old_bp:i32 new_bp:i32 sell_in:i64
//                     target:i64 delta:i64 text(reason)   (appended, never rewritten)
//   closing_day  := 'K' partition:i32 location:u64 day:u32   -> (sku_delta:varint on_hand:zvarint
//                                                               reserved:zvarint in_transit:zvarint)*
//                   (packed: every pair of the location closed that day, in sku order, its stock at
//                   the end of that shard day; written when the shard's clock leaves the day, by one
//                   Put (a day is closed once). The newest closing at or before a day is the stock
//                   then: a backward scan of the location's days from it until every asked sku is
//                   found. The current day's are the balances whose changed_day it is: HistoryReader
//                   and state_sha256 read them so, as rows. Encoding: engine/history.h packed_day)
//   sold_day     := 'U' partition:i32 location:u64 day:u32   -> (sku_delta:varint qty:zvarint)*
//                   (packed: units scanned out that day per sku, in sku order; written as merges
//                   whose operator adds per sku, see engine/history.h)
//   closing      := 'C' partition:i32 location:u64 sku:u64 day:u32   -> on_hand:i64 reserved:i64 in_transit:i64
//   sold         := 'Q' partition:i32 location:u64 day:u32 sku:u64   -> qty:i64 (merges that add)
//                   (unpacked, one key per row: stores written before 2026-11-28; read and exported
//                   with the packed ones, never written now. The export lists every closing and sold
//                   row in this form, whichever way it is stored)
//   anomaly      := 'A' partition:i32 location:u64 offset:i64 index:u16 -> kind:u8 sku:u64 qty:i64
//                                                                   day:i32 event_id.hi:u64 event_id.lo:u64
//   day          := days since 1970-01-01 (UTC) + 2^31, so that keys sort by day
//   text         := length:u32 utf-8 bytes
//
// Column families: the history rows (closing_day, sold_day, anomaly; closing and sold) have one of their own, "history"
// (kHistoryColumnFamily), every other key is in the default one. History is never overwritten and
// its keys (location first) interleave with the older history, so in one family every L0->L1
// compaction rewrote all of it with the balances (~30 % of the apply+commit row's CPU, README
// "History family"); in its own it is compacted universally (a row is rewritten a few times, not
// at every L0->L1 compaction) and the default family's compactions are small. Both are written
// in the one commit WriteBatch (one WAL: atomic). A store created before 2026-11-28 has no such
// family and keeps its history rows in the default one: it opens and goes on so, the readers and
// the export read both layouts the same way.
//
// The history rows (closing_day, sold_day, anomaly: engine/history.h) are written in the same batch
// as the state that caused them, are part of state_sha256, and are not read by load(). state_sha256
// exports the packed days as the unpacked rows they hold ('C' and 'Q', in those keys' order, a 'Q'
// row stored both ways summed), and
// a balance as one row per account ('B' partition sku location bucket -> qty:i64, a stock key listed
// as its existing buckets' rows) and the current day's closings as rows, so the export is what it
// was when each account had a key and every commit wrote the current day's closings.
//
// A balance that returns to zero is kept (as 0): deleting it would change nothing in the digest and
// cost a tombstone. Not thread-safe, except that one write() may run on another thread (the
// engine's Committer) while the owning thread applies and reads (read_order and read_shipment, the
// shards' ColdReader for evicted entries, included: engine/eviction.h).
#pragma once

#include <rocksdb/db.h>

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/history.h"
#include "engine/ledger.h"
#include "events/status.h"

namespace qudao {

enum class SyncMode : std::uint8_t {
  fsync,     // each commit is fsync'ed: survives power loss (the default)
  no_fsync,  // each commit reaches the OS page cache: survives a kill -9, not a power cut
};

enum class OpenMode : std::uint8_t {
  read_write,  // the engine's own store (one process at a time)
  read_only,   // a consistent view of a store another process may be writing (audit, inspection)
};

// The column family of the history rows (engine/store.h's layout).
inline constexpr const char* kHistoryColumnFamily = "history";

struct StoreOptions {
  std::string path;
  std::string topic;  // the one events topic this store follows; a different one is refused
  SyncMode sync = SyncMode::fsync;
  OpenMode mode = OpenMode::read_write;
};

// What one commit wrote, by kind of key (the bench prints them per event: what a commit costs).
struct CommitStats {
  std::size_t balances = 0;
  std::size_t locations = 0;
  std::size_t dead_letters = 0;
  std::size_t channel = 0;              // channel ledger entries ('P', 'N', 'G', 'M', 'R')
  std::size_t orders_shipments = 0;     // 'O' and 'S'
  std::size_t outbox = 0;               // 'X' rows added
  HistoryCounts history;                // closings, sold rows, anomalies; set by write()
  std::size_t keys = 0;   // set by write()
  std::size_t bytes = 0;  // set by write()
};

// A commit made on the applying thread, to be written from any thread. The bulk of it (the dirty
// balances and the stock history, a few keys per event) is taken from the shards as plain values
// and encoded into `batch` by write(), on the committer's thread; the rest is encoded by prepare().
struct PreparedCommit {
  struct Deferred {
    PartitionId partition;
    Shard::DirtyBalances balances;  // dirty pairs and virtual accounts, their quantities and days
    StockHistory history;                                     // the shard's history rows since the last commit
  };
  rocksdb::WriteBatch batch;
  std::vector<Deferred> deferred;  // encoded into batch (and emptied) by the first write()
  CommitStats stats;
  std::vector<std::pair<PartitionId, Offset>> next_offsets;  // stored in the batch
  std::vector<std::pair<PartitionId, OutboxRow>> outbox;      // rows the batch adds, for the relay
};

// One consistent view of the stock history (engine/history.h), read through one RocksDB iterator:
// a new iterator over the engine's vector memtable sorts a copy of it first (by merging its runs:
// engine/memtable.h), so a query or a rebuild makes one reader, not one per location. Made by
// Store::history_reader(); not thread-safe.
class HistoryReader {
 public:
  // For each sku of `skus`, in that order, the newest closing on or before `as_of` (a sku without
  // one is left out: its stock had not changed up to that day). The shard's current day has no
  // stored closings yet: a pair changed on it closes it at its stored balance. Cost: a balance
  // Seek per sku (a sku without a balance never changed: not looked for further), then the
  // location's packed days from as_of backwards until every other sku is found, all of them for a
  // sku that changed only after as_of; plus a SeekForPrev per sku if the location has unpacked rows.
  Result<std::vector<Closing>> closings(PartitionId p, LocationId location, std::span<const SkuId> skus, Day as_of);
  // The sold rows of one location for the days from..to (inclusive), by day, then sku.
  Result<std::vector<Sale>> sales(PartitionId p, LocationId location, Day from, Day to);

 private:
  friend class Store;
  // `history`: over the history rows; `state`: over the headers and balances (the same family in a
  // store from before the history family), both of one consistent view.
  HistoryReader(std::unique_ptr<rocksdb::Iterator> history, std::unique_ptr<rocksdb::Iterator> state,
                const std::string& path)
      : it_(std::move(history)), state_it_(std::move(state)), path_(path) {}
  // The shard's current day, from its stored header (nothing for a partition never committed), and
  // a pair's stored levels and day of last change (nothing: no balance; both defined in store.cc).
  struct StoredPair {
    ClosingLevels levels;
    Day changed_day;
  };
  Result<std::optional<Day>> today(PartitionId p);
  Result<std::optional<StoredPair>> stored_pair(PartitionId p, LocationId location, SkuId sku);
  std::unique_ptr<rocksdb::Iterator> it_;
  std::unique_ptr<rocksdb::Iterator> state_it_;
  std::string path_;
  std::map<std::int32_t, std::optional<Day>> today_;
};

class Store : public ColdReader {
 public:
  static Result<std::unique_ptr<Store>> open(const StoreOptions& options);
  // A clean close flushes the memtables, so the next start need not replay the write-ahead log.
  ~Store();

  // Restores every shard committed so far, keyed by partition, and checks each stored digest
  // against the state it describes (a mismatch means corrupt state: the caller must not go on).
  // `at`: read as of that snapshot instead of now (a reader that also reads history at the same instant).
  // Partitions share nothing, so `threads` threads (the calling one included) load whole partitions,
  // largest first, each with its own iterator over one snapshot; a shard is restored in the same
  // order of keys whatever the number of threads, so the shards are the same (README "Restart at scale").
  static constexpr std::size_t kLoadThreadsDefault = 2;  // the machine's cores
  Result<std::map<std::int32_t, Shard>> load(std::size_t dedup_window_events = kDedupWindowEventsDefault,
                                             const rocksdb::Snapshot* at = nullptr,
                                             std::size_t threads = kLoadThreadsDefault);

  // A point-in-time view for load() and history_reader() together (released when the last copy goes);
  // safe to take and read from any thread while the engine commits.
  std::shared_ptr<const rocksdb::Snapshot> snapshot();

  // Writes what changed in the given shards since their last commit, then marks them clean.
  Result<CommitStats> commit(std::span<Shard* const> shards);

  // commit() in two steps, so the write can overlap the next events' apply (engine/committer.h):
  // prepare() takes what changed and marks the shards clean (on the thread that owns them);
  // write() encodes the deferred part (each shard's balances and history rows in key order, which
  // makes the memtable's sort at flush cheaper) and makes it durable, and may run on another thread. A failed write leaves the shards'
  // in-memory state ahead of the store: the caller must stop and restart from the store.
  PreparedCommit prepare(std::span<Shard* const> shards);
  [[nodiscard]] Status write(PreparedCommit& commit);

  // Flushes the memtable and waits until RocksDB has no flush or compaction running or pending (at
  // most kSettleTimeout), so that a benchmark's CPU figure includes the background work its commits
  // caused instead of leaving it to after the clock stops.
  static constexpr std::chrono::seconds kSettleTimeout{300};
  [[nodiscard]] Status settle();

  // SHA-256 (hex) of the canonical export of the ledger: every header, balance, location, order,
  // shipment, channel, dead letter and stock history entry in key order, as stored. Two stores that applied the same log have the same
  // export whatever their batch sizes or commit intervals; the duplicate window is left out (it
  // depends on the window size, not on the ledger).
  Result<std::string> state_sha256();

  // One committed order or shipment (a point Get), for a shard that evicted it (engine/eviction.h).
  // An I/O error or corrupt bytes end the process: the applying thread cannot go on without it.
  std::optional<Order> read_order(PartitionId p, OrderId id) override;
  std::optional<Shipment> read_shipment(PartitionId p, ShipmentId id) override;

  // The outbox rows not yet known delivered, per partition in seq order (for the relay on start).
  Result<std::map<std::int32_t, std::vector<OutboxRow>>> outbox();

  // Dead letters of one partition from `from` on, at most `limit`, in offset order.
  Result<std::vector<DeadLetter>> dead_letters(PartitionId partition, Offset from, std::size_t limit);

  // Stock history (engine/history.h; defined in history.cc). closings() and sales() are
  // HistoryReader's, each through a reader of its own.
  HistoryReader history_reader(const rocksdb::Snapshot* at = nullptr);
  Result<std::vector<Closing>> closings(PartitionId p, LocationId location, std::span<const SkuId> skus, Day as_of) {
    return history_reader().closings(p, location, skus, as_of);
  }
  Result<std::vector<Sale>> sales(PartitionId p, LocationId location, Day from, Day to) {
    return history_reader().sales(p, location, from, to);
  }
  // One location's anomalies from (offset, index) on, at most `limit`, in offset order.
  Result<std::vector<AnomalyRecord>> anomalies(PartitionId p, LocationId location, Offset from_offset,
                                               std::uint16_t from_index, std::size_t limit);

 private:
  using FamilyHandles = std::vector<std::unique_ptr<rocksdb::ColumnFamilyHandle>>;
  Store(std::unique_ptr<rocksdb::DB> db, FamilyHandles families, StoreOptions options)
      : db_(std::move(db)), families_(std::move(families)), options_(std::move(options)) {
    history_ = families_.size() > 1 ? families_[1].get() : db_->DefaultColumnFamily();
  }
  // A writable store opens with RocksDB's automatic compactions off and turns them on at its first
  // write: a start loads the whole store and rebuilds the projections (on both cores since the
  // parallel load), and the compactions the last run left due (its L0 files, or the WAL a kill -9
  // left, flushed on open) took both cores meanwhile (70 % of a restart's CPU samples, README "Restart at scale"). The first
  // commit comes after the start; a store only read (export, audit) never compacts.
  void start_compactions();
  // load()'s parts: the partitions that have a key of a loaded tag (one seek per tag and partition;
  // an unknown tag is an error), and one partition's keys, tag by tag, into `shard`, checked
  // against its stored digest.
  Result<std::vector<std::int32_t>> stored_partitions(const rocksdb::ReadOptions& read);
  [[nodiscard]] Status load_partition(rocksdb::Iterator& it, Shard& shard);

  // Every family's handle: all, or only the default one in a store from before the history
  // family. The history rows' family (the default one then). Handles go before the DB closes.
  std::vector<rocksdb::ColumnFamilyHandle*> families() const;
  std::unique_ptr<rocksdb::DB> db_;
  FamilyHandles families_;  // [0] default, [1] history (if the store has it)
  rocksdb::ColumnFamilyHandle* history_ = nullptr;
  StoreOptions options_;
  std::atomic<bool> compactions_started_{false};
};

}  // namespace qudao
