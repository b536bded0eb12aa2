// The digest (engine/ledger.cc, balance_hash) hashes 29 bytes per balance entry, twice per posting
// (old and new entry): partition:i32 sku:u64 location:u64 bucket:u8 qty:i64, with XXH3_64bits from
// Debian's libxxhash. Here that call and its alternatives, on the same bytes.
#include <absl/hash/hash.h>
#include <benchmark/benchmark.h>
#include <xxhash.h>

// The library's functions, as the engine calls them. Taken before the second include below, which
// redefines the XXH names to copies compiled into this file (to see what the call itself costs).
namespace qudao::microbench::libxxhash {
inline constexpr auto* xxh3_64 = &XXH3_64bits;
inline constexpr auto* xxh3_128 = &XXH3_128bits;
inline constexpr auto* xxh64 = &XXH64;
inline constexpr auto* xxh32 = &XXH32;
}  // namespace qudao::microbench::libxxhash

#define XXH_INLINE_ALL
#include <xxhash.h>

#include <array>
#include <cstring>
#include <vector>

#include "tools/microbench/fixtures.h"

namespace qudao::microbench {
namespace {

constexpr std::size_t kKeyBytes = 4 + 8 + 8 + 1 + 8;

struct Key {
  std::array<unsigned char, kKeyBytes> bytes;
  Account account;
};

// 4096 entries of a 1M-key shard, laid out as balance_hash lays them out.
const std::vector<Key>& keys() {
  static const std::vector<Key> keys = [] {
    std::vector<Key> out;
    const std::vector<Posting>& postings = scan_out_postings(1'000'000);
    for (std::size_t i = 0; i < 4096; ++i) {
      const Account& a = postings[2 * i].account;
      const std::int32_t partition = 3;
      const std::int64_t qty = kStoreOnHand - static_cast<std::int64_t>(i);
      Key k{{}, a};
      unsigned char* p = k.bytes.data();
      std::memcpy(p, &partition, 4), p += 4;
      std::memcpy(p, &a.sku.value, 8), p += 8;
      std::memcpy(p, &a.location.value, 8), p += 8;
      *p++ = static_cast<unsigned char>(a.bucket);
      std::memcpy(p, &qty, 8);
      out.push_back(k);
    }
    return out;
  }();
  return keys;
}

template <class Hash>
void run(benchmark::State& state, Hash hash) {
  const std::vector<Key>& k = keys();
  std::size_t i = 0;
  for (auto _ : state) {
    auto h = hash(k[i++ & (k.size() - 1)]);
    benchmark::DoNotOptimize(h);
  }
  state.SetItemsProcessed(static_cast<std::int64_t>(state.iterations()));
  state.SetBytesProcessed(static_cast<std::int64_t>(state.iterations() * kKeyBytes));
}

// What the digest uses: a call into libxxhash.
void BM_hash_29B_xxh3_64(benchmark::State& state) {
  run(state, [](const Key& k) { return libxxhash::xxh3_64(k.bytes.data(), kKeyBytes); });
}
void BM_hash_29B_xxh3_64_inlined(benchmark::State& state) {
  run(state, [](const Key& k) { return XXH3_64bits(k.bytes.data(), kKeyBytes); });
}
void BM_hash_29B_xxh64(benchmark::State& state) {
  run(state, [](const Key& k) { return libxxhash::xxh64(k.bytes.data(), kKeyBytes, 0); });
}
void BM_hash_29B_xxh32(benchmark::State& state) {
  run(state, [](const Key& k) { return libxxhash::xxh32(k.bytes.data(), kKeyBytes, 0); });
}
void BM_hash_29B_xxh3_128(benchmark::State& state) {
  run(state, [](const Key& k) { return libxxhash::xxh3_128(k.bytes.data(), kKeyBytes).low64; });
}
// What the balance table hashes per lookup (absl::Hash of Account's fields, not a byte string).
void BM_hash_account_absl(benchmark::State& state) {
  run(state, [](const Key& k) { return absl::Hash<Account>{}(k.account); });
}

BENCHMARK(BM_hash_29B_xxh3_64);
BENCHMARK(BM_hash_29B_xxh3_64_inlined);
BENCHMARK(BM_hash_29B_xxh64);
BENCHMARK(BM_hash_29B_xxh32);
BENCHMARK(BM_hash_29B_xxh3_128);
BENCHMARK(BM_hash_account_absl);

}  // namespace
}  // namespace qudao::microbench
