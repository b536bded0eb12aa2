// The stock history endpoints over real HTTP (connectors/stock_api.h): /v1/stock with filters,
// as_of, periods and cursors; /v1/stock/rollup; /v1/anomalies; every role and region, swapped ids.
// The store holds tests/connectors/api_fixture.h's ledger plus the story of
// tests/projections/history_story.h on partition 0.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "tests/connectors/api_fixture.h"
#include "tests/projections/history_story.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;

namespace {

struct HistoryApi : ApiFixture {
  HistoryApi() : ApiFixture(HttpOptions{}, history_story()) {}
};

json get_json(const HistoryApi& api, const std::string& target, const char* token = kTestHqToken) {
  const HttpReply r = http_get(api.port(), target, token);
  REQUIRE_MESSAGE(r.status == 200, target << ": " << r.status << " " << r.body);
  return r.json();
}

const json& sku_row(const json& skus, std::uint64_t sku) {
  for (const json& r : skus) {
    if (r["sku"] == sku) return r;
  }
  FAIL("no row for sku " << sku);
  return skus;
}

}  // namespace

TEST_CASE("stock api: the new stock endpoints answer every role and region as the access table says") {
  HistoryApi api;
  const std::string s11 = std::to_string(kStoryStore), s13 = std::to_string(kStoryWestStore);
  check_access(api.port(), {
      {"/v1/stock?region=East", 200, 200, 404, 403, 403, 401},
      {"/v1/stock?region=West", 200, 404, 200, 403, 403, 401},
      {"/v1/stock?region=Nowhere", 404, 404, 404, 403, 403, 401},
      {"/v1/stock?city=Ningbo", 200, 200, 404, 403, 403, 401},
      {"/v1/stock?city=Xian&region=East", 404, 404, 404, 403, 403, 401},
      {"/v1/stock?sku=1", 200, 200, 200, 403, 403, 401},
      {"/v1/stock?location=" + s11 + "&as_of=2026-01-02", 200, 200, 404, 403, 403, 401},
      {"/v1/stock?location=" + s13 + "&as_of=2026-01-02", 200, 404, 200, 403, 403, 401},
      {"/v1/stock?location=" + s11 + "&from=2026-01-01&to=2026-01-04", 200, 200, 404, 403, 403, 401},
      {"/v1/stock?location=" + s11 + "&region=West", 404, 404, 404, 403, 403, 401},
      {"/v1/stock/rollup?level=city", 200, 200, 200, 403, 403, 401},
      {"/v1/stock/rollup?level=region&as_of=2026-01-03", 200, 200, 200, 403, 403, 401},
      {"/v1/stock/rollup?level=nation", 200, 403, 403, 403, 403, 401},
      {"/v1/stock/rollup?level=city&region=West", 200, 404, 200, 403, 403, 401},
      {"/v1/stock/rollup?level=region&region=East&from=2026-01-01&to=2026-01-02", 200, 200, 404, 403, 403, 401},
      {"/v1/anomalies?location=" + s11, 200, 200, 404, 403, 403, 401},
      {"/v1/anomalies?location=" + s13, 200, 404, 200, 403, 403, 401},
      {"/v1/anomalies?location=999", 404, 404, 404, 403, 403, 401},
      {"/v1/stock?as_of=2026-02-30", 400, 400, 400, 403, 403, 401},
      {"/v1/stock?from=2026-01-01", 400, 400, 400, 403, 403, 401},
      {"/v1/stock?from=2026-01-03&to=2026-01-01", 400, 400, 400, 403, 403, 401},
      {"/v1/stock?from=2025-01-01&to=2026-01-02", 400, 400, 400, 403, 403, 401},
      {"/v1/stock?limit=0", 400, 400, 400, 403, 403, 401},
      {"/v1/stock?limit=1001", 400, 400, 400, 403, 403, 401},
      {"/v1/stock?cursor=abc", 400, 400, 400, 403, 403, 401},
      {"/v1/stock?reorder_cover_days=0", 400, 400, 400, 403, 403, 401},
      {"/v1/stock/rollup", 400, 400, 400, 403, 403, 401},
      {"/v1/stock/rollup?level=planet", 400, 400, 400, 403, 403, 401},
      {"/v1/anomalies", 400, 400, 400, 403, 403, 401},
      {"/v1/anomalies?location=" + s11 + "&cursor=-1.0", 400, 400, 400, 403, 403, 401},
  });
}

TEST_CASE("stock api: a location's rows carry cover, reorder flags, as-of closings and period sales") {
  HistoryApi api;
  const std::string s11 = "/v1/stock?location=" + std::to_string(kStoryStore);
  const json now = get_json(api, s11);
  CHECK(now["region"] == "East");
  CHECK(now["window_days"] == kCoverWindowDays);
  CHECK(now["reorder_cover_days"] == kReorderCoverDaysDefault);
  CHECK(now["next_cursor"].is_null());
  CHECK(sku_row(now["skus"], 1)["on_hand"] == 30);
  CHECK(sku_row(now["skus"], 1)["sold_window"] == 10);
  CHECK(sku_row(now["skus"], 1)["days_of_cover"] == 84.0);
  CHECK(sku_row(now["skus"], 1)["below_reorder"] == false);
  CHECK(sku_row(now["skus"], 2)["days_of_cover"] == 0.0);
  CHECK(sku_row(now["skus"], 2)["below_reorder"] == true);
  CHECK_FALSE(sku_row(now["skus"], 1).contains("sold"));
  CHECK(sku_row(get_json(api, "/v1/stock?location=" + std::to_string(kStoryWarehouse))["skus"], 1)["days_of_cover"]
            .is_null());
  // The reader's own threshold.
  CHECK(sku_row(get_json(api, s11 + "&reorder_cover_days=90")["skus"], 1)["below_reorder"] == true);

  const json day1 = get_json(api, s11 + "&as_of=2026-01-02");
  CHECK(day1["as_of"] == "2026-01-02");
  CHECK(sku_row(day1["skus"], 1)["on_hand"] == 35);
  CHECK(sku_row(day1["skus"], 1)["sold_window"] == 7);
  CHECK(sku_row(day1["skus"], 2)["on_hand"] == 8);
  const json before = get_json(api, s11 + "&as_of=2025-12-31");
  CHECK(sku_row(before["skus"], 1)["on_hand"] == 0);
  CHECK(sku_row(get_json(api, s11 + "&as_of=2026-01-03")["skus"], 1)["on_hand"] == 32);
  // East's token gets the same answer as HQ's.
  CHECK(http_get(api.port(), s11 + "&as_of=2026-01-02", kTestEastToken).body ==
        http_get(api.port(), s11 + "&as_of=2026-01-02", kTestHqToken).body);

  const json period = get_json(api, s11 + "&from=2026-01-02&to=2026-01-03");
  CHECK(period["from"] == "2026-01-02");
  CHECK(period["to"] == "2026-01-03");
  CHECK(sku_row(period["skus"], 1)["sold"] == 10);
  CHECK(sku_row(period["skus"], 2)["sold"] == 0);
}

TEST_CASE("stock api: stock rows page by cursor, and roll-ups sum per city, region and nation") {
  HistoryApi api;
  // The East token pages through every East row, two at a time, and never sees another region's.
  std::vector<std::pair<std::uint64_t, std::uint64_t>> seen;
  std::string target = "/v1/stock?limit=2";
  for (int pages = 0; pages < 20; ++pages) {
    const json page = get_json(api, target, kTestEastToken);
    CHECK(page["rows"].size() <= 2);
    for (const json& r : page["rows"]) {
      CHECK(r["region"] == "East");
      seen.emplace_back(r["location"].get<std::uint64_t>(), r["sku"].get<std::uint64_t>());
    }
    if (page["next_cursor"].is_null()) break;
    target = "/v1/stock?limit=2&cursor=" + page["next_cursor"].get<std::string>();
  }
  // East: the fixture's 1 (skus 1, 2) and 2 (sku 1), the story's 10, 11, 12 (skus 1, 2 each).
  CHECK(seen == std::vector<std::pair<std::uint64_t, std::uint64_t>>{
                    {1, 1}, {1, 2}, {2, 1}, {10, 1}, {10, 2}, {11, 1}, {11, 2}, {12, 1}, {12, 2}});

  const json ningbo = get_json(api, "/v1/stock?city=Ningbo&sku=1&as_of=2026-01-01", kTestEastToken);
  REQUIRE(ningbo["rows"].size() == 1);
  CHECK(ningbo["rows"][0]["location"] == kStoryNingboStore);
  CHECK(ningbo["rows"][0]["on_hand"] == 20);

  const json cities = get_json(api, "/v1/stock/rollup?level=city&region=East");
  REQUIRE(cities["groups"].size() == 2);
  CHECK(cities["groups"][0]["city"] == "Hangzhou");
  CHECK(cities["groups"][0]["locations"] == 4);  // the fixture's 1 and 2, the story's 10 and 11
  CHECK(cities["groups"][0]["on_hand"] == 70 + 40 + 30 + (40 + 35 + 30 - 12));
  CHECK(cities["groups"][0]["rows_below_reorder"] == 1);
  CHECK(cities["groups"][1]["city"] == "Ningbo");
  CHECK(cities["groups"][1]["in_transit"] == 5);
  CHECK(cities["next_cursor"].is_null());

  const json paged = get_json(api, "/v1/stock/rollup?level=city&region=East&limit=1");
  REQUIRE(paged["groups"].size() == 1);
  REQUIRE(paged["next_cursor"].is_string());
  const json rest =
      get_json(api, "/v1/stock/rollup?level=city&region=East&limit=1&cursor=" + paged["next_cursor"].get<std::string>());
  REQUIRE(rest["groups"].size() == 1);
  CHECK(rest["groups"][0]["city"] == "Ningbo");
  CHECK(rest["next_cursor"].is_null());

  const json east_day0 = get_json(api, "/v1/stock/rollup?level=region&as_of=2026-01-01", kTestEastToken);
  REQUIRE(east_day0["groups"].size() == 1);  // East's own only
  CHECK(east_day0["groups"][0]["region"] == "East");
  CHECK(east_day0["groups"][0]["on_hand"] == 70 + 40 + 30 + (40 + 40 + 40 + 8 + 20));

  const json nation = get_json(api, "/v1/stock/rollup?level=nation&from=2026-01-01&to=2026-01-04");
  REQUIRE(nation["groups"].size() == 1);
  CHECK_FALSE(nation["groups"][0].contains("region"));
  CHECK(nation["groups"][0]["locations"] == 9);
  CHECK(nation["groups"][0]["sold"] == 7 + 3 + 20 + 4 + 1);
  CHECK(nation["groups"][0]["on_hand"] == (100 + 40 + 7 + 11) + 108);
  // The nation is every region: a region filter would make it one region's sum under another name.
  CHECK(http_get(api.port(), "/v1/stock/rollup?level=nation&region=East", kTestHqToken).status == 400);
}

namespace {

// The history story with reorder points: sku 1's only on partition 1 (as the simulator keys the
// catalogue to HQ's shard), sku 3's on both partitions, with different figures.
std::vector<Bytes> reorder_points(std::uint64_t first_id, std::initializer_list<std::pair<std::uint64_t, int>> points) {
  EventWriter w;
  std::vector<Bytes> out;
  std::uint64_t id = first_id;
  for (auto [sku, days] : points) {
    out.push_back(copy(w.sku_defined(Header{EventId{8, ++id}, TimeMs{kT0}, "test"}, SkuId{sku}, "SKU", "n", "tea", "box",
                                     Fen{100}, 7, days)));
  }
  return out;
}

struct ReorderApi : ApiFixture {
  ReorderApi()
      : ApiFixture(HttpOptions{}, [] {
          std::vector<Bytes> p0 = history_story();
          for (Bytes& b : reorder_points(100, {{3, 5}})) p0.push_back(std::move(b));
          return p0;
        }(), reorder_points(200, {{1, 90}, {3, 50}})) {}
};

json get_reorder(const ReorderApi& api, const std::string& target) {
  const HttpReply r = http_get(api.port(), target, kTestHqToken);
  REQUIRE_MESSAGE(r.status == 200, target << ": " << r.status << " " << r.body);
  return r.json();
}

}  // namespace

TEST_CASE("stock api: without reorder_cover_days each row is below reorder by its sku's own reorder point, "
          "from whichever shard defined it, else 14; with it, the query's figure for every row") {
  ReorderApi api;
  const std::string s11 = "/v1/stock?location=" + std::to_string(kStoryStore);
  const json own = get_reorder(api, s11);
  CHECK(own["reorder_cover_days"] == kReorderCoverDaysDefault);  // for skus without a point of their own
  const json& sku1 = sku_row(own["skus"], 1);
  CHECK(sku1["days_of_cover"] == 84.0);
  CHECK(sku1["reorder_cover_days"] == 90);  // partition 1's SkuDefined, for a row on partition 0
  CHECK(sku1["reorder_source"] == "sku");
  CHECK(sku1["below_reorder"] == true);     // 84 < 90 (not below by the default 14)
  const json& sku2 = sku_row(own["skus"], 2);
  CHECK(sku2["reorder_cover_days"] == kReorderCoverDaysDefault);
  CHECK(sku2["reorder_source"] == "default");
  CHECK(sku2["below_reorder"] == true);

  const json query = get_reorder(api, s11 + "&reorder_cover_days=30");
  CHECK(query["reorder_cover_days"] == 30);
  CHECK(sku_row(query["skus"], 1)["reorder_cover_days"] == 30);
  CHECK(sku_row(query["skus"], 1)["reorder_source"] == "query");
  CHECK(sku_row(query["skus"], 1)["below_reorder"] == false);
  CHECK(sku_row(query["skus"], 2)["reorder_source"] == "query");
  CHECK(sku_row(query["skus"], 2)["below_reorder"] == true);

  // A shard's own figure wins over another shard's: sku 3 is 5 days on partition 0 and 50 on 1.
  const json north = get_reorder(api, "/v1/stock?location=" + std::to_string(kNorthWarehouse));
  CHECK(sku_row(north["skus"], 3)["reorder_cover_days"] == 50);
  const json rows = get_reorder(api, "/v1/stock?sku=1&region=East");
  for (const json& r : rows["rows"]) CHECK(r["reorder_cover_days"] == 90);

  // Roll-ups count rows below each one's threshold, live and as of a day.
  auto hangzhou = [&](const std::string& query) {
    const json cities = get_reorder(api, "/v1/stock/rollup?level=city&region=East" + query);
    REQUIRE(cities["groups"][0]["city"] == "Hangzhou");
    return cities["groups"][0]["rows_below_reorder"].get<int>();
  };
  CHECK(hangzhou("") == 2);                             // (11, sku1) by its 90, (11, sku2) by 14
  CHECK(hangzhou("&reorder_cover_days=30") == 1);       // (11, sku2) only
  CHECK(hangzhou("&reorder_cover_days=14") == 1);       // what the default alone gave
  CHECK(hangzhou("&as_of=2026-01-03") == 1);            // (11, sku1): 32 units, 10 sold in 28 days: 89.6 < 90
  CHECK(hangzhou("&as_of=2026-01-03&reorder_cover_days=30") == 0);
  const json as_of = get_reorder(api, s11 + "&as_of=2026-01-03");
  CHECK(sku_row(as_of["skus"], 1)["days_of_cover"] == 89.6);
  CHECK(sku_row(as_of["skus"], 1)["below_reorder"] == true);
  CHECK(sku_row(as_of["skus"], 1)["reorder_source"] == "sku");
}

TEST_CASE("stock api: anomalies page per location, and another region's location answers as an unknown one") {
  HistoryApi api;
  const std::string s11 = "/v1/anomalies?location=" + std::to_string(kStoryStore);
  const json first = get_json(api, s11 + "&limit=1", kTestEastToken);
  REQUIRE(first["anomalies"].size() == 1);
  CHECK(first["anomalies"][0]["kind"] == "receipt_shortage");
  CHECK(first["anomalies"][0]["sku"] == 2);
  CHECK(first["anomalies"][0]["qty"] == 2);
  CHECK(first["anomalies"][0]["day"] == "2026-01-01");
  CHECK(first["anomalies"][0]["event_id"] == "00000000000000090000000000000007");
  REQUIRE(first["next_cursor"].is_string());
  const json second = get_json(api, s11 + "&limit=1&cursor=" + first["next_cursor"].get<std::string>(), kTestEastToken);
  REQUIRE(second["anomalies"].size() == 1);
  CHECK(second["anomalies"][0]["kind"] == "scan_out_beyond_stock");
  CHECK(second["anomalies"][0]["qty"] == 12);
  CHECK(second["anomalies"][0]["day"] == "2026-01-04");
  CHECK(second["next_cursor"].is_null());
  CHECK(get_json(api, "/v1/anomalies?location=" + std::to_string(kEastStore))["anomalies"].empty());

  // Swapped ids: every answer is the unknown id's, word for word but the id.
  auto unknown = [&](const std::string& path, const char* token, std::uint64_t id) {
    HttpReply r = http_get(api.port(), fmt::format(fmt::runtime(path), kNoSuchLocation), token);
    REQUIRE(r.status == 404);
    const std::string from = std::to_string(kNoSuchLocation);
    r.body.replace(r.body.find(from), from.size(), std::to_string(id));
    return r.body;
  };
  for (const std::string path : {"/v1/anomalies?location={}", "/v1/stock?location={}&as_of=2026-01-02",
                                 "/v1/stock?location={}&from=2026-01-01&to=2026-01-02"}) {
    for (const auto& [token, id] : {std::pair{kTestEastToken, kStoryWestStore}, std::pair{kTestWestToken, kStoryStore},
                                    std::pair{kTestWestToken, kStoryNingboStore}, std::pair{kTestEastToken, kNorthWarehouse}}) {
      INFO(path << " location " << id);
      const HttpReply got = http_get(api.port(), fmt::format(fmt::runtime(path), id), token);
      CHECK(got.status == 404);
      CHECK(got.body == unknown(path, token, id));
    }
  }
  // Another region's name answers as a name no region has.
  HttpReply other = http_get(api.port(), "/v1/stock/rollup?level=city&region=West", kTestEastToken);
  const HttpReply none = http_get(api.port(), "/v1/stock/rollup?level=city&region=Nowhere", kTestEastToken);
  CHECK(other.status == 404);
  CHECK(none.status == 404);
  other.body.replace(other.body.find("West"), 4, "Nowhere");
  CHECK(other.body == none.body);
}

}  // namespace qudao
