// The performance projection fed as the pipeline feeds it (publish after applying): leaderboards
// ranked by attainment with a stable tie-break, cursor pages, the region scope inside lookups.
#include "projections/performance.h"

#include <doctest/doctest.h>

#include "engine/apply.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

const Period kJan = Period::month(2026, 1);

// Region East: distributors 11..14 (store 1+i is 10+i's) with January targets of 100,000 fen;
// region West: distributor 21 with store 9.
struct Board {
  Shard shard{PartitionId{0}};
  Applier applier;
  EventWriter w;
  PerformanceProjection projection;
  std::uint64_t seq = 0, orders = 0;
  std::int64_t offset = 0;

  Header h() { return Header{EventId{5, ++seq}, TimeMs{kT0 + static_cast<std::int64_t>(seq) * 1000}, "t"}; }
  void feed(std::span<const std::uint8_t> b) {
    REQUIRE(applier.ingest(shard, Offset{offset++}, b).outcome == RecordOutcome::applied);
    projection.publish(shard);
  }
  void distributor(std::uint64_t party, std::uint64_t store, const char* region) {
    feed(w.location_defined(h(), LocationId{store}, fb::LocationKind::Store, "s", "c", region));
    feed(w.party_registered(h(), party, fb::PartyKind::Distributor, 0, "d", region, "", LocationId{0}));
    feed(w.store_assigned(h(), LocationId{store}, party));
    feed(w.target_set(h(), party, "2026-01", Fen{100'000}));
  }
  void sell(std::uint64_t store, std::int64_t fen) {
    const PricedLine l{SkuId{1}, Quantity{1}, Fen{fen}};
    const OrderId order{++orders};
    feed(w.order_placed(h(), order, LocationId{store}, store, LocationId{0}, TimeMs{kT0}, {&l, 1}));
    feed(w.order_paid(h(), order, store, Fen{fen}));
  }
  std::vector<std::uint64_t> ranking(const RegionScope& scope, std::optional<LeaderboardCursor> after = {},
                                     std::size_t limit = 10) {
    auto page = projection.leaderboard("East", kJan, fb::PartyKind::Distributor, scope, after, limit);
    REQUIRE(page.has_value());
    std::vector<std::uint64_t> ids;
    for (const LeaderboardEntry& e : page->entries) ids.push_back(e.row.party.value);
    return ids;
  }
};

}  // namespace

TEST_CASE("performance projection: a leaderboard ranks by attainment, ties by party id, and follows late changes") {
  Board b;
  for (std::uint64_t i = 1; i <= 4; ++i) b.distributor(10 + i, 1 + i, "East");
  b.distributor(21, 9, "West");
  b.sell(2, 30'000);   // 11: 30 %
  b.sell(3, 60'000);   // 12: 60 %
  b.sell(4, 30'000);   // 13: 30 %, tied with 11
  b.sell(9, 99'000);   // West: not on East's board
  CHECK(b.ranking(RegionScope::all()) == std::vector<std::uint64_t>{12, 11, 13, 14});
  b.sell(4, 40'000);   // 13 overtakes 12
  CHECK(b.ranking(RegionScope::all()) == std::vector<std::uint64_t>{13, 12, 11, 14});

  // Pages of two, walked by cursor: the same order, ranks continue.
  auto first = b.projection.leaderboard("East", kJan, fb::PartyKind::Distributor, RegionScope::all(), {}, 2);
  REQUIRE(first.has_value());
  CHECK(first->total == 4);
  REQUIRE(first->next.has_value());
  auto second = b.projection.leaderboard("East", kJan, fb::PartyKind::Distributor, RegionScope::all(), first->next, 2);
  REQUIRE(second.has_value());
  REQUIRE(second->entries.size() == 2);
  CHECK(second->entries[0].row.party == PartyId{11});
  CHECK(second->entries[0].rank == 3);
  CHECK_FALSE(second->next.has_value());

  // The scope is part of the lookup: West's reader finds neither East's board nor its parties.
  const RegionScope west = RegionScope::only({"West"});
  CHECK_FALSE(b.projection.leaderboard("East", kJan, fb::PartyKind::Distributor, west, {}, 10).has_value());
  CHECK_FALSE(b.projection.performance(PartyId{11}, kJan, west).has_value());
  CHECK(b.projection.performance(PartyId{21}, kJan, west).has_value());
  CHECK(b.projection.performance(PartyId{21}, kJan, west)->row.stats.sell_in.value == 99'000);
}

}  // namespace qudao
