// The duplicate window of one shard: exactly the last `capacity` event ids it applied, each with the
// hash of the event's bytes and its seq (the shard numbers applied ids 0, 1, 2, ... in apply order).
// The window holds the seqs [oldest_seq(), next_seq()); pushing a new id when it is full drops the
// oldest. Owned by its Shard (engine/ledger.h), which stores it in segments (engine/store.h); not
// thread-safe.
//
// Layout, chosen for the applying thread's cache (every new event looks an id up, adds one and
// drops the oldest):
//
//   ring   capacity slots, slot = seq % capacity: (id.hi, id.lo, bytes_hash). Written and read in
//          seq order, so both ends of the window are sequential memory.
//   index  open addressing with linear probing, a power of two of at least twice the ids held:
//          (ring slot + 1, 0 for empty; 32 bits of the id's hash). The hash bits both place an id
//          (its home slot is hash & mask) and filter the probe, so a lookup reads the ring only for
//          a likely match, and dropping an id moves the entries after it back without reading the
//          ring (backward-shift deletion: no tombstones, so probes never get longer over time).
//
// A lookup costs one index cache line; a new id one more (dropping the oldest). The hash is XXH3
// of the id, so the layout, and therefore the cost, is the same in every run; the index is never
// iterated, so nothing about its order reaches an outcome.
//
// The ring is allocated whole at the first id but not written ahead, so the memory resident is that
// of the ids actually held; the index grows by doubling as ids arrive.
//
// Both index cache lines are random, so both are prefetched ahead of use: the slot of an id about
// to be looked up by the caller (prefetch(), which a batch calls some records ahead:
// connectors/ingest_batch.h), and the slot of the id that will be dropped kEvictPrefetchAheadIds
// pushes from now, by push() itself (the ring says which id that is: sequential memory).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "engine/huge_pages.h"
#include "events/types.h"

namespace qudao {

// A remembered applied event: the hash of its bytes, and its place in the window (oldest first).
struct SeenEvent {
  std::uint64_t bytes_hash = 0;
  std::uint64_t seq = 0;
};

// Ring slots are 32-bit in the index.
inline constexpr std::size_t kDedupWindowEventsMax = 0xFFFF'FFFEu;

class DedupWindow {
 public:
  explicit DedupWindow(std::size_t capacity_events);
  // A copy holds the same ids (a shard is copied to start benchmark runs from one loaded state).
  DedupWindow(const DedupWindow& o);
  DedupWindow& operator=(const DedupWindow& o);
  DedupWindow(DedupWindow&&) noexcept = default;
  DedupWindow& operator=(DedupWindow&&) noexcept = default;

  std::size_t capacity() const { return capacity_; }
  std::size_t size() const { return count_; }
  std::uint64_t next_seq() const { return next_seq_; }
  std::uint64_t oldest_seq() const { return next_seq_ - count_; }

  std::optional<SeenEvent> find(const EventId& id) const;
  // A hint, no change: brings in the index line find(id) and push(id) will read.
  void prefetch(const EventId& id) const;

  // Adds `id` as seq next_seq(), dropping the oldest id first when the window is full. An id
  // already in the window (only a restore meets one: an id applied again after it had left the
  // window) now answers with the new seq. Returns whether the id was new to the window.
  bool push(const EventId& id, std::uint64_t bytes_hash);

  // Restore: numbering goes on at `seq`. Stored segments are contiguous (each commit stores the ids
  // since the last one), so only an empty window may skip seqs.
  void continue_at(std::uint64_t seq);
  // Restore: drops the ids older than `seq`.
  void drop_older_than(std::uint64_t seq);

 private:
  struct RingSlot {  // no member initializers: a fresh ring stays untouched (not resident) until used
    std::uint64_t hi;
    std::uint64_t lo;
    std::uint64_t bytes_hash;
  };
  struct IndexSlot {
    std::uint32_t ring_slot_plus_1 = 0;  // 0: empty
    std::uint32_t hash = 0;
  };
  static constexpr std::size_t kIndexSlotsMin = 16;
  // How many pushes ahead the index slot of an id to drop is prefetched: far enough for the line to
  // arrive in time (a push costs well under the memory latency), near enough to stay in the cache.
  static constexpr std::uint64_t kEvictPrefetchAheadIds = 16;

  static std::uint32_t hash_of(std::uint64_t hi, std::uint64_t lo);
  std::size_t ring_slot(std::uint64_t seq) const { return static_cast<std::size_t>(seq % capacity_); }
  void drop_oldest();
  bool index_insert(std::uint32_t ring_slot, std::uint32_t hash);  // false: the id was there
  void index_erase(std::uint32_t ring_slot, std::uint32_t hash);
  void grow_index();

  std::size_t capacity_;
  std::unique_ptr<RingSlot[]> ring_;  // allocated at the first push
  std::vector<IndexSlot, HugePageAllocator<IndexSlot>> index_;  // probed at random: in huge pages (engine/huge_pages.h)
  std::size_t mask_ = 0;  // index_.size() - 1
  std::size_t count_ = 0;
  std::uint64_t next_seq_ = 0;
};

}  // namespace qudao
