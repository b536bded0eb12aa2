#include "engine/store.h"

#include <fmt/format.h>
#include <rocksdb/write_batch.h>

#include "engine/codec.h"

namespace qudao {
namespace {

constexpr char kTopicKey = 'T';
constexpr char kHeaderKey = 'H';
constexpr char kBalanceKey = 'B';
constexpr char kLocationKey = 'L';
constexpr char kDeadLetterKey = 'D';
constexpr char kSeenKey = 'E';

std::string seen_key(PartitionId p, const EventId& id) {
  std::string k(1, kSeenKey);
  codec::put_be<std::int32_t>(k, p.value);
  codec::put_be<std::uint64_t>(k, id.hi);
  codec::put_be<std::uint64_t>(k, id.lo);
  return k;
}

std::string partition_key(char tag, PartitionId p) {
  std::string k(1, tag);
  codec::put_be<std::int32_t>(k, p.value);
  return k;
}

std::string header_value(const Shard& s) {
  std::string v;
  const OutcomeCounts& c = s.counts();
  codec::put_le<std::int64_t>(v, s.next_offset().value);
  for (std::uint64_t n : {c.consumed, c.applied, c.duplicates, c.rejected, c.anomalies, s.digest()}) {
    codec::put_le<std::uint64_t>(v, n);
  }
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
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(db_options, options.path, &raw);
  if (!s.ok()) return io_error("open", s);
  std::unique_ptr<rocksdb::DB> db(raw);

  std::string topic;
  s = db->Get(rocksdb::ReadOptions(), rocksdb::Slice(&kTopicKey, 1), &topic);
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

Result<std::map<std::int32_t, Shard>> Store::load(std::size_t dedup_window_events) {
  std::map<std::int32_t, Shard> shards;
  std::map<std::int32_t, std::uint64_t> stored_digests;
  auto shard = [&](std::int32_t p) -> Shard& {
    return shards.try_emplace(p, PartitionId{p}, dedup_window_events).first->second;
  };

  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions()));
  for (it->SeekToFirst(); it->Valid(); it->Next()) {
    const std::string_view key = it->key().ToStringView();
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
        shard(p).restore_header(next, c);
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
      case kSeenKey: {
        const auto p = k.be<std::int32_t>();
        EventId id;
        id.hi = k.be<std::uint64_t>();
        id.lo = k.be<std::uint64_t>();
        SeenEvent e;
        e.bytes_hash = v.le<std::uint64_t>();
        e.seq = v.le<std::uint64_t>();
        shard(p).restore_seen(id, e);
        break;
      }
      case kTopicKey:
      case kDeadLetterKey:
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
  rocksdb::WriteBatch batch;
  CommitStats stats;
  std::string key, value;
  for (Shard* s : shards) {
    if (!s->header_dirty() && s->dirty_balances().empty() && s->dirty_locations().empty() && s->dirty_seen().empty()) {
      continue;
    }
    for (const EventId& id : s->dirty_seen()) {
      key = seen_key(s->partition(), id);
      if (const SeenEvent* e = s->seen_entry(id)) {
        value.clear();
        codec::put_le<std::uint64_t>(value, e->bytes_hash);
        codec::put_le<std::uint64_t>(value, e->seq);
        batch.Put(key, value);
      } else {
        batch.Delete(key);
      }
    }
    for (const Account& a : s->dirty_balances()) {
      key = partition_key(kBalanceKey, s->partition());
      codec::put_be<std::uint64_t>(key, a.sku.value);
      codec::put_be<std::uint64_t>(key, a.location.value);
      codec::put_be<std::uint8_t>(key, static_cast<std::uint8_t>(a.bucket));
      value.clear();
      codec::put_le<std::int64_t>(value, s->balance(a).value);
      batch.Put(key, value);
    }
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
    stats.balances += s->dirty_balances().size();
    stats.locations += s->dirty_locations().size();
    stats.dead_letters += s->dead_letters().size();
  }
  if (batch.Count() == 0) return stats;
  stats.bytes = batch.GetDataSize();
  rocksdb::WriteOptions wo;
  wo.sync = options_.sync == SyncMode::fsync;
  const rocksdb::Status st = db_->Write(wo, &batch);
  if (!st.ok()) return io_error("commit", st);
  for (Shard* s : shards) s->mark_clean();
  return stats;
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
