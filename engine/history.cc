#include "engine/history.h"

#include <fmt/format.h>
#include <rocksdb/db.h>
#include <rocksdb/merge_operator.h>
#include <rocksdb/write_batch.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <tuple>

#include "engine/codec.h"
#include "engine/store.h"

namespace qudao {
namespace {

// Days are stored offset by 2^31, so that keys sort by day even before 1970.
void put_day(std::string& k, Day d) {
  codec::put_be<std::uint32_t>(k, static_cast<std::uint32_t>(static_cast<std::int64_t>(d.value) + (1LL << 31)));
}
Day read_day(codec::Reader& r) {
  return Day{static_cast<std::int32_t>(static_cast<std::int64_t>(r.be<std::uint32_t>()) - (1LL << 31))};
}

std::uint64_t zigzag(std::int64_t v) { return (static_cast<std::uint64_t>(v) << 1) ^ static_cast<std::uint64_t>(v >> 63); }
std::int64_t unzigzag(std::uint64_t u) { return static_cast<std::int64_t>(u >> 1) ^ -static_cast<std::int64_t>(u & 1); }
void put_varint(std::string& out, std::uint64_t v) {
  for (; v >= 0x80; v >>= 7) out.push_back(static_cast<char>((v & 0x7f) | 0x80));
  out.push_back(static_cast<char>(v));
}

// Two packed sold days (older, newer) as one: every sku of either, in sku order, the units of a sku
// in both added. False for corrupt bytes.
bool merge_sold_days(std::string_view older, std::string_view newer, std::string& out) {
  packed_day::Reader a(older, packed_day::Reader::Kind::sales), b(newer, packed_day::Reader::Kind::sales);
  bool has_a = a.next(), has_b = b.next();
  SkuId previous{0};
  out.clear();
  out.reserve(older.size() + newer.size());
  while (has_a || has_b) {
    if (has_a && (!has_b || a.sku() < b.sku())) {
      packed_day::put_sale(out, previous, a.sku(), a.qty());
      previous = a.sku(), has_a = a.next();
    } else if (has_b && (!has_a || b.sku() < a.sku())) {
      packed_day::put_sale(out, previous, b.sku(), b.qty());
      previous = b.sku(), has_b = b.next();
    } else {
      packed_day::put_sale(out, previous, a.sku(), a.qty() + b.qty());
      previous = a.sku(), has_a = a.next(), has_b = b.next();
    }
  }
  return !a.corrupt() && !b.corrupt();
}

// The sold rows' operator. Associative (a sum per sku), so RocksDB can merge any run of operands
// (PartialMerge in compactions and flushes) as well as onto the value (FullMerge).
class SoldMergeOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice& key, const rocksdb::Slice* existing, const rocksdb::Slice& value, std::string* out,
             rocksdb::Logger*) const override {
    if (!key.empty() && key[0] == history_keys::kSoldDay) {
      if (existing == nullptr) {
        out->assign(value.data(), value.size());
        return true;
      }
      return merge_sold_days(existing->ToStringView(), value.ToStringView(), *out);  // false: corrupt, RocksDB reports it
    }
    std::int64_t sum = 0;  // an unpacked 'Q' row
    for (const rocksdb::Slice* s : {existing, &value}) {
      if (s == nullptr) continue;
      if (s->size() != sizeof(std::int64_t)) return false;  // corrupt: RocksDB reports it
      codec::Reader r(s->ToStringView());
      sum += r.le<std::int64_t>();
    }
    out->clear();
    codec::put_le<std::int64_t>(*out, sum);
    return true;
  }
  // The name stores written before packing recorded (their 'Q' rows merge as they did).
  const char* Name() const override { return "qudao.sum_i64"; }
};

Status io_error(const char* what, const rocksdb::Status& s) {
  return Status::error(fmt::format("rocksdb {}: {}", what, s.ToString()));
}

}  // namespace

std::optional<Day> parse_day(std::string_view text) {
  using namespace std::chrono;
  if (text.size() != 10 || text[4] != '-' || text[7] != '-') return std::nullopt;
  int y = 0;
  unsigned m = 0, d = 0;
  auto num = [&](std::size_t at, std::size_t n, auto& out) {
    auto [p, ec] = std::from_chars(text.data() + at, text.data() + at + n, out);
    return ec == std::errc() && p == text.data() + at + n;
  };
  if (!num(0, 4, y) || !num(5, 2, m) || !num(8, 2, d)) return std::nullopt;
  const year_month_day ymd{year{y}, month{m}, day{d}};
  if (!ymd.ok()) return std::nullopt;
  return Day{static_cast<std::int32_t>(sys_days{ymd}.time_since_epoch().count())};
}

std::string format_day(Day d) {
  using namespace std::chrono;
  const year_month_day ymd{sys_days{days{d.value}}};
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()));
}

const char* anomaly_kind_name(AnomalyKind k) {
  switch (k) {
    case AnomalyKind::scan_out_beyond_stock: return "scan_out_beyond_stock";
    case AnomalyKind::receipt_shortage: return "receipt_shortage";
  }
  return "unknown";
}

std::shared_ptr<rocksdb::MergeOperator> sold_merge_operator() { return std::make_shared<SoldMergeOperator>(); }

namespace history_keys {

namespace {
void assign_location_prefix(std::string& k, char tag, PartitionId p, LocationId location) {
  k.assign(1, tag);
  codec::put_be<std::int32_t>(k, p.value);
  codec::put_be<std::uint64_t>(k, location.value);
}
}  // namespace

std::string location_prefix(char tag, PartitionId p, LocationId location) {
  std::string k;
  assign_location_prefix(k, tag, p, location);
  return k;
}

void assign_closing(std::string& k, PartitionId p, LocationId location, SkuId sku, Day day) {
  assign_location_prefix(k, kClosing, p, location);
  codec::put_be<std::uint64_t>(k, sku.value);
  put_day(k, day);
}

void assign_sold(std::string& k, PartitionId p, LocationId location, Day day, SkuId sku) {
  assign_location_prefix(k, kSold, p, location);
  put_day(k, day);
  codec::put_be<std::uint64_t>(k, sku.value);
}

std::string closing(PartitionId p, LocationId location, SkuId sku, Day day) {
  std::string k;
  assign_closing(k, p, location, sku, day);
  return k;
}

std::string sold(PartitionId p, LocationId location, Day day, SkuId sku) {
  std::string k;
  assign_sold(k, p, location, day, sku);
  return k;
}

void assign_day(std::string& k, char tag, PartitionId p, LocationId location, Day day) {
  assign_location_prefix(k, tag, p, location);
  put_day(k, day);
}

std::string day_key(char tag, PartitionId p, LocationId location, Day day) {
  std::string k;
  assign_day(k, tag, p, location, day);
  return k;
}

std::optional<Day> day_of_key(std::string_view key) {
  constexpr std::size_t kPrefix = 1 + sizeof(std::int32_t) + sizeof(std::uint64_t);
  if (key.size() != kPrefix + sizeof(std::uint32_t)) return std::nullopt;
  codec::Reader r(key.substr(kPrefix));
  return read_day(r);
}

std::string anomaly(PartitionId p, LocationId location, Offset offset, std::uint16_t index) {
  std::string k = location_prefix(kAnomaly, p, location);
  codec::put_be<std::int64_t>(k, offset.value);
  codec::put_be<std::uint16_t>(k, index);
  return k;
}

void assign_closing_value(std::string& v, const ClosingLevels& l) {
  v.clear();
  codec::put_le<std::int64_t>(v, l.on_hand);
  codec::put_le<std::int64_t>(v, l.reserved);
  codec::put_le<std::int64_t>(v, l.in_transit);
}

std::string closing_value(const ClosingLevels& l) {
  std::string v;
  assign_closing_value(v, l);
  return v;
}

}  // namespace history_keys

namespace packed_day {

void put_closing(std::string& v, SkuId previous, SkuId sku, const ClosingLevels& l) {
  put_varint(v, sku.value - previous.value);
  put_varint(v, zigzag(l.on_hand));
  put_varint(v, zigzag(l.reserved));
  put_varint(v, zigzag(l.in_transit));
}

void put_sale(std::string& v, SkuId previous, SkuId sku, std::int64_t qty) {
  put_varint(v, sku.value - previous.value);
  put_varint(v, zigzag(qty));
}

bool Reader::varint(std::uint64_t& out) {
  out = 0;
  for (int shift = 0; shift < 64 && !in_.empty(); shift += 7) {
    const auto byte = static_cast<unsigned char>(in_.front());
    in_.remove_prefix(1);
    out |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return true;
  }
  corrupt_ = true;
  return false;
}

bool Reader::next() {
  if (in_.empty() || corrupt_) return false;
  std::uint64_t delta = 0, a = 0, b = 0, c = 0;
  if (!varint(delta) || !varint(a)) return false;
  if (kind_ == Kind::closings && (!varint(b) || !varint(c))) return false;
  if (!first_ && delta == 0) return corrupt_ = true, false;  // skus ascend
  sku_ = SkuId{sku_.value + delta};
  first_ = false;
  levels_ = ClosingLevels{unzigzag(a), unzigzag(b), unzigzag(c)};
  return true;
}

}  // namespace packed_day

HistoryCounts StockHistory::write_to(PartitionId p, rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* family) {
  HistoryCounts written{closings_pending_.size(), 0, anomalies_pending_.size()};
  std::string key, value;
  // In key order, as the sold rows below: the memtable's flush sort is cheaper on sorted runs
  // (engine/store.h). One Put per location-day: Shard::close_changed closes a day once, so no other
  // commit writes the key. Stable, so that were a pair ever closed twice the later closing still wins.
  std::stable_sort(closings_pending_.begin(), closings_pending_.end(), [](const Closing& a, const Closing& b) {
    return std::tie(a.location, a.day, a.sku) < std::tie(b.location, b.day, b.sku);
  });
  for (std::size_t i = 0; i < closings_pending_.size();) {
    const Closing& first = closings_pending_[i];
    SkuId previous{0};
    value.clear();
    for (; i < closings_pending_.size() && closings_pending_[i].location == first.location &&
           closings_pending_[i].day == first.day;
         ++i) {
      const Closing& c = closings_pending_[i];
      if (i + 1 < closings_pending_.size() && closings_pending_[i + 1].location == c.location &&
          closings_pending_[i + 1].day == c.day && closings_pending_[i + 1].sku == c.sku) {
        continue;  // closed again later: that one
      }
      packed_day::put_closing(value, previous, c.sku, c.levels);
      previous = c.sku;
    }
    history_keys::assign_day(key, history_keys::kClosingDay, p, first.location, first.day);
    batch.Put(family, key, value);
    ++written.closing_keys;
  }
  // One merge per location-day, with the sum of each sku's sales, in key order.
  std::sort(sold_pending_.begin(), sold_pending_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 0; i < sold_pending_.size();) {
    const SaleKey first = sold_pending_[i].first;
    SkuId previous{0};
    value.clear();
    while (i < sold_pending_.size() && sold_pending_[i].first.location == first.location &&
           sold_pending_[i].first.day == first.day) {
      const SaleKey k = sold_pending_[i].first;
      std::int64_t qty = 0;
      for (; i < sold_pending_.size() && sold_pending_[i].first == k; ++i) qty += sold_pending_[i].second;
      packed_day::put_sale(value, previous, k.sku, qty);
      previous = k.sku;
      ++written.sold;
    }
    history_keys::assign_day(key, history_keys::kSoldDay, p, first.location, first.day);
    batch.Merge(family, key, value);
    ++written.sold_keys;
  }
  for (const AnomalyRecord& a : anomalies_pending_) {
    value.clear();
    codec::put_le<std::uint8_t>(value, static_cast<std::uint8_t>(a.kind));
    codec::put_le<std::uint64_t>(value, a.sku.value);
    codec::put_le<std::int64_t>(value, a.qty.value);
    codec::put_le<std::int32_t>(value, a.day.value);
    codec::put_le<std::uint64_t>(value, a.event_id.hi);
    codec::put_le<std::uint64_t>(value, a.event_id.lo);
    batch.Put(family, history_keys::anomaly(p, a.location, a.offset, a.index), value);
  }
  closings_pending_.clear();
  sold_pending_.clear();
  anomalies_pending_.clear();
  return written;
}

// ---- Store's history reads (declared in engine/store.h) ----

HistoryReader Store::history_reader(const rocksdb::Snapshot* at) {
  rocksdb::ReadOptions read;
  read.snapshot = at;
  std::vector<rocksdb::Iterator*> its;  // one consistent view of both families
  if (rocksdb::Status s = db_->NewIterators(read, {history_, db_->DefaultColumnFamily()}, &its); !s.ok()) {
    its = {rocksdb::NewErrorIterator(s), rocksdb::NewErrorIterator(s)};  // the reads report it
  }
  return HistoryReader(std::unique_ptr<rocksdb::Iterator>(its[0]), std::unique_ptr<rocksdb::Iterator>(its[1]),
                       options_.path);
}

Result<std::vector<Closing>> HistoryReader::closings(PartitionId p, LocationId location, std::span<const SkuId> skus,
                                                     Day as_of) {
  auto today = this->today(p);
  if (!today.is_ok()) return today.status();
  std::vector<std::optional<Closing>> found(skus.size());
  std::vector<std::pair<SkuId, std::size_t>> wanted;  // (sku, index in skus) still to look for in the rows
  for (std::size_t i = 0; i < skus.size(); ++i) {
    auto pair = stored_pair(p, location, skus[i]);
    if (!pair.is_ok()) return pair.status();
    // Without a balance the pair never changed, so it has no closing: no scan for it.
    if (!pair.value()) continue;
    if (today.value() && as_of >= *today.value() && pair.value()->changed_day == *today.value()) {
      found[i] = Closing{*today.value(), location, skus[i], pair.value()->levels};
      continue;
    }
    wanted.emplace_back(skus[i], i);
  }
  rocksdb::Iterator* it = it_.get();
  auto corrupt = [&] { return Status::error(fmt::format("store {}: corrupt closing", path_)); };

  // Unpacked rows (a store written before packing): one SeekForPrev per sku, if the location has any.
  const std::string unpacked = history_keys::location_prefix(history_keys::kClosing, p, location);
  it->Seek(unpacked);
  if (!wanted.empty() && it->Valid() && it->key().starts_with(unpacked)) {
    std::string key;
    for (const auto& [sku, i] : wanted) {
      std::string prefix = unpacked;
      codec::put_be<std::uint64_t>(prefix, sku.value);
      history_keys::assign_closing(key, p, location, sku, as_of);
      it->SeekForPrev(key);
      if (!it->Valid() || !it->key().starts_with(prefix)) continue;
      codec::Reader k(it->key().ToStringView().substr(prefix.size()));
      codec::Reader v(it->value().ToStringView());
      Closing c{read_day(k), location, sku, {}};
      c.levels.on_hand = v.le<std::int64_t>();
      c.levels.reserved = v.le<std::int64_t>();
      c.levels.in_transit = v.le<std::int64_t>();
      if (!k.ok() || !v.ok()) return corrupt();
      found[i] = c;
    }
  }

  // Packed days: backwards from as_of, until every wanted sku has its newest closing. A sku found
  // unpacked on a later day than the one being read needs no older day.
  std::sort(wanted.begin(), wanted.end());
  const std::string packed = history_keys::location_prefix(history_keys::kClosingDay, p, location);
  for (it->SeekForPrev(history_keys::day_key(history_keys::kClosingDay, p, location, as_of));
       !wanted.empty() && it->Valid() && it->key().starts_with(packed); it->Prev()) {
    const std::optional<Day> day = history_keys::day_of_key(it->key().ToStringView());
    if (!day) return corrupt();
    std::erase_if(wanted, [&](const auto& w) { return found[w.second] && found[w.second]->day > *day; });
    packed_day::Reader r(it->value().ToStringView(), packed_day::Reader::Kind::closings);
    auto w = wanted.begin();
    bool any = false;
    while (w != wanted.end() && r.next()) {  // both in sku order
      for (; w != wanted.end() && w->first < r.sku(); ++w) {}
      for (; w != wanted.end() && w->first == r.sku(); ++w) {  // a sku asked twice: both
        found[w->second] = Closing{*day, location, r.sku(), r.levels()};
        w->second = skus.size();  // found: dropped below
        any = true;
      }
    }
    if (r.corrupt()) return corrupt();
    if (any) std::erase_if(wanted, [&](const auto& x) { return x.second == skus.size(); });
  }
  if (!it->status().ok()) return io_error("closings", it->status());
  std::vector<Closing> out;
  for (const std::optional<Closing>& c : found) {
    if (c) out.push_back(*c);
  }
  return out;
}

Result<std::vector<Sale>> HistoryReader::sales(PartitionId p, LocationId location, Day from, Day to) {
  auto corrupt = [&] { return Status::error(fmt::format("store {}: corrupt sold row", path_)); };
  rocksdb::Iterator* it = it_.get();
  // Unpacked rows (a store written before packing), then packed days; a (day, sku) in both (a store
  // that went on packed in the day it was upgraded) is one sale, the sum of both.
  std::vector<Sale> unpacked;
  const std::string prefix = history_keys::location_prefix(history_keys::kSold, p, location);
  const std::string end = history_keys::sold(p, location, Day{to.value + 1}, SkuId{0});
  for (it->Seek(history_keys::sold(p, location, from, SkuId{0})); it->Valid() && it->key().compare(end) < 0; it->Next()) {
    codec::Reader k(it->key().ToStringView().substr(prefix.size()));
    codec::Reader v(it->value().ToStringView());
    Sale s;
    s.day = read_day(k);
    s.sku = SkuId{k.be<std::uint64_t>()};
    s.qty = Quantity{v.le<std::int64_t>()};
    if (!k.ok() || !v.ok()) return corrupt();
    unpacked.push_back(s);
  }
  std::vector<Sale> out;
  auto u = unpacked.begin();
  const std::string packed_end = history_keys::day_key(history_keys::kSoldDay, p, location, Day{to.value + 1});
  for (it->Seek(history_keys::day_key(history_keys::kSoldDay, p, location, from));
       it->Valid() && it->key().compare(packed_end) < 0; it->Next()) {
    const std::optional<Day> day = history_keys::day_of_key(it->key().ToStringView());
    if (!day) return corrupt();
    packed_day::Reader r(it->value().ToStringView(), packed_day::Reader::Kind::sales);
    while (r.next()) {
      const Sale s{*day, r.sku(), Quantity{r.qty()}};
      for (; u != unpacked.end() && std::tie(u->day, u->sku) < std::tie(s.day, s.sku); ++u) out.push_back(*u);
      if (u != unpacked.end() && u->day == s.day && u->sku == s.sku) {
        out.push_back(Sale{s.day, s.sku, Quantity{s.qty.value + u->qty.value}});
        ++u;
      } else {
        out.push_back(s);
      }
    }
    if (r.corrupt()) return corrupt();
  }
  out.insert(out.end(), u, unpacked.end());
  if (!it->status().ok()) return io_error("sales", it->status());
  return out;
}

Result<std::vector<AnomalyRecord>> Store::anomalies(PartitionId p, LocationId location, Offset from_offset,
                                                    std::uint16_t from_index, std::size_t limit) {
  std::vector<AnomalyRecord> out;
  const std::string prefix = history_keys::location_prefix(history_keys::kAnomaly, p, location);
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(rocksdb::ReadOptions(), history_));
  for (it->Seek(history_keys::anomaly(p, location, from_offset, from_index));
       it->Valid() && out.size() < limit && it->key().starts_with(prefix); it->Next()) {
    codec::Reader k(it->key().ToStringView().substr(prefix.size()));
    codec::Reader v(it->value().ToStringView());
    AnomalyRecord a;
    a.location = location;
    a.offset = Offset{k.be<std::int64_t>()};
    a.index = k.be<std::uint16_t>();
    a.kind = static_cast<AnomalyKind>(v.le<std::uint8_t>());
    a.sku = SkuId{v.le<std::uint64_t>()};
    a.qty = Quantity{v.le<std::int64_t>()};
    a.day = Day{v.le<std::int32_t>()};
    a.event_id.hi = v.le<std::uint64_t>();
    a.event_id.lo = v.le<std::uint64_t>();
    if (!k.ok() || !v.ok()) return Status::error(fmt::format("store {}: corrupt anomaly", options_.path));
    out.push_back(a);
  }
  if (!it->status().ok()) return io_error("anomalies", it->status());
  return out;
}

}  // namespace qudao
