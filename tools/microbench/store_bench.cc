// The commit's two halves (engine/store.h): prepare() encodes the dirty entries into one WriteBatch
// on the applying thread; write() hands it to RocksDB (on the Committer's thread in the engine).
// RocksDB runs in a temporary directory with the store's own options.
#include <absl/container/flat_hash_set.h>
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <filesystem>
#include <optional>

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

}  // namespace
}  // namespace qudao::microbench
