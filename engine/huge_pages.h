// An allocator for the applying thread's large, long-lived tables that are probed at random (the
// ledger's (sku, location) map, the duplicate window's index): a block of at least one huge page
// (2 MiB) is mapped on its own and asked for transparent huge pages (madvise(MADV_HUGEPAGE); the
// machines run THP in `madvise` mode), so that a random probe into tables that together are far
// larger than what the TLB maps in 4 kB pages costs a cache miss, not also a page walk (two levels of
// them in a virtual machine), and growing a table faults once per 2 MiB instead of once per 4 kB.
// Smaller blocks go to operator new as before.
//
// Resident memory does not grow with it: the block is mapped at a 2 MiB boundary with its exact
// size (in 4 kB pages), so only its whole 2 MiB pieces can become huge pages and the tail stays in
// ordinary pages; and a huge page is only made where the process touches it, which these tables do
// on every 4 kB of their blocks anyway (their slots are spread at random). A block that cannot be
// mapped throws std::bad_alloc, as operator new does. Stateless, so containers using it compare,
// move and swap as with std::allocator. Thread-safe (it holds nothing).
#pragma once

#include <cstddef>
#include <new>

namespace qudao {

inline constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

namespace huge_pages {
// `bytes` aligned to `alignment` (≤ 4 kB): in huge pages from kHugePageBytes on, else operator new.
void* allocate(std::size_t bytes, std::size_t alignment);
// Frees what allocate(bytes, alignment) returned, with the same arguments.
void deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept;
}  // namespace huge_pages

template <class T>
struct HugePageAllocator {
  using value_type = T;

  HugePageAllocator() = default;
  template <class U>
  HugePageAllocator(const HugePageAllocator<U>&) noexcept {}  // NOLINT: rebinding, as std::allocator

  T* allocate(std::size_t n) { return static_cast<T*>(huge_pages::allocate(n * sizeof(T), alignof(T))); }
  void deallocate(T* p, std::size_t n) noexcept { huge_pages::deallocate(p, n * sizeof(T), alignof(T)); }

  friend bool operator==(const HugePageAllocator&, const HugePageAllocator&) = default;
};

}  // namespace qudao
