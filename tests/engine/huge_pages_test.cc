#include "engine/huge_pages.h"

#include <absl/container/flat_hash_map.h>
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace qudao {
namespace {

// The VmFlags line of the mapping that holds `p` (in /proc/self/smaps), empty if none does.
std::string vm_flags_of(const void* p) {
  const auto at = reinterpret_cast<std::uintptr_t>(p);
  std::ifstream smaps("/proc/self/smaps");
  bool inside = false;
  for (std::string line; std::getline(smaps, line);) {
    if (std::uintptr_t lo = 0, hi = 0; std::sscanf(line.c_str(), "%lx-%lx ", &lo, &hi) == 2) {
      inside = lo <= at && at < hi;
    } else if (inside && line.rfind("VmFlags:", 0) == 0) {
      return line;
    }
  }
  return {};
}

}  // namespace

TEST_CASE("huge pages: a block of 2 MiB or more starts on a 2 MiB boundary and is advised for huge pages") {
  HugePageAllocator<std::uint64_t> alloc;
  const std::size_t n = (kHugePageBytes * 3 / 2) / sizeof(std::uint64_t);  // 3 MiB: one whole huge page and a tail
  std::uint64_t* p = alloc.allocate(n);
  CHECK(reinterpret_cast<std::uintptr_t>(p) % kHugePageBytes == 0);
  for (std::size_t i = 0; i < n; ++i) p[i] = i;  // all of it is writable
  CHECK(p[n - 1] == n - 1);
  // The advice needs a kernel with transparent huge pages (whatever mode they are in).
  if (std::ifstream("/sys/kernel/mm/transparent_hugepage/enabled").good()) {
    CHECK(vm_flags_of(p).find(" hg") != std::string::npos);
  }
  alloc.deallocate(p, n);
}

TEST_CASE("huge pages: a small block comes from the heap, not a mapping of its own") {
  HugePageAllocator<std::uint64_t> alloc;
  std::uint64_t* p = alloc.allocate(1000);
  p[999] = 7;
  CHECK(p[999] == 7);
  CHECK(vm_flags_of(p).find(" hg") == std::string::npos);
  alloc.deallocate(p, 1000);
}

TEST_CASE("huge pages: a map growing through many blocks keeps every entry") {
  absl::flat_hash_map<std::uint64_t, std::uint64_t, absl::Hash<std::uint64_t>, std::equal_to<std::uint64_t>,
                      HugePageAllocator<std::pair<const std::uint64_t, std::uint64_t>>>
      m;
  constexpr std::uint64_t kEntries = 300'000;  // its last blocks are several MiB
  for (std::uint64_t i = 0; i < kEntries; ++i) m[i * 7919] = i;
  REQUIRE(m.size() == kEntries);
  for (std::uint64_t i = 0; i < kEntries; ++i) REQUIRE(m.at(i * 7919) == i);
  std::vector<std::uint64_t, HugePageAllocator<std::uint64_t>> v(kEntries * 2, 1);  // a vector too
  CHECK(v.back() == 1);
}

}  // namespace qudao
