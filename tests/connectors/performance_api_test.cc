// The performance, leaderboard, rebate and conflict endpoints over real HTTP: every endpoint × role ×
// region, what the figures are, pagination, and bad parameters. No Kafka broker
// (tests/connectors/api_fixture.h holds the channel events they read).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <chrono>

#include "tests/connectors/api_fixture.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;

namespace {

std::string perf(std::uint64_t party, const char* period = "2026-01") {
  return fmt::format("/v1/performance?party={}&period={}", party, period);
}

}  // namespace

TEST_CASE("performance api: every endpoint answers every role and region as the access table says") {
  ApiFixture api;
  struct Row {
    std::string target;
    unsigned none, hq, east, west, metrics;
  };
  const std::vector<Row> rows{
      {perf(kEastDistributor), 401, 200, 200, 404, 403},
      {perf(kEastAgent, "2026-Q1"), 401, 200, 200, 404, 403},
      {perf(kWestDistributor), 401, 200, 404, 200, 403},
      {perf(kNoSuchParty), 401, 404, 404, 404, 403},
      {perf(kEastDistributor, "2026-13"), 401, 400, 400, 400, 403},
      {"/v1/performance?period=2026-01", 401, 400, 400, 400, 403},
      {"/v1/leaderboard?region=East&period=2026-01", 401, 200, 200, 404, 403},
      {"/v1/leaderboard?region=West&period=2026-01", 401, 200, 404, 200, 403},
      {"/v1/leaderboard?region=East&period=2026-01&kind=store", 401, 400, 400, 400, 403},
      {fmt::format("/v1/rebates?party={}", kEastDistributor), 401, 200, 200, 404, 403},
      {fmt::format("/v1/rebates?party={}&period=2026-01", kEastDistributor), 401, 200, 200, 404, 403},
      {fmt::format("/v1/rebates?party={}", kWestDistributor), 401, 200, 404, 200, 403},
      {fmt::format("/v1/rebates?party={}", kNoSuchParty), 401, 404, 404, 404, 403},
      {"/v1/conflicts", 401, 200, 200, 200, 403},
  };
  for (const Row& r : rows) {
    for (const auto& [who, token, want] : {std::tuple{"none", std::string(), r.none}, {"hq", kTestHqToken, r.hq},
                                           {"east", kTestEastToken, r.east}, {"west", kTestWestToken, r.west},
                                           {"metrics", kTestMetricsToken, r.metrics}}) {
      INFO("GET " << r.target << " as " << who);
      CHECK(http_get(api.port(), r.target, token).status == want);
    }
  }
}

TEST_CASE("performance api: a party's period has its orders, sell-in, sell-through, tier, rebate and rating") {
  ApiFixture api;
  const HttpReply r = http_get(api.port(), perf(kEastDistributor), kTestEastToken);
  REQUIRE(r.status == 200);
  const json j = r.json();
  CHECK(j["party"] == kEastDistributor);
  CHECK(j["period"] == "2026-01");
  CHECK(j["orders_store"] == 1);
  CHECK(j["orders_proxy"] == 0);
  CHECK(j["sell_in_fen"] == 50'000);
  CHECK(j["sell_through_qty"] == 0);  // sell-through: tests/engine/channel_test.cc (the fixture's stock stays as it is)
  CHECK(j["target_fen"] == 100'000);
  CHECK(j["attainment_bp"] == 5'000);
  CHECK(j["rebate_tier"] == 1);
  CHECK(j["rebate_rate_bp"] == 100);
  CHECK(j["rebate_accrued_fen"] == 500);
  CHECK(j["rebate_adjusted_fen"] == -200);
  CHECK(j["ratings"] == 1);
  CHECK(j["rating_average"] == 4.0);

  // The agent rolls up its distributors, and lists them.
  const json agent = http_get(api.port(), perf(kEastAgent, "2026-Q1")).json();
  CHECK(agent["sell_in_fen"] == 50'000);
  CHECK(agent["orders_store"] == 1);
  CHECK(agent["rolls_up"] == json::array({kEastDistributor, kEastRival}));
}

TEST_CASE("performance api: the leaderboard ranks by attainment, pages with a cursor, and stays in its region") {
  ApiFixture api;
  const json east = http_get(api.port(), "/v1/leaderboard?region=East&period=2026-01", kTestEastToken).json();
  CHECK(east["total"] == 1);
  REQUIRE(east["entries"].size() == 1);
  CHECK(east["entries"][0]["party"] == kEastDistributor);
  CHECK(east["entries"][0]["rank"] == 1);
  CHECK(east["next_cursor"].is_null());
  const json west = http_get(api.port(), "/v1/leaderboard?region=West&period=2026-01").json();
  REQUIRE(west["entries"].size() == 1);
  CHECK(west["entries"][0]["attainment_bp"] == 20'000);
  const json agents = http_get(api.port(), "/v1/leaderboard?region=East&period=2026-Q1&kind=agent").json();
  REQUIRE(agents["entries"].size() == 1);
  CHECK(agents["entries"][0]["party"] == kEastAgent);
}

TEST_CASE("performance api: rebates list accruals and adjustments per period, and why they moved") {
  ApiFixture api;
  const json periods = http_get(api.port(), fmt::format("/v1/rebates?party={}", kEastDistributor)).json();
  REQUIRE(periods["periods"].size() == 1);
  CHECK(periods["periods"][0]["period"] == "2026-01");
  CHECK(periods["periods"][0]["rebate_accrued_fen"] == 500);
  CHECK(periods["periods"][0]["rebate_adjusted_fen"] == -200);
  const json month = http_get(api.port(), fmt::format("/v1/rebates?party={}&period=2026-01", kEastDistributor)).json();
  REQUIRE(month["history"].size() == 2);
  CHECK(month["history"][0]["cause"] == "OrderPaid");
  CHECK(month["history"][0]["old_tier"] == 0);
  CHECK(month["history"][0]["new_tier"] == 1);
  CHECK(month["history"][0]["delta_fen"] == 500);
  CHECK(month["history"][1]["cause"] == "RebateAdjusted");
  CHECK(month["history"][1]["reason"] == "display fee");
  CHECK(month["history"][1]["delta_fen"] == -200);
  // One row per page: the cursor walks the history.
  const json first = http_get(api.port(), fmt::format("/v1/rebates?party={}&period=2026-01&limit=1", kEastDistributor)).json();
  REQUIRE(first["history"].size() == 1);
  REQUIRE(first["next_cursor"] == "1");
  const json second = http_get(api.port(), fmt::format("/v1/rebates?party={}&period=2026-01&limit=1&cursor=1",
                                                        kEastDistributor)).json();
  REQUIRE(second["history"].size() == 1);
  CHECK(second["history"][0]["seq"] == 2);
  CHECK(second["next_cursor"].is_null());
}

TEST_CASE("performance api: rebates and performance show what was settled and what is still outstanding, and the "
          "history names the event that paid") {
  EventWriter w;
  const TimeMs february{kT0 + 35LL * 86'400'000};
  std::vector<Bytes> more{
      // January: 500 accrued, -200 adjusted, so 300 outstanding; 200 is paid, then 101 more is too much.
      copy(w.rebate_settled(Header{EventId{77, 1}, february, "finance"}, kEastDistributor, "2026-01", Fen{200}, "FIN-42")),
      copy(w.rebate_settled(Header{EventId{77, 2}, february, "finance"}, kEastDistributor, "2026-01", Fen{101}, "FIN-43")),
  };
  ApiFixture api(HttpOptions{}, more);
  const json periods = http_get(api.port(), fmt::format("/v1/rebates?party={}", kEastDistributor)).json();
  REQUIRE(periods["periods"].size() == 1);
  CHECK(periods["periods"][0]["rebate_accrued_fen"] == 500);
  CHECK(periods["periods"][0]["rebate_adjusted_fen"] == -200);
  CHECK(periods["periods"][0]["rebate_settled_fen"] == 200);
  CHECK(periods["periods"][0]["rebate_outstanding_fen"] == 100);
  const json month = http_get(api.port(), fmt::format("/v1/rebates?party={}&period=2026-01", kEastDistributor)).json();
  CHECK(month["rebate_settled_fen"] == 200);
  CHECK(month["rebate_outstanding_fen"] == 100);
  REQUIRE(month["history"].size() == 3);
  const json& paid = month["history"][2];
  CHECK(paid["cause"] == "RebateSettled");
  CHECK(paid["event_id"] == fmt::format("{:016x}{:016x}", 77, 1));
  CHECK(paid["occurred_at_ms"] == february.value);
  CHECK(paid["delta_fen"] == -200);
  CHECK(paid["reason"] == "FIN-42");
  const json performance = http_get(api.port(), perf(kEastDistributor), kTestEastToken).json();
  CHECK(performance["rebate_settled_fen"] == 200);
  CHECK(performance["rebate_outstanding_fen"] == 100);
  // A party with no settlement shows zero paid and what it is owed.
  const json west = http_get(api.port(), perf(kWestDistributor)).json();
  CHECK(west["rebate_settled_fen"] == 0);
  CHECK(west["rebate_outstanding_fen"] == west["rebate_accrued_fen"].get<std::int64_t>() +
                                             west["rebate_adjusted_fen"].get<std::int64_t>());
  // The over-settlement is a dead letter that says why.
  const json letters = http_get(api.port(), "/v1/dead-letters?partition=0", kTestHqToken).json();
  REQUIRE(letters["dead_letters"].size() == 2);
  CHECK(letters["dead_letters"][1]["reason"] == "exceeds_outstanding");
  CHECK(letters["dead_letters"][1]["field"] == "payload.amount_fen");
}

TEST_CASE("performance api: a store claimed twice is listed as a conflict, only to its region's readers") {
  ApiFixture api;
  const json hq = http_get(api.port(), "/v1/conflicts").json();
  REQUIRE(hq["conflicts"].size() == 1);
  CHECK(hq["conflicts"][0]["store"] == kEastStore);
  CHECK(hq["conflicts"][0]["assigned"] == kEastDistributor);
  CHECK(hq["conflicts"][0]["claimant"] == kEastRival);
  CHECK(hq["conflicts"][0]["region"] == "East");
  CHECK(http_get(api.port(), "/v1/conflicts", kTestEastToken).json()["conflicts"].size() == 1);
  CHECK(http_get(api.port(), "/v1/conflicts", kTestWestToken).json()["conflicts"].empty());
  CHECK(http_get(api.port(), "/v1/conflicts?cursor=nonsense").status == 400);
}

}  // namespace qudao
