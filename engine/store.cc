#include "engine/store.h"

#include <fmt/format.h>
#include <openssl/evp.h>
#include <rocksdb/memtablerep.h>

#include <chrono>
#include <rocksdb/write_batch.h>

#include "engine/codec.h"
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

}  // namespace

Result<std::unique_ptr<Store>> Store::open(const StoreOptions& options) {
  rocksdb::Options db_options;
  db_options.create_if_missing = true;
  db_options.IncreaseParallelism(2);
  db_options.compression = rocksdb::kLZ4Compression;
  // The engine writes tens of thousands of keys per commit and reads the store back only to load
  // it, audit it or list dead letters. A vector memtable appends each key (sorting once, when it is
  // flushed or iterated) where the default skiplist pays ~20 key comparisons per insert: measured
  // here, a commit of ~60k keys took 38 ms instead of 152 ms. The price: an iterator over the live
  // memtable sorts a copy of it, so a dead-letter listing during heavy ingest costs up to ~100 ms.
  db_options.memtable_factory = std::make_shared<rocksdb::VectorRepFactory>();
  db_options.allow_concurrent_memtable_write = false;
  db_options.merge_operator = sold_merge_operator();  // the 'Q' rows add (engine/history.h)
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = options.mode == OpenMode::read_only
                          ? rocksdb::DB::OpenForReadOnly(db_options, options.path, &raw)
                          : rocksdb::DB::Open(db_options, options.path, &raw);
  if (!s.ok()) return io_error("open", s);
  std::unique_ptr<rocksdb::DB> db(raw);
  if (options.mode == OpenMode::read_write) lower_rocksdb_thread_priority();  // if asked: engine/thread_priority.h

  std::string topic;
  s = db->Get(rocksdb::ReadOptions(), rocksdb::Slice(&kTopicKey, 1), &topic);
  if (s.IsNotFound() && options.mode == OpenMode::read_only) {
    return Status::error(fmt::format("store {} has no events topic: not a qudao store", options.path));
  }
  if (s.IsNotFound()) {
    rocksdb::WriteOptions wo;
    wo.sync = true;
    s = db->Put(wo, rocksdb::Slice(&kTopicKey, 1), options.topic);
    if (!s.ok()) return io_error("put topic", s);
  } else if (!s.ok()) {
    return io_error("get topic", s);
  } else if (topic != options.topic) {
    return Status::error(fmt::format("store {} follows topic \"{}\", not \"{}\"; use another --data directory",
                                     options.path, topic, options.topic));
  }
  return std::unique_ptr<Store>(new Store(std::move(db), options));
}

Store::~Store() {
  if (options_.mode == OpenMode::read_write) (void)db_->Flush(rocksdb::FlushOptions());
}

std::shared_ptr<const rocksdb::Snapshot> Store::snapshot() {
  return std::shared_ptr<const rocksdb::Snapshot>(db_->GetSnapshot(),
                                                  [db = db_.get()](const rocksdb::Snapshot* s) { db->ReleaseSnapshot(s); });
}

Result<std::map<std::int32_t, Shard>> Store::load(std::size_t dedup_window_events, const rocksdb::Snapshot* at) {
  std::map<std::int32_t, Shard> shards;
  std::map<std::int32_t, std::uint64_t> stored_digests;
  std::vector<std::pair<EventId, std::uint64_t>> seen_entries;
  auto shard = [&](std::int32_t p) -> Shard& {
    return shards.try_emplace(p, PartitionId{p}, dedup_window_events).first->second;
  };

  rocksdb::ReadOptions read;
  read.snapshot = at;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(read));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view key = it->key().ToStringView();
    if (key[0] == history_keys::kClosing || key[0] == history_keys::kSold || key[0] == history_keys::kAnomaly) {
      // History is read by queries, not loaded: skip to its last key, whatever its length.
      it->Seek(std::string(1, static_cast<char>(key[0] + 1)));
      if (it->Valid()) it->Prev();
      else it->SeekToLast();
      continue;
    }
    codec::Reader k(key.substr(1));
    codec::Reader v(it->value().ToStringView());
    switch (key[0]) {
      case kHeaderKey: {
        const auto p = k.be<std::int32_t>();
        const Offset next{v.le<std::int64_t>()};
        OutcomeCounts c;
        c.consumed = v.le<std::uint64_t>();
        c.applied = v.le<std::uint64_t>();
        c.duplicates = v.le<std::uint64_t>();
        c.rejected = v.le<std::uint64_t>();
        c.anomalies = v.le<std::uint64_t>();
        stored_digests[p] = v.le<std::uint64_t>();
        const TimeMs watermark{v.le<std::int64_t>()};
        const auto outbox_next_seq = v.le<std::uint64_t>();
        const auto seen_oldest_seq = v.le<std::uint64_t>();
        shard(p).restore_header(next, c, watermark, outbox_next_seq, seen_oldest_seq);
        break;
      }
      case kBalanceKey: {
        const auto p = k.be<std::int32_t>();
        Account a;
        a.sku = SkuId{k.be<std::uint64_t>()};
        a.location = LocationId{k.be<std::uint64_t>()};
        a.bucket = static_cast<Bucket>(k.be<std::uint8_t>());
        shard(p).restore_balance(a, Quantity{v.le<std::int64_t>()});
        break;
      }
      case kLocationKey: {
        const auto p = k.be<std::int32_t>();
        const LocationId id{k.be<std::uint64_t>()};
        LocationInfo info;
        info.kind = static_cast<fb::LocationKind>(v.le<std::uint8_t>());
        info.name = v.text();
        info.city = v.text();
        info.region = v.text();
        shard(p).restore_location(id, std::move(info));
        break;
      }
      case kOrderKey: {
        const auto p = k.be<std::int32_t>();
        const OrderId id{k.be<std::uint64_t>()};
        auto o = decode_order(it->value().ToStringView());
        if (!o) return Status::error(fmt::format("store {}: corrupt order {}", options_.path, id.value));
        shard(p).restore_order(id, std::move(*o));
        break;
      }
      case kShipmentKey: {
        const auto p = k.be<std::int32_t>();
        const ShipmentId id{k.be<std::uint64_t>()};
        auto sh = decode_shipment(it->value().ToStringView());
        if (!sh) return Status::error(fmt::format("store {}: corrupt shipment {}", options_.path, id.value));
        shard(p).restore_shipment(id, std::move(*sh));
        break;
      }
      case kSeenKey: {
        const auto p = k.be<std::int32_t>();
        const auto first_seq = k.be<std::uint64_t>();
        seen_entries.clear();
        while (v.ok() && !v.empty()) {
          EventId id;
          id.hi = v.le<std::uint64_t>();
          id.lo = v.le<std::uint64_t>();
          seen_entries.emplace_back(id, v.le<std::uint64_t>());
        }
        shard(p).restore_seen_segment(first_seq, seen_entries);
        break;
      }
      case 'P': case 'G': case 'M': case 'R': case 'N': {  // the channel ledger (engine/channel.h)
        const auto p = k.be<std::int32_t>();
        if (!k.ok() || !shard(p).channel().restore(channel_key(key), it->value().ToStringView())) {
          return Status::error(fmt::format("store {}: corrupt channel entry with key tag '{}'", options_.path, key[0]));
        }
        continue;
      }
      case kTopicKey:
      case kDeadLetterKey:
      case kOutboxKey:  // read by outbox()
        continue;
      default:
        return Status::error(fmt::format("store {}: unknown key tag '{}'", options_.path, key[0]));
    }
    if (!k.ok() || !v.ok()) {
      return Status::error(fmt::format("store {}: corrupt entry with key tag '{}'", options_.path, key[0]));
    }
  }
  if (!it->status().ok()) return io_error("load", it->status());

  for (auto& [p, s] : shards) {
    s.finish_restore();
    const auto stored = stored_digests.find(p);
    if (stored == stored_digests.end() || stored->second != s.digest()) {
      return Status::error(fmt::format("store {}: partition {} state does not match its digest (stored {:016x}, "
                                       "computed {:016x}); the store is corrupt",
                                       options_.path, p, stored == stored_digests.end() ? 0 : stored->second,
                                       s.digest()));
    }
  }
  return shards;
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
    s->close_changed(day_of(s->watermark()));  // the current day's closings so far
    if (!s->header_dirty() && s->dirty_balances().empty() && s->dirty_locations().empty() && expired.empty() &&
        s->dirty_orders().empty() && s->dirty_shipments().empty() && !s->relayed_dirty() && !s->channel().dirty() &&
        !s->history().pending()) {
      continue;
    }
    s->channel().for_each_dirty([&](const std::string& channel_key, const std::string& channel_value) {
      key = partition_key(channel_key[0], s->partition());
      key.append(channel_key, 1);
      batch.Put(key, channel_value);
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
    for (const OutboxRow& row : s->outbox_pending()) {
      OutboxRow& copy = c.outbox.emplace_back(s->partition(), row).second;
      copy.created_ms = now_ms;
      batch.Put(outbox_key(s->partition(), row.seq), outbox_value(copy));
    }
    if (s->relayed_dirty()) {
      // One range tombstone for every row the relay has delivered so far.
      batch.DeleteRange(outbox_key(s->partition(), 0), outbox_key(s->partition(), *s->relayed_through() + 1));
    }
    // One lookup per dirty balance takes its quantity and clears its mark; write() encodes them.
    PreparedCommit::Deferred& d = c.deferred.emplace_back(
        PreparedCommit::Deferred{s->partition(), s->take_dirty_balances(), s->take_history()});
    stats.balances += d.balances.size();
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

Status Store::write(PreparedCommit& c) {
  std::string key, value;
  for (PreparedCommit::Deferred& d : c.deferred) {
    for (const auto& [a, qty] : d.balances) {
      key = partition_key(kBalanceKey, d.partition);
      codec::put_be<std::uint64_t>(key, a.sku.value);
      codec::put_be<std::uint64_t>(key, a.location.value);
      codec::put_be<std::uint8_t>(key, static_cast<std::uint8_t>(a.bucket));
      value.clear();
      codec::put_le<std::int64_t>(value, qty);
      c.batch.Put(key, value);
    }
    d.history.write_to(d.partition, c.batch);
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
    if (!k.ok() || !v.ok() || (row.topic != OutboxTopic::dispatch && row.topic != OutboxTopic::dead_letters)) {
      return Status::error(fmt::format("store {}: corrupt outbox row", options_.path));
    }
    out[p].push_back(std::move(row));
  }
  if (!it->status().ok()) return io_error("outbox", it->status());
  return out;
}

Result<std::string> Store::state_sha256() {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  std::string frame;
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const char tag = it->key()[0];
    if (tag != kHeaderKey && tag != kBalanceKey && tag != kLocationKey && tag != kDeadLetterKey && tag != kOrderKey &&
        tag != kShipmentKey && !ChannelLedger::is_channel_tag(tag) && tag != history_keys::kClosing &&
        tag != history_keys::kSold && tag != history_keys::kAnomaly) {
      continue;
    }
    std::string_view value = it->value().ToStringView();
    // A header's last field (the window's oldest seq) depends on the window size, not the ledger.
    if (tag == kHeaderKey) value.remove_suffix(sizeof(std::uint64_t));
    frame.clear();
    codec::put_text(frame, it->key().ToStringView());
    codec::put_text(frame, value);
    EVP_DigestUpdate(ctx, frame.data(), frame.size());
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int n = 0;
  EVP_DigestFinal_ex(ctx, md, &n);
  EVP_MD_CTX_free(ctx);
  if (!it->status().ok()) return io_error("export", it->status());
  std::string hex;
  for (unsigned int i = 0; i < n; ++i) hex += fmt::format("{:02x}", md[i]);
  return hex;
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
