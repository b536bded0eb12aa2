// The engine's per-record work: Applier::ingest end to end, and its parts (Shard::post, the
// duplicate window), against shards of realistic size (tools/microbench/fixtures.h).
#include <absl/container/flat_hash_map.h>
#include <benchmark/benchmark.h>

#include "engine/apply.h"
#include "tools/microbench/fixtures.h"

namespace qudao::microbench {
namespace {

// Every this many items the benchmarks below clear the dirty marks and the pending window segment,
// as a commit does (engine/store.h): the engine commits every 100 ms, some tens of thousands of
// events at its speed here. Without it the dirty lists would grow without bound.
constexpr std::size_t kItemsPerCommit = 1 << 16;

// Applier::ingest: decode + verify + validate, the duplicate window (a full one of 200k ids, so
// each new id also evicts the oldest), apply and the outcome record; the shard holds range(0)
// stock keys. The stock projection is left out (BM_stock_project). Each record is one item, so
// items/s compares with qudao bench's "apply" row (which adds the projection and 8 shards).
void BM_ingest(benchmark::State& state, StreamKind kind) {
  const auto stock_keys = static_cast<std::size_t>(state.range(0));
  const Shard& loaded = loaded_shard(stock_keys);
  const EventArena& stream = event_stream(kind, stock_keys);
  Shard shard = loaded;
  Applier applier;
  std::size_t next = 0;
  std::uint64_t not_applied = 0;
  for (auto _ : state) {
    if (next == stream.size()) {
      // Every id of the stream is in the window now: start again from the loaded shard, so that each
      // record stays a new event rather than a (much cheaper) duplicate.
      state.PauseTiming();
      shard = loaded;
      next = 0;
      state.ResumeTiming();
    }
    const Ingested r = applier.ingest(shard, Offset{static_cast<std::int64_t>(next)}, stream[next]);
    not_applied += r.outcome != RecordOutcome::applied;
    benchmark::DoNotOptimize(r);
    ++next;
  }
  if (not_applied > 0) state.SkipWithError("some records of the stream were not applied");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.counters["event_bytes"] = static_cast<double>(stream.total_bytes()) / static_cast<double>(stream.size());
}

BENCHMARK_CAPTURE(BM_ingest, scan_outs, StreamKind::scan_outs)->ArgName("stock_keys")->Arg(10'000)->Arg(1'000'000);
BENCHMARK_CAPTURE(BM_ingest, channel_mix, StreamKind::channel_mix)->ArgName("stock_keys")->Arg(10'000)->Arg(1'000'000);

// Shard::post: one posting into a table of range(0) stock keys: the hash-map update of the
// balance, the digest (XXH3 of the old and the new entry) and the dirty mark. The postings are a
// scan-out's pair ((sku, store, on_hand) at random, and the sku's consumers account), so one
// scan-out is two items here.
void BM_shard_post(benchmark::State& state) {
  const auto stock_keys = static_cast<std::size_t>(state.range(0));
  Shard shard = loaded_shard(stock_keys, 0);
  const std::vector<Posting>& postings = scan_out_postings(stock_keys);
  std::size_t i = 0;
  for (auto _ : state) {
    shard.post(postings[i]);
    if (++i == postings.size()) i = 0;
    if (i % kItemsPerCommit == 0) {
      state.PauseTiming();
      shard.mark_clean();
      state.ResumeTiming();
    }
  }
  benchmark::DoNotOptimize(shard.digest());
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(BM_shard_post)->ArgName("stock_keys")->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Arg(4'000'000);

// The same updates on a bare absl::flat_hash_map with Shard's key and entry types, no digest and no
// dirty list: what of BM_shard_post is the hash map itself.
void BM_flat_hash_map_update(benchmark::State& state) {
  struct Entry {  // as Shard::BalanceEntry
    std::int64_t qty = 0;
    bool dirty = false;
  };
  const auto stock_keys = static_cast<std::size_t>(state.range(0));
  absl::flat_hash_map<Account, Entry> map;
  loaded_shard(stock_keys, 0).for_each_balance([&](const Account& a, Quantity q) { map[a].qty = q.value; });
  const std::vector<Posting>& postings = scan_out_postings(stock_keys);
  std::size_t i = 0;
  for (auto _ : state) {
    Entry& e = map[postings[i].account];
    e.qty += postings[i].delta.value;
    e.dirty = true;
    if (++i == postings.size()) i = 0;
  }
  benchmark::DoNotOptimize(map);
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(BM_flat_hash_map_update)->ArgName("stock_keys")->Arg(10'000)->Arg(100'000)->Arg(1'000'000)->Arg(4'000'000);

// The duplicate window's work for a new event, as Applier::ingest does it: seen() misses, then
// remember() inserts the id and evicts the oldest from a full window of range(0) ids.
void BM_dedup_new_event(benchmark::State& state) {
  const auto window = static_cast<std::size_t>(state.range(0));
  Shard shard = loaded_shard(0, window);
  Rng rng(window);
  std::uint64_t lo = 0;
  for (auto _ : state) {
    const EventId id{kStreamIdHi, ++lo};
    const std::uint64_t bytes_hash = rng.next();
    const Seen seen = shard.seen(id, bytes_hash);
    benchmark::DoNotOptimize(seen);
    shard.remember(id, bytes_hash);
    if (lo % kItemsPerCommit == 0) {
      state.PauseTiming();
      shard.mark_clean();  // drops the pending segment, as a commit does
      state.ResumeTiming();
    }
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(BM_dedup_new_event)->ArgName("window")->Arg(10'000)->Arg(200'000)->Arg(1'000'000);

// A re-sent event: seen() finds its id (at random in a full window of range(0) ids) with the same
// bytes hash.
void BM_dedup_duplicate(benchmark::State& state) {
  const auto window = static_cast<std::size_t>(state.range(0));
  const Shard& shard = loaded_shard(0, window);
  std::vector<std::pair<EventId, std::uint64_t>> probes;
  Rng rng(window + 1);
  for (std::size_t i = 0; i < (1 << 16); ++i) {
    const EventId id{kWindowIdHi, 1 + rng.below(window)};
    probes.emplace_back(id, shard.seen_entry(id)->bytes_hash);
  }
  std::size_t i = 0;
  std::uint64_t not_duplicate = 0;
  for (auto _ : state) {
    const auto& [id, bytes_hash] = probes[i++ & (probes.size() - 1)];
    not_duplicate += shard.seen(id, bytes_hash) != Seen::duplicate;
  }
  if (not_duplicate > 0) state.SkipWithError("a probe was not recognised as a duplicate");
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
}

BENCHMARK(BM_dedup_duplicate)->ArgName("window")->Arg(10'000)->Arg(200'000)->Arg(1'000'000);

}  // namespace
}  // namespace qudao::microbench
