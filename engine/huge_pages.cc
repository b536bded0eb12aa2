#include "engine/huge_pages.h"

#include <sys/mman.h>

#include <cstdint>

namespace qudao::huge_pages {

namespace {
constexpr std::size_t kSmallPageBytes = 4096;
std::size_t round_up(std::size_t n, std::size_t to) { return (n + to - 1) / to * to; }

// A block of `bytes` at a 2 MiB boundary, advised for huge pages.
void* map(std::size_t bytes) {
  const std::size_t length = round_up(bytes, kSmallPageBytes);
  // Map a huge page more than needed, then give back what lies before the first 2 MiB boundary and
  // after the block, so that the block starts on one.
  const std::size_t padded = length + kHugePageBytes;
  void* raw = ::mmap(nullptr, padded, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) throw std::bad_alloc();
  const auto at = reinterpret_cast<std::uintptr_t>(raw);
  const std::uintptr_t start = round_up(at, kHugePageBytes);
  if (start > at) ::munmap(raw, start - at);
  if (const std::uintptr_t end = at + padded; end > start + length) {
    ::munmap(reinterpret_cast<void*>(start + length), end - (start + length));
  }
  void* p = reinterpret_cast<void*>(start);
  // Advice only: where THP is off the block is in ordinary pages, and still correct.
  (void)::madvise(p, length, MADV_HUGEPAGE);
  return p;
}
}  // namespace

void* allocate(std::size_t bytes, std::size_t alignment) {
  if (bytes >= kHugePageBytes) return map(bytes);
  return ::operator new(bytes, std::align_val_t{alignment});
}

void deallocate(void* p, std::size_t bytes, std::size_t alignment) noexcept {
  if (bytes >= kHugePageBytes) {
    ::munmap(p, round_up(bytes, kSmallPageBytes));
    return;
  }
  ::operator delete(p, std::align_val_t{alignment});
}

}  // namespace qudao::huge_pages
