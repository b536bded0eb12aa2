#include "engine/store.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <rocksdb/memtablerep.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <optional>
#include <span>
#include <chrono>
#include <thread>
#include <tuple>
#include <rocksdb/write_batch.h>

#include <spdlog/spdlog.h>

#include <cstdlib>

#include "engine/codec.h"
#include "engine/memtable.h"
#include "engine/thread_priority.h"

namespace qudao {
namespace {

constexpr char kTopicKey = 'T';
constexpr char kHeaderKey = 'H';
constexpr char kBalanceKey = 'B';
constexpr char kLocationKey = 'L';
constexpr char kDeadLetterKey = 'D';
constexpr char kOutboxKey = 'X';
constexpr char kSeenKey = 'E';
constexpr char kOrderKey = 'O';
constexpr char kShipmentKey = 'S';

std::string seen_key(PartitionId p, std::uint64_t first_seq) {
  std::string k(1, kSeenKey);
  codec::put_be<std::int32_t>(k, p.value);
  codec::put_be<std::uint64_t>(k, first_seq);
  return k;
}

std::string partition_key(char tag, PartitionId p) {
  std::string k(1, tag);
  codec::put_be<std::int32_t>(k, p.value);
  return k;
}

// The tags load() restores: per-partition key ranges ('tag' partition:i32 ...), in key order, so
// that one shard is restored in the same order as by one iterator over the whole store.
constexpr std::array<char, 11> kLoadedTags = {kBalanceKey, kSeenKey, 'G', kHeaderKey, kLocationKey, 'M', 'N',
                                              kOrderKey, 'P', 'R', kShipmentKey};
static_assert(std::is_sorted(kLoadedTags.begin(), kLoadedTags.end()));

// The first key after every key starting with `prefix` (empty: none is, past the end).
std::string key_successor(std::string_view prefix) {
  std::string s(prefix);
  while (!s.empty() && static_cast<unsigned char>(s.back()) == 0xff) s.pop_back();
  if (!s.empty()) s.back() = static_cast<char>(static_cast<unsigned char>(s.back()) + 1);
  return s;
}

// A channel entry's key as the ChannelLedger knows it: the stored key without the partition.
std::string channel_key(std::string_view stored) {
  std::string k(1, stored[0]);
  k.append(stored.substr(1 + sizeof(std::int32_t)));
  return k;
}

std::string header_value(const Shard& s) {
  std::string v;
  const OutcomeCounts& c = s.counts();
  codec::put_le<std::int64_t>(v, s.next_offset().value);
  for (std::uint64_t n : {c.consumed, c.applied, c.duplicates, c.rejected, c.anomalies, s.digest()}) {
    codec::put_le<std::uint64_t>(v, n);
  }
  codec::put_le<std::int64_t>(v, s.watermark().value);
  codec::put_le<std::uint64_t>(v, s.outbox_next_seq());
  codec::put_le<std::uint64_t>(v, s.seen_oldest_seq());
  return v;
}

std::string outbox_key(PartitionId p, std::uint64_t seq) {
  std::string k = partition_key(kOutboxKey, p);
  codec::put_be<std::uint64_t>(k, seq);
  return k;
}

std::string outbox_value(const OutboxRow& row) {
  std::string v;
  codec::put_le<std::uint8_t>(v, static_cast<std::uint8_t>(row.topic));
  codec::put_le<std::int64_t>(v, row.created_ms);
  codec::put_text(v, row.key);
  codec::put_le<std::uint32_t>(v, static_cast<std::uint32_t>(row.headers.size()));
  for (const auto& [name, value] : row.headers) {
    codec::put_text(v, name);
    codec::put_text(v, value);
  }
  v.append(row.value);
  return v;
}

Status io_error(const char* what, const rocksdb::Status& s) {
  return Status::error(fmt::format("rocksdb {}: {}", what, s.ToString()));
}

bool is_stock_bucket(Bucket b) { return b == Bucket::on_hand || b == Bucket::reserved || b == Bucket::in_transit; }

// The bucket byte of a (sku, location)'s one key, which holds its three stock buckets: below every
// Bucket, so the key sorts before the per-bucket keys of older stores and the virtual accounts.
constexpr std::uint8_t kPairBucketByte = 0;

// Into a reused string: write() encodes tens of thousands per commit, and a new string each was an
// allocation each (keys are longer than the small-string buffer).
void assign_balance_key(std::string& key, PartitionId p, SkuId sku, LocationId location, std::uint8_t bucket) {
  key.assign(1, kBalanceKey);
  codec::put_be<std::int32_t>(key, p.value);
  codec::put_be<std::uint64_t>(key, sku.value);
  codec::put_be<std::uint64_t>(key, location.value);
  codec::put_be<std::uint8_t>(key, bucket);
}

// A stored balance key: a pair's one key (its existing stock buckets), or one account's (a virtual
// account, or a stock bucket in a store written before pairs were one key). `changed_day`: the day
// of the pair's last change (stock buckets only; absent in stores written before it was kept).
struct StoredBalance {
  PartitionId partition;
  SkuId sku;
  LocationId location;
  StoredBalanceLayout layout = StoredBalanceLayout::per_pair;  // per_bucket: one account's key
  std::array<std::pair<Bucket, std::int64_t>, Shard::kStockBuckets> accounts{};  // in bucket order
  std::size_t account_count = 0;
  Day changed_day{Shard::kNoDay};
  std::span<const std::pair<Bucket, std::int64_t>> listed() const { return {accounts.data(), account_count}; }
  bool has_stock() const { return account_count > 0 && is_stock_bucket(accounts[0].first); }
};

std::optional<StoredBalance> parse_balance(std::string_view key, std::string_view value) {
  codec::Reader k(key.substr(1));
  codec::Reader v(value);
  StoredBalance b;
  b.partition = PartitionId{k.be<std::int32_t>()};
  b.sku = SkuId{k.be<std::uint64_t>()};
  b.location = LocationId{k.be<std::uint64_t>()};
  const auto bucket = k.be<std::uint8_t>();
  if (bucket == kPairBucketByte) {
    std::int64_t qty[Shard::kStockBuckets];
    for (std::int64_t& q : qty) q = v.le<std::int64_t>();
    const auto exists = v.le<std::uint8_t>();
    b.changed_day = Day{v.le<std::int32_t>()};
    if (exists == 0 || exists >= (1u << Shard::kStockBuckets)) return std::nullopt;
    for (int i = 0; i < Shard::kStockBuckets; ++i) {
      if (exists & (1u << i)) b.accounts[b.account_count++] = {Shard::kStockBucketOf[i], qty[i]};
    }
  } else {
    b.layout = StoredBalanceLayout::per_bucket;
    b.accounts[b.account_count++] = {static_cast<Bucket>(bucket), v.le<std::int64_t>()};
    if (v.ok() && !v.empty()) b.changed_day = Day{v.le<std::int32_t>()};
  }
  if (!k.ok() || !v.ok() || !k.empty() || !v.empty()) return std::nullopt;
  return b;
}

// The shard day of a stored header (its watermark's day).
std::optional<Day> header_day(std::string_view value) {
  codec::Reader v(value);
  for (int i = 0; i < 7; ++i) (void)v.le<std::uint64_t>();  // next offset, the counts, the digest
  const TimeMs watermark{v.le<std::int64_t>()};
  if (!v.ok()) return std::nullopt;
  return day_of(watermark);
}

// A (location, sku)'s levels as a closing holds them, from its stock buckets' balances.
void add_to_levels(ClosingLevels& l, Bucket b, std::int64_t qty) {
  switch (b) {
    case Bucket::on_hand: l.on_hand += qty; break;
    case Bucket::reserved: l.reserved += qty, l.on_hand += qty; break;  // on hand counts the reserved
    case Bucket::in_transit: l.in_transit += qty; break;
    default: break;
  }
}

// The history family's options: the default family's (memtable, compression, merge operator),
// compacted universally. Its rows are never overwritten and each flush's keys interleave with all
// the older ones (location first), so leveled compaction rewrote the whole of L1 at every L0->L1
// compaction; universal compaction merges sorted runs of similar sizes, a few rewrites per row.
rocksdb::ColumnFamilyOptions history_family_options(const rocksdb::Options& db_options) {
  rocksdb::ColumnFamilyOptions o(db_options);
  o.compaction_style = rocksdb::kCompactionStyleUniversal;
  return o;
}

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.IncreaseParallelism(2);
  // The engine writes tens of thousands of keys per commit and reads the store back only to load
  // it, audit it or list dead letters. A vector memtable appends each key (sorting once, when it is
  // flushed or iterated) where the default skiplist pays ~20 key comparisons per insert: measured
  // here, a commit of ~60k keys took 38 ms instead of 152 ms. The price: an iterator over the live
  // memtable sorts a copy of it, so a dead-letter listing during heavy ingest costs up to ~100 ms.
  // The sort is most of a commit's cost (a quarter of the apply+commit row's CPU: ~20 comparisons of
  // internal keys per key), and std::sort is cheaper on a vector made of sorted runs (fewer cache
  // misses and mispredicted branches): write() adds each shard's balances, closings and sold rows in
  // key order, which cut the commit's share of the row's CPU by 11-21 % on --preset small and 10-13 %
  // on --preset medium (2026-11-28, README "Commit cost"). A skiplist, even with those sorted runs
  // inserted through a per-prefix hint (memtable_insert_with_hint_prefix_extractor), made the
  // commit's share ~40 % larger than this (4.8 against 3.3-3.4 CPU s per M events, small preset).
  // The vector is RocksDB's, but for the sort: ours merges those runs instead (engine/memtable.h).
  db_options.memtable_factory = std::make_shared<SortedRunsRepFactory>();
  // LZ4 on every level, L0 included: leaving L0 uncompressed saved the flush's LZ4 (~3 % of the
  // apply+commit row's CPU) but a store that stops short of 4 L0 files (every small one) then stays
  // uncompressed: a replay of the small preset took 102 MB instead of 43 MB.
  db_options.compression = rocksdb::kLZ4Compression;
  db_options.allow_concurrent_memtable_write = false;
  db_options.merge_operator = sold_merge_operator();  // the 'Q' rows add (engine/history.h)
  // Until the first write (start_compactions, engine/store.h): not while a start loads.
  db_options.disable_auto_compactions = true;

  // The families the store has: none yet (a new store), the default one only (a store from before
  // the history family), or both.
  std::vector<std::string> names;
  const bool history_family = rocksdb::DB::ListColumnFamilies(db_options, options.path, &names).ok() &&
                              std::find(names.begin(), names.end(), kHistoryColumnFamily) != names.end();
  std::vector<rocksdb::ColumnFamilyDescriptor> descriptors{{rocksdb::kDefaultColumnFamilyName, db_options}};
  if (history_family) descriptors.emplace_back(kHistoryColumnFamily, history_family_options(db_options));
  rocksdb::DB* raw = nullptr;
  std::vector<rocksdb::ColumnFamilyHandle*> raw_handles;
  rocksdb::Status s = options.mode == OpenMode::read_only
                          ? rocksdb::DB::OpenForReadOnly(db_options, options.path, descriptors, &raw_handles, &raw)
                          : rocksdb::DB::Open(db_options, options.path, descriptors, &raw_handles, &raw);
  if (!s.ok()) return io_error("open", s);
  std::unique_ptr<rocksdb::DB> db(raw);
  FamilyHandles handles;
  for (rocksdb::ColumnFamilyHandle* h : raw_handles) handles.emplace_back(h);
  auto close = [&] { handles.clear(); };  // the handles go before the DB
  if (options.mode == OpenMode::read_write) lower_rocksdb_thread_priority();  // if asked: engine/thread_priority.h

  std::string topic;
  s = db->Get(rocksdb::ReadOptions(), rocksdb::Slice(&kTopicKey, 1), &topic);
  if (s.IsNotFound() && options.mode == OpenMode::read_only) {
    close();
    return Status::error(fmt::format("store {} has no events topic: not a qudao store", options.path));
  }
  if (s.IsNotFound()) {
    // A new store: the history family first, so that a store with a topic and without the family
    // is always one from before it.
    if (!history_family) {
      rocksdb::ColumnFamilyHandle* h = nullptr;
      s = db->CreateColumnFamily(history_family_options(db_options), kHistoryColumnFamily, &h);
      if (!s.ok()) return close(), io_error("create the history family", s);
      handles.emplace_back(h);
    }
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Put(wo, rocksdb::Slice(&kTopicKey, 1), options.topic);
    if (!s.ok()) return close(), io_error("put topic", s);
  } else if (!s.ok()) {
    return close(), io_error("get topic", s);
  } else if (topic != options.topic) {
    close();
    return Status::error(fmt::format("store {} follows topic \"{}\", not \"{}\"; use another --data directory",
                                     options.path, topic, options.topic));
  }
  return std::unique_ptr<Store>(new Store(std::move(db), std::move(handles), options));
}

Store::~Store() {
  if (options_.mode == OpenMode::read_write) (void)db_->Flush(rocksdb::FlushOptions(), families());
  families_.clear();  // before the DB closes
}

std::vector<rocksdb::ColumnFamilyHandle*> Store::families() const {
  std::vector<rocksdb::ColumnFamilyHandle*> out;
  for (const auto& h : families_) out.push_back(h.get());
  return out;
}

std::shared_ptr<const rocksdb::Snapshot> Store::snapshot() {
  return std::shared_ptr<const rocksdb::Snapshot>(db_->GetSnapshot(),
                                                  [db = db_.get()](const rocksdb::Snapshot* s) { db->ReleaseSnapshot(s); });
}

Result<std::map<std::int32_t, Shard>> Store::load(std::size_t dedup_window_events, const rocksdb::Snapshot* at,
                                                  std::size_t threads) {
  // Every iterator reads one state: the caller's snapshot, else one taken here (a commit from another
  // thread between two partitions' reads would otherwise show them at different instants).
  std::shared_ptr<const rocksdb::Snapshot> own;
  if (at == nullptr) own = snapshot(), at = own.get();
  rocksdb::ReadOptions read;
  read.snapshot = at;

  auto found = stored_partitions(read);
  if (!found.is_ok()) return found.status();
  std::vector<std::int32_t> partitions = found.take();
  std::map<std::int32_t, Shard> shards;
  for (std::int32_t p : partitions) shards.try_emplace(p, PartitionId{p}, dedup_window_events);

  // Largest first, so that the last partition a thread takes is a small one. The sizes only order
  // the work: the shards do not depend on it.
  std::vector<std::uint64_t> bytes(partitions.size(), 0);
  for (std::size_t i = 0; i < partitions.size(); ++i) {
    for (char tag : kLoadedTags) {
      const std::string begin = partition_key(tag, PartitionId{partitions[i]});
      const std::string end = key_successor(begin);
      const rocksdb::Range range(begin, end);
      std::uint64_t size = 0;
      rocksdb::SizeApproximationOptions approx;
      approx.include_memtables = true;
      if (db_->GetApproximateSizes(approx, db_->DefaultColumnFamily(), &range, 1, &size).ok()) bytes[i] += size;
    }
  }
  std::vector<std::size_t> order(partitions.size());
  for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return bytes[a] > bytes[b]; });

  std::vector<Status> results(partitions.size(), Status::ok());
  std::atomic<std::size_t> next{0};
  auto work = [&] {
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
    for (std::size_t n = next++; n < order.size(); n = next++) {
      const std::size_t i = order[n];
      results[i] = load_partition(*it, shards.at(partitions[i]));
    }
  };
  const std::size_t workers = std::clamp<std::size_t>(threads, 1, std::max<std::size_t>(partitions.size(), 1));
  std::vector<std::thread> pool;
  for (std::size_t w = 1; w < workers; ++w) pool.emplace_back(work);
  work();
  for (std::thread& t : pool) t.join();
  // The first failing partition in partition order, whichever thread met it first.
  for (const Status& s : results) {
    if (!s.is_ok()) return s;
  }
  return shards;
}

Result<std::vector<std::int32_t>> Store::stored_partitions(const rocksdb::ReadOptions& read) {
  std::vector<std::int32_t> partitions;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  it->SeekToFirst();
  while (it->Valid()) {
    const std::string_view key = it->key().ToStringView();
    const char tag = key[0];
    if (std::find(kLoadedTags.begin(), kLoadedTags.end(), tag) != kLoadedTags.end()) {
      codec::Reader k(key.substr(1));
      const auto p = k.be<std::int32_t>();
      if (!k.ok()) return Status::error(fmt::format("store {}: corrupt entry with key tag '{}'", options_.path, tag));
      partitions.push_back(p);
      const std::string after = key_successor(key.substr(0, 1 + sizeof(std::int32_t)));  // its next partition
      if (after.empty()) break;
      it->Seek(after);
      continue;
    }
    switch (tag) {
      case kTopicKey:
      case kDeadLetterKey:
      case kOutboxKey:  // read by outbox()
      case history_keys::kClosing:
      case history_keys::kSold:
      case history_keys::kClosingDay:
      case history_keys::kSoldDay:
      case history_keys::kAnomaly:  // history is read by queries, not loaded
        if (key_successor(key.substr(0, 1)).empty()) break;
        it->Seek(key_successor(key.substr(0, 1)));
        continue;
      default:
        return Status::error(fmt::format("store {}: unknown key tag '{}'", options_.path, tag));
    }
  }
  if (!it->status().ok()) return io_error("load", it->status());
  std::sort(partitions.begin(), partitions.end());
  partitions.erase(std::unique(partitions.begin(), partitions.end()), partitions.end());
  return partitions;
}

Status Store::load_partition(rocksdb::Iterator& it, Shard& shard) {
  const PartitionId p = shard.partition();
  std::optional<std::uint64_t> stored_digest;
  std::vector<std::pair<EventId, std::uint64_t>> seen_entries;
  for (char tag : kLoadedTags) {
    const std::string prefix = partition_key(tag, p);
    for (it.Seek(prefix); it.Valid() && it.key().starts_with(prefix); it.Next()) {
      const std::string_view key = it.key().ToStringView();
      codec::Reader k(key.substr(prefix.size()));
      codec::Reader v(it.value().ToStringView());
      switch (tag) {
        case kHeaderKey: {
          const Offset next{v.le<std::int64_t>()};
          OutcomeCounts c;
          c.consumed = v.le<std::uint64_t>();
          c.applied = v.le<std::uint64_t>();
          c.duplicates = v.le<std::uint64_t>();
          c.rejected = v.le<std::uint64_t>();
          c.anomalies = v.le<std::uint64_t>();
          stored_digest = v.le<std::uint64_t>();
          const TimeMs watermark{v.le<std::int64_t>()};
          const auto outbox_next_seq = v.le<std::uint64_t>();
          const auto seen_oldest_seq = v.le<std::uint64_t>();
          shard.restore_header(next, c, watermark, outbox_next_seq, seen_oldest_seq);
          break;
        }
        case kBalanceKey: {
          const std::optional<StoredBalance> b = parse_balance(key, it.value().ToStringView());
          if (!b) return Status::error(fmt::format("store {}: corrupt balance", options_.path));
          for (const auto& [bucket, qty] : b->listed()) {
            shard.restore_balance(Account{b->sku, b->location, bucket}, Quantity{qty}, b->changed_day, b->layout);
          }
          continue;
        }
        case kLocationKey: {
          const LocationId id{k.be<std::uint64_t>()};
          LocationInfo info;
          info.kind = static_cast<fb::LocationKind>(v.le<std::uint8_t>());
          info.name = v.text();
          info.city = v.text();
          info.region = v.text();
          shard.restore_location(id, std::move(info));
          break;
        }
        case kOrderKey: {
          const OrderId id{k.be<std::uint64_t>()};
          auto o = decode_order(it.value().ToStringView());
          if (!o) return Status::error(fmt::format("store {}: corrupt order {}", options_.path, id.value));
          shard.restore_order(id, std::move(*o));
          break;
        }
        case kShipmentKey: {
          const ShipmentId id{k.be<std::uint64_t>()};
          auto sh = decode_shipment(it.value().ToStringView());
          if (!sh) return Status::error(fmt::format("store {}: corrupt shipment {}", options_.path, id.value));
          shard.restore_shipment(id, std::move(*sh));
          break;
        }
        case kSeenKey: {
          const auto first_seq = k.be<std::uint64_t>();
          seen_entries.clear();
          while (v.ok() && !v.empty()) {
            EventId id;
            id.hi = v.le<std::uint64_t>();
            id.lo = v.le<std::uint64_t>();
            seen_entries.emplace_back(id, v.le<std::uint64_t>());
          }
          shard.restore_seen_segment(first_seq, seen_entries);
          break;
        }
        default: {  // the channel ledger: 'P', 'G', 'M', 'R', 'N' (engine/channel.h)
          if (!shard.channel().restore(channel_key(key), it.value().ToStringView())) {
            return Status::error(fmt::format("store {}: corrupt channel entry with key tag '{}'", options_.path, tag));
          }
          continue;
        }
      }
      if (!k.ok() || !v.ok()) {
        return Status::error(fmt::format("store {}: corrupt entry with key tag '{}'", options_.path, tag));
      }
    }
    if (!it.status().ok()) return io_error("load", it.status());
  }
  shard.finish_restore();
  if (!stored_digest || *stored_digest != shard.digest()) {
    return Status::error(fmt::format("store {}: partition {} state does not match its digest (stored {:016x}, "
                                     "computed {:016x}); the store is corrupt",
                                     options_.path, p.value, stored_digest.value_or(0), shard.digest()));
  }
  return Status::ok();
}

Result<CommitStats> Store::commit(std::span<Shard* const> shards) {
  PreparedCommit c = prepare(shards);
  if (Status s = write(c); !s.is_ok()) return s;
  return c.stats;
}

PreparedCommit Store::prepare(std::span<Shard* const> shards) {
  PreparedCommit c;
  rocksdb::WriteBatch& batch = c.batch;
  const std::int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                  std::chrono::system_clock::now().time_since_epoch()).count();
  CommitStats& stats = c.stats;
  std::string key, value;
  for (Shard* s : shards) {
    const std::vector<std::uint64_t> expired = s->expired_seen_segments();
    if (!s->header_dirty() && s->dirty_balances().empty() && s->dirty_locations().empty() && expired.empty() &&
        s->dirty_orders().empty() && s->dirty_shipments().empty() && !s->relayed_dirty() && !s->channel().dirty() &&
        !s->history().pending()) {
      continue;
    }
    s->channel().for_each_dirty([&](const std::string& channel_key, const std::string& channel_value) {
      key = partition_key(channel_key[0], s->partition());
      key.append(channel_key, 1);
      batch.Put(key, channel_value);
      ++stats.channel;
    });
    for (OrderId id : s->dirty_orders()) {
      key = partition_key(kOrderKey, s->partition());
      codec::put_be<std::uint64_t>(key, id.value);
      batch.Put(key, encode(*s->order(id)));
    }
    for (ShipmentId id : s->dirty_shipments()) {
      key = partition_key(kShipmentKey, s->partition());
      codec::put_be<std::uint64_t>(key, id.value);
      batch.Put(key, encode(*s->shipment(id)));
    }
    if (!s->seen_pending().empty()) {
      value.clear();
      value.reserve(s->seen_pending().size() * 24);
      for (const auto& [id, hash] : s->seen_pending()) {
        codec::put_le<std::uint64_t>(value, id.hi);
        codec::put_le<std::uint64_t>(value, id.lo);
        codec::put_le<std::uint64_t>(value, hash);
      }
      batch.Put(seen_key(s->partition(), s->seen_pending_first_seq()), value);
    }
    for (std::uint64_t first_seq : expired) batch.Delete(seen_key(s->partition(), first_seq));
    stats.orders_shipments += s->dirty_orders().size() + s->dirty_shipments().size();
    stats.outbox += s->outbox_pending().size();
    for (const OutboxRow& row : s->outbox_pending()) {
      OutboxRow& copy = c.outbox.emplace_back(s->partition(), row).second;
      copy.created_ms = now_ms;
      batch.Put(outbox_key(s->partition(), row.seq), outbox_value(copy));
    }
    if (s->relayed_dirty()) {
      // One range tombstone for every row the relay has delivered so far.
      batch.DeleteRange(outbox_key(s->partition(), 0), outbox_key(s->partition(), *s->relayed_through() + 1));
    }
    // One lookup per dirty balance takes its quantity and clears its mark; write() encodes them
    // (and counts them: a pair's buckets share one key).
    c.deferred.emplace_back(PreparedCommit::Deferred{s->partition(), s->take_dirty_balances(), s->take_history()});
    for (LocationId id : s->dirty_locations()) {
      const LocationInfo& info = *s->location(id);
      key = partition_key(kLocationKey, s->partition());
      codec::put_be<std::uint64_t>(key, id.value);
      value.clear();
      codec::put_le<std::uint8_t>(value, static_cast<std::uint8_t>(info.kind));
      codec::put_text(value, info.name);
      codec::put_text(value, info.city);
      codec::put_text(value, info.region);
      batch.Put(key, value);
    }
    for (const DeadLetter& d : s->dead_letters()) {
      key = partition_key(kDeadLetterKey, s->partition());
      codec::put_be<std::int64_t>(key, d.offset.value);
      value.clear();
      codec::put_le<std::uint16_t>(value, static_cast<std::uint16_t>(d.rejection.reason));
      codec::put_text(value, d.rejection.field);
      codec::put_text(value, d.rejection.message);
      value.append(d.bytes);
      batch.Put(key, value);
    }
    batch.Put(partition_key(kHeaderKey, s->partition()), header_value(*s));
    stats.locations += s->dirty_locations().size();
    stats.dead_letters += s->dead_letters().size();
  }
  for (Shard* s : shards) {
    c.next_offsets.emplace_back(s->partition(), s->next_offset());
    s->mark_clean();
  }
  return c;
}

namespace {
// An evicted entry read back by its id: nothing if absent. Fatal on an I/O error or a value that
// does not decode (see read_order in store.h): the engine cannot apply without it.
template <typename Entry, typename Id, typename Decode>
std::optional<Entry> read_entry_or_die(rocksdb::DB& db, char prefix, PartitionId p, Id id, Decode decode,
                                       std::string_view what, const std::string& path) {
  std::string key = partition_key(prefix, p);
  codec::put_be<std::uint64_t>(key, id.value);
  std::string value;
  const rocksdb::Status s = db.Get(rocksdb::ReadOptions(), key, &value);
  if (s.IsNotFound()) return std::nullopt;
  if (!s.ok()) {
    spdlog::critical("store {}: reading an evicted {} back: {}", path, what, s.ToString());
    std::abort();
  }
  std::optional<Entry> entry = decode(value);
  if (!entry) {
    spdlog::critical("store {}: corrupt {} {}", path, what, id.value);
    std::abort();
  }
  return entry;
}
}  // namespace

std::optional<Order> Store::read_order(PartitionId p, OrderId id) {
  return read_entry_or_die<Order>(*db_, kOrderKey, p, id, decode_order, "order", options_.path);
}

std::optional<Shipment> Store::read_shipment(PartitionId p, ShipmentId id) {
  return read_entry_or_die<Shipment>(*db_, kShipmentKey, p, id, decode_shipment, "shipment", options_.path);
}

void Store::start_compactions() {
  if (options_.mode != OpenMode::read_write || compactions_started_.exchange(true)) return;
  for (rocksdb::ColumnFamilyHandle* family : families()) {
    if (rocksdb::Status s = db_->SetOptions(family, {{"disable_auto_compactions", "false"}}); !s.ok()) {
      spdlog::critical("store {}: cannot turn compactions on: {}", options_.path, s.ToString());
      std::abort();  // a store that never compacts stalls its writes once L0 fills up: better stop now
    }
  }
}

Status Store::write(PreparedCommit& c) {
  start_compactions();
  std::string key, value;
  for (PreparedCommit::Deferred& d : c.deferred) {
    // In key order (the memtable's flush sort is cheaper on sorted runs: engine/store.h): the pairs
    // and the virtual accounts sorted apart, then merged (a pair's key has bucket byte 0).
    std::vector<Shard::DirtyPair>& pairs = d.balances.pairs;
    std::vector<Shard::DirtyBalance>& accounts = d.balances.accounts;
    std::sort(pairs.begin(), pairs.end(), [](const Shard::DirtyPair& a, const Shard::DirtyPair& b) {
      return std::tie(a.sku, a.location) < std::tie(b.sku, b.location);
    });
    std::sort(accounts.begin(), accounts.end(), [](const Shard::DirtyBalance& a, const Shard::DirtyBalance& b) {
      return a.account < b.account;
    });
    auto put_pair = [&](const Shard::DirtyPair& pair) {
      assign_balance_key(key, d.partition, pair.sku, pair.location, kPairBucketByte);
      value.clear();
      for (std::int64_t q : pair.qty) codec::put_le<std::int64_t>(value, q);
      codec::put_le<std::uint8_t>(value, pair.exists);
      codec::put_le<std::int32_t>(value, pair.changed_day.value);
      c.batch.Put(key, value);
      ++c.stats.balances;
      for (int i = 0; i < Shard::kStockBuckets; ++i) {  // an older store's keys of the same buckets
        if (!(pair.legacy & (1u << i))) continue;
        assign_balance_key(key, d.partition, pair.sku, pair.location, static_cast<std::uint8_t>(Shard::kStockBucketOf[i]));
        c.batch.Delete(key);
        ++c.stats.balances;
      }
    };
    auto put_account = [&](const Shard::DirtyBalance& b) {
      assign_balance_key(key, d.partition, b.account.sku, b.account.location, static_cast<std::uint8_t>(b.account.bucket));
      value.clear();
      codec::put_le<std::int64_t>(value, b.qty);
      c.batch.Put(key, value);
      ++c.stats.balances;
    };
    auto next_pair = pairs.begin();
    for (const Shard::DirtyBalance& b : accounts) {
      for (; next_pair != pairs.end() && std::tie(next_pair->sku, next_pair->location) <=
                                             std::tie(b.account.sku, b.account.location);
           ++next_pair) {
        put_pair(*next_pair);
      }
      put_account(b);
    }
    for (; next_pair != pairs.end(); ++next_pair) put_pair(*next_pair);
    c.stats.history += d.history.write_to(d.partition, c.batch, history_);
  }
  c.deferred.clear();
  c.stats.keys = c.batch.Count();
  c.stats.bytes = c.batch.Count() == 0 ? 0 : c.batch.GetDataSize();
  if (c.batch.Count() == 0) return Status::ok();
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncMode::fsync;
  const rocksdb::Status st = db_->Write(wo, &c.batch);
  if (!st.ok()) return io_error("commit", st);
  return Status::ok();
}

Status Store::settle() {
  start_compactions();  // else a store not yet written would wait for compactions that never run
  rocksdb::FlushOptions flush;
  flush.wait = true;
  if (rocksdb::Status s = db_->Flush(flush, families()); !s.ok()) return io_error("flush", s);
  const auto deadline = std::chrono::steady_clock::now() + kSettleTimeout;
  // Universal compaction (the history family) says a compaction is pending once its sorted runs
  // reach the trigger, even when its picker then chooses none (RocksDB 7.8: it merges only above
  // the trigger), so a pending flag with nothing running for kSettleIdle is settled too: a
  // compaction RocksDB has chosen starts within microseconds of being scheduled.
  constexpr auto kSettleIdle = std::chrono::milliseconds(200);
  auto idle_since = std::chrono::steady_clock::time_point::max();  // max: something is running
  for (;;) {
    std::uint64_t pending = 0, compactions = 0, flushes = 0;
    if (!db_->GetIntProperty(rocksdb::DB::Properties::kNumRunningCompactions, &compactions) ||
        !db_->GetIntProperty(rocksdb::DB::Properties::kNumRunningFlushes, &flushes)) {
      return Status::error("rocksdb settle: the compaction properties are not available");
    }
    for (rocksdb::ColumnFamilyHandle* family : families()) {  // pending is per family
      std::uint64_t family_pending = 0;
      if (!db_->GetIntProperty(family, rocksdb::DB::Properties::kCompactionPending, &family_pending)) {
        return Status::error("rocksdb settle: the compaction properties are not available");
      }
      pending += family_pending;
    }
    const auto now = std::chrono::steady_clock::now();
    if (compactions == 0 && flushes == 0) {
      if (idle_since == std::chrono::steady_clock::time_point::max()) idle_since = now;
      if (pending == 0 || now - idle_since >= kSettleIdle) return Status::ok();
    } else {
      idle_since = std::chrono::steady_clock::time_point::max();
    }
    if (now > deadline) {
      return Status::error(fmt::format("rocksdb settle: compactions still running after {} s", kSettleTimeout.count()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

Result<std::map<std::int32_t, std::vector<OutboxRow>>> Store::outbox() {
  std::map<std::int32_t, std::vector<OutboxRow>> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(1, kOutboxKey);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix); it->Next()) {
    codec::Reader k(it->key().ToStringView().substr(1));
    codec::Reader v(it->value().ToStringView());
    const auto p = k.be<std::int32_t>();
    OutboxRow row;
    row.seq = k.be<std::uint64_t>();
    row.topic = static_cast<OutboxTopic>(v.le<std::uint8_t>());
    row.created_ms = v.le<std::int64_t>();
    row.key = v.text();
    const auto headers = v.le<std::uint32_t>();
    for (std::uint32_t i = 0; i < headers && v.ok(); ++i) {
      std::string name = v.text();
      row.headers.emplace_back(std::move(name), v.text());
    }
    row.value = std::string(v.rest());
    if (!k.ok() || !v.ok() || (row.topic != OutboxTopic::dispatch && row.topic != OutboxTopic::dead_letters &&
                                    row.topic != OutboxTopic::events)) {
      return Status::error(fmt::format("store {}: corrupt outbox row", options_.path));
    }
    out[p].push_back(std::move(row));
  }
  if (!it->status().ok()) return io_error("outbox", it->status());
  return out;
}

namespace {
// The default family and the history family read as one key order, as the export lists them
// (their keys never coincide: the history tags are only in the history family, when there is one).
class BothFamilies {
 public:
  BothFamilies(rocksdb::Iterator& state, rocksdb::Iterator* history) : state_(state), history_(history) {}
  void SeekToFirst() {
    state_.SeekToFirst();
    if (history_) history_->SeekToFirst();
    pick();
  }
  void Next() {
    current_->Next();
    pick();
  }
  bool Valid() const { return current_ != nullptr; }
  rocksdb::Slice key() const { return current_->key(); }
  rocksdb::Slice value() const { return current_->value(); }
  rocksdb::Status status() const { return !state_.status().ok() || !history_ ? state_.status() : history_->status(); }

 private:
  void pick() {
    const bool history_next = history_ && history_->Valid() && (!state_.Valid() || history_->key().compare(state_.key()) < 0);
    current_ = history_next ? history_ : state_.Valid() ? &state_ : nullptr;
  }
  rocksdb::Iterator& state_;
  rocksdb::Iterator* history_;  // null in a store from before the history family
  rocksdb::Iterator* current_ = nullptr;
};

// The packed history days ('K', then 'U') of one view as the unpacked rows they stand for ('C' and
// 'Q' keys and values), in those rows' key order: a closing row's key has the sku before the day, so
// a location's closing days are gathered and sorted (a location's history, a few MB at most); a
// sold day's rows are in order as stored.
class UnpackedRows {
 public:
  explicit UnpackedRows(rocksdb::Iterator& it) : it_(it) {
    it_.Seek(std::string(1, history_keys::kClosingDay));
    fill();
  }
  bool Valid() const { return next_ < rows_.size(); }
  const std::string& key() const { return rows_[next_].first; }
  const std::string& value() const { return rows_[next_].second; }
  void Next() {
    if (++next_ == rows_.size()) fill();
  }
  bool corrupt() const { return corrupt_; }
  rocksdb::Status status() const { return it_.status(); }

 private:
  static constexpr std::size_t kLocationPrefix = 1 + sizeof(std::int32_t) + sizeof(std::uint64_t);
  struct ClosingRow {
    SkuId sku;
    Day day;
    ClosingLevels levels;
  };
  void fill() {
    rows_.clear();
    next_ = 0;
    while (rows_.empty() && !corrupt_ && it_.Valid()) {
      const std::string_view key = it_.key().ToStringView();
      if (key[0] == history_keys::kClosingDay) {
        fill_location_closings(key.substr(0, kLocationPrefix));
      } else if (key[0] < history_keys::kSoldDay) {
        it_.Seek(std::string(1, history_keys::kSoldDay));
      } else if (key[0] == history_keys::kSoldDay) {
        fill_sold_day(key);
        it_.Next();
      } else {
        return;  // past the packed days
      }
    }
  }
  std::pair<PartitionId, LocationId> location_of(std::string_view prefix) {
    codec::Reader k(prefix.substr(1));
    const PartitionId p{k.be<std::int32_t>()};
    return {p, LocationId{k.be<std::uint64_t>()}};
  }
  void fill_location_closings(std::string_view key) {
    const std::string prefix(key);
    const auto [p, location] = location_of(prefix);
    std::vector<ClosingRow> days;
    for (; it_.Valid() && it_.key().starts_with(prefix); it_.Next()) {
      const std::optional<Day> day = history_keys::day_of_key(it_.key().ToStringView());
      if (!day) return void(corrupt_ = true);
      packed_day::Reader r(it_.value().ToStringView(), packed_day::Reader::Kind::closings);
      while (r.next()) days.push_back({r.sku(), *day, r.levels()});
      if (r.corrupt()) return void(corrupt_ = true);
    }
    std::sort(days.begin(), days.end(), [](const ClosingRow& a, const ClosingRow& b) {
      return std::tie(a.sku, a.day) < std::tie(b.sku, b.day);
    });
    rows_.reserve(days.size());
    for (const ClosingRow& c : days) {
      rows_.emplace_back(history_keys::closing(p, location, c.sku, c.day), history_keys::closing_value(c.levels));
    }
  }
  void fill_sold_day(std::string_view key) {
    const auto [p, location] = location_of(key);
    const std::optional<Day> day = history_keys::day_of_key(key);
    if (!day) return void(corrupt_ = true);
    packed_day::Reader r(it_.value().ToStringView(), packed_day::Reader::Kind::sales);
    while (r.next()) {
      std::string value;
      codec::put_le<std::int64_t>(value, r.qty());
      rows_.emplace_back(history_keys::sold(p, location, *day, r.sku()), std::move(value));
    }
    if (r.corrupt()) corrupt_ = true;
  }
  rocksdb::Iterator& it_;
  std::vector<std::pair<std::string, std::string>> rows_;
  std::size_t next_ = 0;
  bool corrupt_ = false;
};
}  // namespace

Result<std::string> Store::state_sha256() {
  const std::shared_ptr<const rocksdb::Snapshot> view = snapshot();  // one consistent view of every family
  rocksdb::ReadOptions read;
  read.snapshot = view.get();
  std::vector<rocksdb::Iterator*> raw;
  if (rocksdb::Status s = db_->NewIterators(read, families(), &raw); !s.ok()) return io_error("export", s);
  std::vector<std::unique_ptr<rocksdb::Iterator>> families_its;
  for (rocksdb::Iterator* i : raw) families_its.emplace_back(i);
  const std::unique_ptr<rocksdb::Iterator> packed_it(db_->NewIterator(read, history_));
  UnpackedRows packed(*packed_it);
  BothFamilies both(*families_its[0], families_its.size() > 1 ? families_its[1].get() : nullptr);
  rocksdb::Iterator& state = *families_its[0];  // the default family's, for the headers
  // The current day's closings are not stored rows but the balances of the pairs changed on it
  // (engine/history.h). The export lists them as rows, in key order, so that it does not depend on
  // when the day was closed (and is what it was when commits wrote them).
  std::map<std::int32_t, Day> today;
  const std::string header_prefix(1, kHeaderKey);
  for (state.Seek(header_prefix); state.Valid() && state.key().starts_with(header_prefix); state.Next()) {
    codec::Reader k(state.key().ToStringView().substr(1));
    const auto p = k.be<std::int32_t>();
    const std::optional<Day> day = header_day(state.value().ToStringView());
    if (!k.ok() || !day) return Status::error(fmt::format("store {}: corrupt header", options_.path));
    today[p] = *day;
  }
  std::map<std::string, std::string> current;  // closing key -> value
  std::optional<StoredBalance> pair;           // the (location, sku) being summed, its newest day
  ClosingLevels levels;
  auto end_pair = [&] {
    if (!pair) return;
    const auto t = today.find(pair->partition.value);
    if (t != today.end() && pair->changed_day == t->second) {
      current.emplace(history_keys::closing(pair->partition, pair->location, pair->sku, t->second),
                      history_keys::closing_value(levels));
    }
    pair.reset();
  };

  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::string frame;
  auto add = [&](std::string_view key, std::string_view value) {
    frame.clear();
    codec::put_text(frame, key);
    codec::put_text(frame, value);
    EVP_DigestUpdate(ctx, frame.data(), frame.size());
  };
  auto next_current = current.begin();  // valid once the balances are past
  // The rows not stored as such (the current day's closings, the packed days' rows) that sort
  // before `key` (all of them: nothing), merged in key order; a current day's closing replaces a
  // packed one of the same key.
  auto add_unstored_before = [&](std::optional<std::string_view> key) {
    for (;;) {
      const bool current_next = next_current != current.end() && (!key || next_current->first < *key);
      const bool packed_next = packed.Valid() && (!key || packed.key() < *key);
      if (current_next && (!packed_next || next_current->first <= packed.key())) {
        if (packed_next && packed.key() == next_current->first) packed.Next();
        add(next_current->first, next_current->second);
        ++next_current;
      } else if (packed_next) {
        add(packed.key(), packed.value());
        packed.Next();
      } else {
        return;
      }
    }
  };
  bool balances_done = false;
  for (both.SeekToFirst(); both.Valid(); both.Next()) {
    const std::string_view key = both.key().ToStringView();
    const char tag = key[0];
    if (tag > kBalanceKey && !balances_done) {
      end_pair();
      balances_done = true;
      next_current = current.begin();
    }
    if (balances_done) add_unstored_before(key);
    if (tag != kHeaderKey && tag != kBalanceKey && tag != kLocationKey && tag != kDeadLetterKey && tag != kOrderKey &&
        tag != kShipmentKey && !ChannelLedger::is_channel_tag(tag) && tag != history_keys::kClosing &&
        tag != history_keys::kSold && tag != history_keys::kAnomaly) {
      continue;  // the packed days ('K', 'U') are listed as their rows, above
    }
    std::string_view value = both.value().ToStringView();
    // A header's last field (the window's oldest seq) depends on the window size, not the ledger.
    if (tag == kHeaderKey) value.remove_suffix(sizeof(std::uint64_t));
    if (tag == kBalanceKey) {
      const std::optional<StoredBalance> b = parse_balance(key, value);
      if (!b) {
        EVP_MD_CTX_free(ctx);
        return Status::error(fmt::format("store {}: corrupt balance", options_.path));
      }
      if (b->has_stock() && b->location != kVirtualLocation) {
        if (!pair || pair->partition != b->partition || pair->sku != b->sku || pair->location != b->location) {
          end_pair();
          pair = b, levels = {};
        }
        pair->changed_day = std::max(pair->changed_day, b->changed_day);
        for (const auto& [bucket, qty] : b->listed()) add_to_levels(levels, bucket, qty);
      }
      // One row per account, as when each had a key of its own, without the day (the closings' rows
      // have it): a pair's key lists its buckets in key order, before any other key.
      std::string row_key(key);
      std::string row_value;
      for (const auto& [bucket, qty] : b->listed()) {
        row_key.back() = static_cast<char>(bucket);
        row_value.clear();
        codec::put_le<std::int64_t>(row_value, qty);
        add(row_key, row_value);
      }
      continue;
    }
    const bool packed_same = packed.Valid() && packed.key() == key;
    // A stored closing of the current day (written by a version that wrote them at each commit) is
    // replaced by the one the balances give; an unpacked closing also stored packed, by the packed.
    if (tag == history_keys::kClosing && next_current != current.end() && next_current->first == key) {
      if (packed_same) packed.Next();
      add(next_current->first, next_current->second);
      ++next_current;
      continue;
    }
    if (tag == history_keys::kClosing && packed_same) {
      add(packed.key(), packed.value());
      packed.Next();
      continue;
    }
    // A sold row stored both ways (a store upgraded in the middle of a day): one row, the sum.
    if (tag == history_keys::kSold && packed_same) {
      codec::Reader a(value), b(packed.value());
      std::string sum;
      codec::put_le<std::int64_t>(sum, a.le<std::int64_t>() + b.le<std::int64_t>());
      add(key, sum);
      packed.Next();
      continue;
    }
    add(key, value);
  }
  if (!balances_done) end_pair(), next_current = current.begin();
  add_unstored_before(std::nullopt);
  if (packed.corrupt()) {
    EVP_MD_CTX_free(ctx);
    return Status::error(fmt::format("store {}: corrupt packed history", options_.path));
  }
  if (!packed.status().ok()) {
    EVP_MD_CTX_free(ctx);
    return io_error("export", packed.status());
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  if (!both.status().ok()) return io_error("export", both.status());
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
}

// ---- HistoryReader's current day (declared in engine/store.h): it reads the balances and headers ----

Result<std::optional<Day>> HistoryReader::today(PartitionId p) {
  if (auto known = today_.find(p.value); known != today_.end()) return known->second;
  const std::string key = partition_key(kHeaderKey, p);
  std::optional<Day> day;
  state_it_->Seek(key);
  if (state_it_->Valid() && state_it_->key() == key) {
    day = header_day(state_it_->value().ToStringView());
    if (!day) return Status::error(fmt::format("store {}: corrupt header", path_));
  }
  if (!state_it_->status().ok()) return io_error("header", state_it_->status());
  today_[p.value] = day;
  return day;
}

Result<std::optional<HistoryReader::StoredPair>> HistoryReader::stored_pair(PartitionId p, LocationId location,
                                                                           SkuId sku) {
  std::string prefix = partition_key(kBalanceKey, p);
  codec::put_be<std::uint64_t>(prefix, sku.value);
  codec::put_be<std::uint64_t>(prefix, location.value);
  StoredPair pair{{}, Day{Shard::kNoDay}};
  bool any = false;
  for (state_it_->Seek(prefix); state_it_->Valid() && state_it_->key().starts_with(prefix); state_it_->Next()) {
    const std::optional<StoredBalance> b = parse_balance(state_it_->key().ToStringView(), state_it_->value().ToStringView());
    if (!b) return Status::error(fmt::format("store {}: corrupt balance", path_));
    for (const auto& [bucket, qty] : b->listed()) add_to_levels(pair.levels, bucket, qty);
    pair.changed_day = std::max(pair.changed_day, b->changed_day);
    any = true;
  }
  if (!state_it_->status().ok()) return io_error("balances", state_it_->status());
  if (!any) return std::optional<StoredPair>{};
  return std::optional<StoredPair>{pair};
}

Result<std::vector<DeadLetter>> Store::dead_letters(PartitionId partition, Offset from, std::size_t limit) {
  std::vector<DeadLetter> out;
  const std::string prefix = partition_key(kDeadLetterKey, partition);
  std::string start = prefix;
  codec::put_be<std::int64_t>(start, from.value);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek(start); it->Valid() && out.size() < limit && it->key().starts_with(prefix); it->Next()) {
    codec::Reader k(it->key().ToStringView().substr(prefix.size()));
    codec::Reader v(it->value().ToStringView());
    DeadLetter d;
    d.offset = Offset{k.be<std::int64_t>()};
    d.rejection.reason = static_cast<RejectReason>(v.le<std::uint16_t>());
    d.rejection.field = v.text();
    d.rejection.message = v.text();
    d.bytes = std::string(v.rest());
    if (!k.ok() || !v.ok()) return Status::error(fmt::format("store {}: corrupt dead letter", options_.path));
    out.push_back(std::move(d));
  }
  if (!it->status().ok()) return io_error("dead letters", it->status());
  return out;
}

}  // namespace qudao
