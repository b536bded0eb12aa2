#include "projections/sku_levels.h"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <random>

namespace qudao {

namespace {
// Checks `levels` against a std::map holding the same: every lookup, the listing in sku order,
// the rank of every cursor, and the unordered items.
void check_same(const SkuLevels& levels, const std::map<std::uint64_t, std::int64_t>& expected) {
  REQUIRE(levels.size() == expected.size());
  std::size_t k = 0;
  for (const auto& [sku, on_hand] : expected) {
    const StockLevels* found = levels.find(SkuId{sku});
    REQUIRE(found != nullptr);
    CHECK(found->on_hand == Quantity{on_hand});
    CHECK(levels.by_rank(k).sku == SkuId{sku});
    CHECK(levels.rank_of_first_at_or_after(SkuId{sku}) == k);
    ++k;
  }
  std::int64_t sum = 0, expected_sum = 0;
  for (const auto& item : levels.items()) sum += item.levels.on_hand.value;
  for (const auto& [sku, on_hand] : expected) expected_sum += on_hand;
  CHECK(sum == expected_sum);
}
}  // namespace

TEST_CASE("sku levels: lookups, sku order and cursors agree with an ordered map, whatever the order skus arrive in") {
  SkuLevels levels;
  std::map<std::uint64_t, std::int64_t> expected;
  CHECK(levels.find(SkuId{1}) == nullptr);
  CHECK(levels.rank_of_first_at_or_after(SkuId{1}) == 0);
  std::mt19937_64 rng(7);
  for (int i = 0; i < 3000; ++i) {
    // Small sequential ids, sparse large ones and repeats, so the index grows and collides.
    const std::uint64_t sku = i % 3 == 0 ? rng() : 1 + rng() % 1500;
    const std::int64_t qty = static_cast<std::int64_t>(rng() % 100) - 20;
    levels.add(SkuId{sku}).on_hand.value += qty;
    expected[sku] += qty;
  }
  check_same(levels, expected);
  CHECK(levels.find(SkuId{1501}) == nullptr);
  // A cursor between skus starts at the next one; past the last, at the end.
  const std::uint64_t last = expected.rbegin()->first;
  CHECK(levels.rank_of_first_at_or_after(SkuId{last + 1}) == levels.size());
  auto after = expected.upper_bound(700);
  CHECK(levels.by_rank(levels.rank_of_first_at_or_after(SkuId{700})).sku.value == (expected.contains(700) ? 700 : after->first));
}

TEST_CASE("sku levels: a location with more skus than 2-byte positions hold keeps every one, in order") {
  SkuLevels levels;
  std::map<std::uint64_t, std::int64_t> expected;
  constexpr std::uint64_t kSkus = 70'000;  // past the 65,535 items of narrow positions
  // Descending, so that every insert goes to the front of the order.
  for (std::uint64_t s = kSkus; s >= 1; --s) {
    levels.add(SkuId{s * 3}).on_hand.value += static_cast<std::int64_t>(s);
    expected[s * 3] += static_cast<std::int64_t>(s);
  }
  levels.add(SkuId{3}).on_hand.value += 5;  // an existing one, found again after widening
  expected[3] += 5;
  check_same(levels, expected);
  CHECK(levels.find(SkuId{4}) == nullptr);
}

}  // namespace qudao
