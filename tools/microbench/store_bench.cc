// The commit's two halves (engine/store.h): prepare() encodes the dirty entries into one WriteBatch
// on the applying thread; write() hands it to RocksDB (on the Committer's thread in the engine).
// RocksDB runs in a temporary directory with the store's own options.
#include <absl/container/flat_hash_set.h>
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <optional>
#include <set>

#include "engine/store.h"
#include "tools/microbench/fixtures.h"

namespace qudao::microbench {
namespace {

namespace fs = std::filesystem;

constexpr std::size_t kShardStockKeys = 1'000'000;

// A store in a fresh temporary directory, removed with it.
class TempStore {
 public:
  explicit TempStore(SyncMode sync) {
    std::string tmpl = (fs::temp_directory_path() / "qudao-microbench-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) return;
    dir_ = tmpl;
    auto opened = Store::open(StoreOptions{dir_, "microbench", sync});
    if (opened.is_ok()) store_ = opened.take();
  }
  ~TempStore() {
    store_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }
  Store* get() const { return store_.get(); }

 private:
  std::string dir_;
  std::unique_ptr<Store> store_;
};

// The first `n` accounts of the scan-out postings that are store balances, distinct: random rows of
// the table, as a commit interval's sales touch them.
std::vector<Posting> distinct_store_postings(std::size_t n) {
  std::vector<Posting> out;
  absl::flat_hash_set<Account> taken;
  for (const Posting& p : scan_out_postings(kShardStockKeys)) {
    if (out.size() == n) break;
    if (p.account.bucket == Bucket::on_hand && taken.insert(p.account).second) out.push_back(p);
  }
  return out;
}

// Store::prepare with range(0) dirty balances (of a shard of 1M stock keys): a key and a value per
// balance into the WriteBatch, the shard's header, and marking the shard clean. Items are balances.
void BM_store_prepare(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  TempStore store(SyncMode::no_fsync);
  if (store.get() == nullptr) {
    state.SkipWithError("cannot open a store in the temporary directory");
    return;
  }
  Shard shard = loaded_shard(kShardStockKeys, 0);
  Shard* const shards[] = {&shard};
  const std::vector<Posting> postings = distinct_store_postings(n);
  for (const Posting& p : postings) shard.post(p);
  std::optional<PreparedCommit> commit;
  for (auto _ : state) {
    commit.emplace(store.get()->prepare(shards));
    benchmark::DoNotOptimize(commit->batch.Data().data());
    // Dirty the same balances again, and free the batch, outside the measurement.
    state.PauseTiming();
    commit.reset();
    for (const Posting& p : postings) shard.post(p);
    state.ResumeTiming();
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
}

BENCHMARK(BM_store_prepare)->ArgName("dirty")->Arg(1'000)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMicrosecond);

// Store::write of one prepared commit of range(0) balances, without fsync (replay's setting; the
// engine's default fsync adds the disk's flush latency on top). The same batch is written again and
// again, so RocksDB's memtable fills, flushes and compacts in the background as under load: real
// time, since that background work is part of the cost.
void BM_store_write(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  TempStore store(SyncMode::no_fsync);
  if (store.get() == nullptr) {
    state.SkipWithError("cannot open a store in the temporary directory");
    return;
  }
  Shard shard = loaded_shard(kShardStockKeys, 0);
  Shard* const shards[] = {&shard};
  for (const Posting& p : distinct_store_postings(n)) shard.post(p);
  PreparedCommit commit = store.get()->prepare(shards);
  for (auto _ : state) {
    if (Status s = store.get()->write(commit); !s.is_ok()) {
      state.SkipWithError(s.message().c_str());
      break;
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations() * n));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * commit.batch.GetDataSize()));
}

BENCHMARK(BM_store_write)->ArgName("dirty")->Arg(1'000)->Arg(10'000)->Arg(100'000)->Unit(benchmark::kMicrosecond)->UseRealTime();

// As-of reads of the stock history (HistoryReader, engine/store.h) of an existing store, named by
// QUDAO_MICROBENCH_HISTORY_STORE (a replay's -d directory; skipped without it), opened read-only. A
// store written before the history was packed and one written after, of the same log, give the
// same answers (the "answer" counter), so two runs compare the two layouts' reads. as_of: the
// store's last shard day minus range(0) days; the skus asked: every sku with a balance at the
// location (the stock projection's rows).
struct HistoryStore {
  struct Location {
    PartitionId partition;
    LocationId id;
    std::string region;
    std::vector<SkuId> skus;
  };
  std::unique_ptr<Store> store;
  std::vector<Location> locations;
  Day today{0};
};

const HistoryStore* history_store() {
  static const std::optional<HistoryStore> opened = []() -> std::optional<HistoryStore> {
    const char* dir = std::getenv("QUDAO_MICROBENCH_HISTORY_STORE");
    if (dir == nullptr) return std::nullopt;
    StoreOptions options{dir, "qudao.events", SyncMode::no_fsync, OpenMode::read_only};
    auto store = Store::open(options);
    if (!store.is_ok()) return std::nullopt;
    HistoryStore h;
    h.store = store.take();
    auto shards = h.store->load();
    if (!shards.is_ok()) return std::nullopt;
    for (const auto& [p, shard] : shards.value()) {
      h.today = std::max(h.today, shard.today());
      std::map<std::uint64_t, std::set<SkuId>> skus;
      shard.for_each_balance([&](const Account& a, Quantity) {
        if (a.location != kVirtualLocation) skus[a.location.value].insert(a.sku);
      });
      shard.for_each_location([&](LocationId id, const LocationInfo& info) {
        const auto& s = skus[id.value];
        h.locations.push_back({PartitionId{p}, id, info.region, {s.begin(), s.end()}});
      });
    }
    std::sort(h.locations.begin(), h.locations.end(), [](const auto& a, const auto& b) {
      return std::tie(a.partition, a.id) < std::tie(b.partition, b.id);
    });
    return h;
  }();
  return opened ? &*opened : nullptr;
}

std::uint64_t answer_hash(const std::vector<Closing>& closings) {
  std::uint64_t h = 0;
  for (const Closing& c : closings) {
    h = h * 1'000'003 + c.sku.value * 31 + static_cast<std::uint64_t>(c.day.value) * 7 +
        static_cast<std::uint64_t>(c.levels.on_hand * 5 + c.levels.reserved * 3 + c.levels.in_transit);
  }
  return h;
}

// One location's closings as of a day, every sku it holds (the location with the most). Items: skus.
void BM_history_as_of_location(benchmark::State& state) {
  const HistoryStore* h = history_store();
  if (h == nullptr || h->locations.empty()) return state.SkipWithError("set QUDAO_MICROBENCH_HISTORY_STORE to a store");
  const auto& loc = *std::max_element(h->locations.begin(), h->locations.end(),  // the first of the largest
                                      [](const auto& a, const auto& b) { return a.skus.size() < b.skus.size(); });
  const Day as_of{h->today.value - static_cast<std::int32_t>(state.range(0))};
  std::uint64_t answer = 0, found = 0;
  for (auto _ : state) {
    HistoryReader reader = h->store->history_reader();
    auto c = reader.closings(loc.partition, loc.id, loc.skus, as_of);
    if (!c.is_ok()) return state.SkipWithError(c.status().message().c_str());
    answer = answer_hash(c.value()), found = c.value().size();
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(loc.skus.size()));
  state.counters["skus"] = static_cast<double>(loc.skus.size());
  state.counters["found"] = static_cast<double>(found);
  state.counters["answer"] = static_cast<double>(answer % 1'000'000);
}
BENCHMARK(BM_history_as_of_location)->ArgName("days_back")->Arg(0)->Arg(1)->Arg(7)->Arg(25)->Unit(benchmark::kMicrosecond);

// A region's stock as of a day, as the stock API answers it (projections/stock_history.cc
// apply_as_of): per location its skus' closings and its sold window's sales, one reader. Items: locations.
void BM_history_as_of_region(benchmark::State& state) {
  const HistoryStore* h = history_store();
  if (h == nullptr || h->locations.empty()) return state.SkipWithError("set QUDAO_MICROBENCH_HISTORY_STORE to a store");
  std::map<std::string, std::size_t> per_region;
  for (const auto& l : h->locations) ++per_region[l.region];
  const std::string region = std::max_element(per_region.begin(), per_region.end(), [](const auto& a, const auto& b) {
                               return a.second < b.second;
                             })->first;
  const Day as_of{h->today.value - static_cast<std::int32_t>(state.range(0))};
  std::uint64_t answer = 0;
  std::size_t locations = 0;
  for (auto _ : state) {
    HistoryReader reader = h->store->history_reader();
    answer = 0, locations = 0;
    for (const auto& loc : h->locations) {
      if (loc.region != region) continue;
      auto c = reader.closings(loc.partition, loc.id, loc.skus, as_of);
      auto s = reader.sales(loc.partition, loc.id, Day{as_of.value - 27}, as_of);
      if (!c.is_ok() || !s.is_ok()) return state.SkipWithError("history read failed");
      answer = answer * 31 + answer_hash(c.value());
      for (const Sale& sale : s.value()) answer = answer * 31 + sale.sku.value + static_cast<std::uint64_t>(sale.qty.value);
      ++locations;
    }
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(locations));
  state.counters["locations"] = static_cast<double>(locations);
  state.counters["answer"] = static_cast<double>(answer % 1'000'000);
}
BENCHMARK(BM_history_as_of_region)->ArgName("days_back")->Arg(0)->Arg(7)->Arg(25)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace qudao::microbench
