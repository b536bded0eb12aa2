// SortedRunsRepFactory: the representation of the store's RocksDB memtable (Store::open).
//
// A commit adds tens of thousands of keys, the bulk of them in key order (write() adds each shard's
// balances, closings and sold rows sorted: engine/store.h), so a memtable is a vector of a few
// hundred ascending runs. RocksDB's vector memtable appends each key and std::sorts the whole vector
// when it is flushed: ~20 comparisons of length-prefixed internal keys per key, the largest single
// cost of a commit. This one also appends, notes where each ascending run starts (one comparison
// per insert, on the committer's thread), and sorts by merging the runs (merge_sorted_runs):
// ~log2(runs) comparisons per key, reading each run in the order it was written. The stored bytes
// do not change (the same keys, sorted the same way: internal keys are unique).
//
// An iterator sees the keys inserted before it was made, in order: over the active memtable it
// merges a copy (as RocksDB's vector memtable sorts one); the first over a read-only memtable (the
// flush's) sorts it in place for every later one. One writer at a time inserts
// (allow_concurrent_memtable_write = false); iterators and Get may run on any thread meanwhile.
// It leans on two RocksDB internals its installed headers only declare (the Arena an iterator is
// placed in, the LookupKey a Get is given: memtable.cc), as of RocksDB 7.8; the unit test reads
// through every path that uses them.
#pragma once

#include <rocksdb/memtablerep.h>

#include <algorithm>
#include <cstddef>
#include <span>
#include <vector>

namespace qudao {

// Ascending runs shorter than this are sorted together (std::sort) before the merge: a stretch of
// keys added in no order (a commit's few channel entries and orders) is not worth a merge per key.
inline constexpr std::size_t kMergedRunKeysMin = 32;

// Sorts `items`, made of ascending runs starting at `run_starts` (ascending, the first 0; an empty
// span for no items), by `less`: short runs are sorted together, then adjacent runs merged
// pairwise until one is left. The result is what std::sort would give for a strict total order.
// `Items`: a std::vector (of any allocator: the merge buffer takes the same).
template <typename Items, typename Less>
void merge_sorted_runs(Items& items, std::span<const std::size_t> run_starts, Less less) {
  const std::size_t n = items.size();
  std::vector<std::size_t> bounds;  // the sorted chunks: [bounds[i], bounds[i + 1]), then n
  std::size_t short_from = n;       // start of the current stretch of short runs, n if none
  auto close_short = [&](std::size_t end) {
    if (short_from == n) return;
    std::sort(items.begin() + static_cast<std::ptrdiff_t>(short_from), items.begin() + static_cast<std::ptrdiff_t>(end), less);
    bounds.push_back(short_from);
    short_from = n;
  };
  for (std::size_t r = 0; r < run_starts.size(); ++r) {
    const std::size_t begin = run_starts[r];
    const std::size_t end = r + 1 < run_starts.size() ? run_starts[r + 1] : n;
    if (end - begin >= kMergedRunKeysMin) {
      close_short(begin);
      bounds.push_back(begin);
    } else if (short_from == n) {
      short_from = begin;
    }
  }
  close_short(n);
  bounds.push_back(n);
  if (bounds.size() <= 2) return;  // one chunk: sorted already
  Items merged(n, items.get_allocator());
  while (bounds.size() > 2) {
    std::vector<std::size_t> next;
    std::size_t i = 0;
    for (; i + 2 < bounds.size(); i += 2) {
      std::merge(items.begin() + static_cast<std::ptrdiff_t>(bounds[i]), items.begin() + static_cast<std::ptrdiff_t>(bounds[i + 1]),
                 items.begin() + static_cast<std::ptrdiff_t>(bounds[i + 1]), items.begin() + static_cast<std::ptrdiff_t>(bounds[i + 2]),
                 merged.begin() + static_cast<std::ptrdiff_t>(bounds[i]), less);
      next.push_back(bounds[i]);
    }
    if (i + 1 < bounds.size()) {  // an odd chunk out: carried over as it is
      std::copy(items.begin() + static_cast<std::ptrdiff_t>(bounds[i]), items.begin() + static_cast<std::ptrdiff_t>(bounds[i + 1]),
                merged.begin() + static_cast<std::ptrdiff_t>(bounds[i]));
      next.push_back(bounds[i]);
    }
    next.push_back(n);
    items.swap(merged);
    bounds = std::move(next);
  }
}

class SortedRunsRepFactory final : public rocksdb::MemTableRepFactory {
 public:
  const char* Name() const override { return "qudao.SortedRunsRepFactory"; }
  rocksdb::MemTableRep* CreateMemTableRep(const rocksdb::MemTableRep::KeyComparator& compare,
                                          rocksdb::Allocator* allocator, const rocksdb::SliceTransform*,
                                          rocksdb::Logger*) override;
};

}  // namespace qudao
