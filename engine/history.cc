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

class SumMergeOperator final : public rocksdb::AssociativeMergeOperator {
 public:
  bool Merge(const rocksdb::Slice&, const rocksdb::Slice* existing, const rocksdb::Slice& value, std::string* out,
             rocksdb::Logger*) const override {
    std::int64_t sum = 0;
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

std::shared_ptr<rocksdb::MergeOperator> sold_merge_operator() { return std::make_shared<SumMergeOperator>(); }

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

HistoryCounts StockHistory::write_to(PartitionId p, rocksdb::WriteBatch& batch, rocksdb::ColumnFamilyHandle* family) {
  HistoryCounts written{closings_pending_.size(), 0, anomalies_pending_.size()};
  std::string key, value;
  // In key order, as the sold rows below: the memtable's flush sort is cheaper on sorted runs
  // (engine/store.h). Stable, so that were a key ever closed twice the later closing still wins.
  std::stable_sort(closings_pending_.begin(), closings_pending_.end(), [](const Closing& a, const Closing& b) {
    return std::tie(a.location, a.sku, a.day) < std::tie(b.location, b.sku, b.day);
  });
  for (const Closing& c : closings_pending_) {
    history_keys::assign_closing(key, p, c.location, c.sku, c.day);
    history_keys::assign_closing_value(value, c.levels);
    batch.Put(family, key, value);
  }
  // One merge per key, with the sum of its sales, in key order.
  std::sort(sold_pending_.begin(), sold_pending_.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  for (std::size_t i = 0; i < sold_pending_.size();) {
    const SaleKey k = sold_pending_[i].first;
    std::int64_t qty = 0;
    for (; i < sold_pending_.size() && sold_pending_[i].first == k; ++i) qty += sold_pending_[i].second;
    history_keys::assign_sold(key, p, k.location, k.day, k.sku);
    ++written.sold;
    value.clear();
    codec::put_le<std::int64_t>(value, qty);
    batch.Merge(family, key, value);
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
  std::vector<Closing> out;
  auto today = this->today(p);
  if (!today.is_ok()) return today.status();
  rocksdb::Iterator* it = it_.get();
  for (SkuId sku : skus) {
    if (today.value() && as_of >= *today.value()) {
      auto current = current_closing(p, location, sku, *today.value());
      if (!current.is_ok()) return current.status();
      if (current.value()) {
        out.push_back(Closing{*today.value(), location, sku, *current.value()});
        continue;
      }
    }
    std::string prefix = history_keys::location_prefix(history_keys::kClosing, p, location);
    codec::put_be<std::uint64_t>(prefix, sku.value);
    it->SeekForPrev(history_keys::closing(p, location, sku, as_of));
    if (!it->Valid() || !it->key().starts_with(prefix)) continue;
    codec::Reader k(it->key().ToStringView().substr(prefix.size()));
    codec::Reader v(it->value().ToStringView());
    Closing c{read_day(k), location, sku, {}};
    c.levels.on_hand = v.le<std::int64_t>();
    c.levels.reserved = v.le<std::int64_t>();
    c.levels.in_transit = v.le<std::int64_t>();
    if (!k.ok() || !v.ok()) return Status::error(fmt::format("store {}: corrupt closing", path_));
    out.push_back(c);
  }
  if (!it->status().ok()) return io_error("closings", it->status());
  return out;
}

Result<std::vector<Sale>> HistoryReader::sales(PartitionId p, LocationId location, Day from, Day to) {
  std::vector<Sale> out;
  const std::string prefix = history_keys::location_prefix(history_keys::kSold, p, location);
  const std::string end = history_keys::sold(p, location, Day{to.value + 1}, SkuId{0});
  rocksdb::Iterator* it = it_.get();
  for (it->Seek(history_keys::sold(p, location, from, SkuId{0})); it->Valid() && it->key().compare(end) < 0; it->Next()) {
    codec::Reader k(it->key().ToStringView().substr(prefix.size()));
    codec::Reader v(it->value().ToStringView());
    Sale s;
    s.day = read_day(k);
    s.sku = SkuId{k.be<std::uint64_t>()};
    s.qty = Quantity{v.le<std::int64_t>()};
    if (!k.ok() || !v.ok()) return Status::error(fmt::format("store {}: corrupt sold row", path_));
    out.push_back(s);
  }
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
