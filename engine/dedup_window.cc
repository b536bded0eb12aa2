#include "engine/dedup_window.h"

#include <xxhash.h>

#include <cassert>
#include <cstring>

namespace qudao {

DedupWindow::DedupWindow(std::size_t capacity_events) : capacity_(capacity_events) {
  assert(capacity_ <= kDedupWindowEventsMax && "ring slots must fit the index's 32 bits");
}

DedupWindow::DedupWindow(const DedupWindow& o)
    : capacity_(o.capacity_), index_(o.index_), mask_(o.mask_), count_(o.count_), next_seq_(o.next_seq_) {
  if (!o.ring_) return;
  ring_ = std::make_unique_for_overwrite<RingSlot[]>(capacity_);
  // Only the window's slots: the others were never written.
  for (std::uint64_t seq = oldest_seq(); seq < next_seq_; ++seq) ring_[ring_slot(seq)] = o.ring_[ring_slot(seq)];
}

DedupWindow& DedupWindow::operator=(const DedupWindow& o) {
  if (this != &o) *this = DedupWindow(o);
  return *this;
}

std::uint32_t DedupWindow::hash_of(std::uint64_t hi, std::uint64_t lo) {
  std::uint64_t words[2] = {hi, lo};
  return static_cast<std::uint32_t>(XXH3_64bits(words, sizeof words));
}

std::optional<SeenEvent> DedupWindow::find(const EventId& id) const {
  if (count_ == 0) return std::nullopt;
  const std::uint32_t hash = hash_of(id.hi, id.lo);
  for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
    const IndexSlot& s = index_[i];
    if (s.ring_slot_plus_1 == 0) return std::nullopt;
    if (s.hash != hash) continue;
    const std::size_t at = s.ring_slot_plus_1 - 1;
    const RingSlot& r = ring_[at];
    if (r.hi != id.hi || r.lo != id.lo) continue;
    // The seq of a ring slot: the one in the window's range [oldest, next) that maps to it.
    const std::size_t oldest_at = ring_slot(oldest_seq());
    const std::uint64_t seq = oldest_seq() + (at >= oldest_at ? at - oldest_at : at + capacity_ - oldest_at);
    return SeenEvent{r.bytes_hash, seq};
  }
}

void DedupWindow::prefetch(const EventId& id) const {
  if (index_.empty()) return;
  __builtin_prefetch(&index_[hash_of(id.hi, id.lo) & mask_]);
}

bool DedupWindow::push(const EventId& id, std::uint64_t bytes_hash) {
  if (capacity_ == 0) {  // remembers nothing; the numbering still moves on
    ++next_seq_;
    return true;
  }
  if (!ring_) ring_ = std::make_unique_for_overwrite<RingSlot[]>(capacity_);
  if (count_ == capacity_) {
    drop_oldest();
    // The id dropped kEvictPrefetchAheadIds pushes from now (an id leaves at every push of a full
    // window): its home slot, where its entry almost always is.
    if (capacity_ > kEvictPrefetchAheadIds) {
      const RingSlot& later = ring_[ring_slot(oldest_seq() + kEvictPrefetchAheadIds)];
      __builtin_prefetch(&index_[hash_of(later.hi, later.lo) & mask_]);
    }
  }
  if ((count_ + 1) * 2 > index_.size()) grow_index();
  const auto at = static_cast<std::uint32_t>(ring_slot(next_seq_));
  ring_[at] = RingSlot{id.hi, id.lo, bytes_hash};
  const bool added = index_insert(at, hash_of(id.hi, id.lo));
  ++count_;
  ++next_seq_;
  return added;
}

void DedupWindow::continue_at(std::uint64_t seq) {
  assert(seq >= next_seq_ && "seqs only move forward");
  assert((count_ == 0 || seq == next_seq_) && "stored segments of the window are contiguous");
  next_seq_ = seq;
}

void DedupWindow::drop_older_than(std::uint64_t seq) {
  while (count_ > 0 && oldest_seq() < seq) drop_oldest();
}

void DedupWindow::drop_oldest() {
  const auto at = static_cast<std::uint32_t>(ring_slot(oldest_seq()));
  index_erase(at, hash_of(ring_[at].hi, ring_[at].lo));
  --count_;
}

bool DedupWindow::index_insert(std::uint32_t ring_slot, std::uint32_t hash) {
  const RingSlot& r = ring_[ring_slot];
  for (std::size_t i = hash & mask_;; i = (i + 1) & mask_) {
    IndexSlot& s = index_[i];
    if (s.ring_slot_plus_1 == 0) {
      s = IndexSlot{ring_slot + 1, hash};
      return true;
    }
    if (s.hash == hash) {
      const RingSlot& other = ring_[s.ring_slot_plus_1 - 1];
      if (other.hi == r.hi && other.lo == r.lo) {
        // The same id again (see push): the older ring slot is left with no index entry, so that
        // dropping it later finds nothing to erase.
        s.ring_slot_plus_1 = ring_slot + 1;
        return false;
      }
    }
  }
}

void DedupWindow::index_erase(std::uint32_t ring_slot, std::uint32_t hash) {
  std::size_t i = hash & mask_;
  for (;; i = (i + 1) & mask_) {
    if (index_[i].ring_slot_plus_1 == 0) return;  // a slot superseded by a newer one of the same id
    if (index_[i].ring_slot_plus_1 == ring_slot + 1) break;
  }
  // Backward-shift deletion: every entry after the hole that may live there (its home is not
  // between the hole and itself) moves into it, until an empty slot ends the run.
  for (std::size_t j = (i + 1) & mask_; index_[j].ring_slot_plus_1 != 0; j = (j + 1) & mask_) {
    const std::size_t home = index_[j].hash & mask_;
    if (((j - home) & mask_) >= ((j - i) & mask_)) {
      index_[i] = index_[j];
      i = j;
    }
  }
  index_[i] = IndexSlot{};
}

void DedupWindow::grow_index() {
  std::size_t slots = index_.empty() ? kIndexSlotsMin : index_.size() * 2;
  while ((count_ + 1) * 2 > slots) slots *= 2;
  index_.assign(slots, IndexSlot{});
  mask_ = slots - 1;
  for (std::uint64_t seq = oldest_seq(); seq < next_seq_; ++seq) {
    const auto at = static_cast<std::uint32_t>(ring_slot(seq));
    (void)index_insert(at, hash_of(ring_[at].hi, ring_[at].lo));
  }
}

}  // namespace qudao
