#include "engine/memtable.h"

#include <rocksdb/slice.h>

#include <cassert>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <shared_mutex>

#include <sys/mman.h>

namespace rocksdb {
// Two RocksDB internals a MemTableRep is handed but its installed headers only declare: an Arena to
// place an iterator in (memory/arena.h; this member is exported by librocksdb), and a LookupKey
// (db/dbformat.h), whose first member is the start of its memtable key, the same bytes as an entry's
// key, length-prefixed (unchanged since LevelDB; a test reads through Get() at every memtable state).
class Arena {
 public:
  char* AllocateAligned(size_t bytes, size_t huge_page_size, Logger* logger);
};
}  // namespace rocksdb

namespace qudao {
namespace {

const char* memtable_key_of(const rocksdb::LookupKey& k) {
  const char* start = nullptr;
  std::memcpy(&start, reinterpret_cast<const char*>(&k), sizeof(start));
  return start;
}

// Memory straight from the kernel, given back to it when freed. A memtable's key vector and the
// sort's merge buffer are megabytes each, allocated and freed on RocksDB's flush thread: from malloc,
// the freed buffers stayed resident in that thread's arena (+5 MB per million keys in the bench's
// memory row, even after malloc_trim).
template <typename T>
struct PageAllocator {
  using value_type = T;
  PageAllocator() = default;
  template <typename U>
  PageAllocator(const PageAllocator<U>&) {}  // NOLINT: converting, as std::allocator's
  T* allocate(std::size_t n) {
    void* p = mmap(nullptr, n * sizeof(T), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t n) { munmap(p, n * sizeof(T)); }
  friend bool operator==(const PageAllocator&, const PageAllocator&) { return true; }
};

using Keys = std::vector<const char*, PageAllocator<const char*>>;

class SortedRunsRep final : public rocksdb::MemTableRep {
 public:
  SortedRunsRep(const KeyComparator& compare, rocksdb::Allocator* allocator)
      : MemTableRep(allocator), compare_(compare), keys_(std::make_shared<Keys>()) {}

  void Insert(rocksdb::KeyHandle handle) override {
    const char* key = static_cast<const char*>(handle);
    std::unique_lock lock(mutex_);
    assert(!read_only_);
    if (keys_->empty() || compare_(key, keys_->back()) < 0) run_starts_.push_back(keys_->size());
    keys_->push_back(key);
  }

  bool Contains(const char* key) const override {
    std::shared_lock lock(mutex_);
    return std::find(keys_->begin(), keys_->end(), key) != keys_->end();
  }

  void MarkReadOnly() override {
    std::unique_lock lock(mutex_);
    read_only_ = true;
  }

  size_t ApproximateMemoryUsage() override {
    std::shared_lock lock(mutex_);
    return sizeof(*this) + keys_->size() * sizeof(const char*) + run_starts_.size() * sizeof(std::size_t);
  }

  void Get(const rocksdb::LookupKey& k, void* callback_args, bool (*callback_func)(void* arg, const char* entry)) override {
    Iterator it(sorted(), compare_);
    for (it.Seek(rocksdb::Slice(), memtable_key_of(k)); it.Valid() && callback_func(callback_args, it.key()); it.Next()) {
    }
  }

  class Iterator final : public rocksdb::MemTableRep::Iterator {
   public:
    Iterator(std::shared_ptr<const Keys> keys, const KeyComparator& compare)
        : keys_(std::move(keys)), compare_(compare), at_(keys_->size()) {}
    bool Valid() const override { return at_ < keys_->size(); }
    const char* key() const override { return (*keys_)[at_]; }
    void Next() override {
      if (at_ < keys_->size()) ++at_;
    }
    void Prev() override { at_ = at_ == 0 ? keys_->size() : at_ - 1; }  // before the first: invalid
    void Seek(const rocksdb::Slice& internal_key, const char* memtable_key) override {
      auto it = memtable_key != nullptr
                    ? std::lower_bound(keys_->begin(), keys_->end(), memtable_key,
                                       [&](const char* a, const char* b) { return compare_(a, b) < 0; })
                    : std::lower_bound(keys_->begin(), keys_->end(), internal_key,
                                       [&](const char* a, const rocksdb::Slice& b) { return compare_(a, b) < 0; });
      at_ = static_cast<std::size_t>(it - keys_->begin());
    }
    void SeekForPrev(const rocksdb::Slice& internal_key, const char* memtable_key) override {
      auto it = memtable_key != nullptr
                    ? std::upper_bound(keys_->begin(), keys_->end(), memtable_key,
                                       [&](const char* a, const char* b) { return compare_(b, a) > 0; })
                    : std::upper_bound(keys_->begin(), keys_->end(), internal_key,
                                       [&](const rocksdb::Slice& a, const char* b) { return compare_(b, a) > 0; });
      at_ = it == keys_->begin() ? keys_->size() : static_cast<std::size_t>(it - keys_->begin()) - 1;
    }
    void SeekToFirst() override { at_ = 0; }
    void SeekToLast() override { at_ = keys_->empty() ? 0 : keys_->size() - 1; }

   private:
    std::shared_ptr<const Keys> keys_;
    const KeyComparator& compare_;
    std::size_t at_;  // keys_->size(): not valid
  };

  rocksdb::MemTableRep::Iterator* GetIterator(rocksdb::Arena* arena) override {
    std::shared_ptr<const Keys> keys = sorted();
    if (arena == nullptr) return new Iterator(std::move(keys), compare_);
    // RocksDB destroys an iterator placed in its arena without freeing it.
    char* at = arena->AllocateAligned(sizeof(Iterator), 0, nullptr);
    return new (at) Iterator(std::move(keys), compare_);
  }

 private:
  // The keys inserted so far, in order: the memtable's own once it is read-only (sorted once, in
  // place), else a sorted copy (the writer goes on appending meanwhile).
  std::shared_ptr<const Keys> sorted() {
    auto by_key = [this](const char* a, const char* b) { return compare_(a, b) < 0; };
    {
      std::shared_lock lock(mutex_);
      if (sorted_) return keys_;
      if (!read_only_) {
        auto copy = std::make_shared<Keys>(*keys_);
        const std::vector<std::size_t> runs = run_starts_;
        lock.unlock();
        merge_sorted_runs(*copy, runs, by_key);
        return copy;
      }
    }
    std::unique_lock lock(mutex_);  // read-only: no insert can come any more
    if (!sorted_) {
      merge_sorted_runs(*keys_, run_starts_, by_key);
      run_starts_ = {};
      sorted_ = true;
    }
    return keys_;
  }

  const KeyComparator& compare_;
  mutable std::shared_mutex mutex_;
  std::shared_ptr<Keys> keys_;            // in insertion order until sorted_
  std::vector<std::size_t> run_starts_;  // where each ascending run of keys_ starts
  bool read_only_ = false;
  bool sorted_ = false;  // keys_ sorted in place (read-only, and iterated once)
};

}  // namespace

rocksdb::MemTableRep* SortedRunsRepFactory::CreateMemTableRep(const rocksdb::MemTableRep::KeyComparator& compare,
                                                              rocksdb::Allocator* allocator, const rocksdb::SliceTransform*,
                                                              rocksdb::Logger*) {
  return new SortedRunsRep(compare, allocator);
}

}  // namespace qudao
