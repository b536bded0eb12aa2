// The forecast endpoints over real HTTP (connectors/forecast_api.h): every role and region; the
// numbers equal `qudao forecast FILE`'s for the same events (a simulated file replayed into a real
// RocksDB store through the pipeline's ingest path, served by the query API); a regional token's
// accuracy is its own region's; pages, bounds and bad parameters.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "connectors/forecast_api.h"
#include "tests/connectors/api_fixture.h"
#include "tests/projections/history_story.h"
#include "tests/tools/simulate_file.h"
#include "tools/forecast.h"
#include "tools/replay.h"
#include "tools/service.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;

namespace {

json get_json(std::uint16_t port, const std::string& target, const char* token = kTestHqToken) {
  const HttpReply r = http_get(port, target, token);
  REQUIRE_MESSAGE(r.status == 200, target << ": " << r.status << " " << r.body);
  return r.json();
}

// A store replayed from an event file, served as `qudao serve` serves its store (nothing else arrives).
struct ReplayedApi : ServedStore {
  explicit ReplayedApi(const std::string& file, int partitions) {
    FileReplayOptions o;
    o.path = file;
    o.partitions = partitions;
    o.data_dir = dir.path() + "/store";
    std::atomic<bool> stop{false};
    auto replayed = replay_file(o, stop);
    REQUIRE_MESSAGE(replayed.is_ok(), replayed.status().message());
    auto opened = Store::open(StoreOptions{o.data_dir, kDefaultTopic});
    REQUIRE_MESSAGE(opened.is_ok(), opened.status().message());
    store = opened.take();
    serve(kDefaultTopic, HttpOptions{});
  }
};

// Every page of /v1/forecast`query`, the series concatenated.
json all_series(std::uint16_t port, const std::string& query, const char* token, std::size_t& pages) {
  json series = json::array();
  std::string cursor;
  pages = 0;
  for (;;) {
    std::string target = "/v1/forecast?limit=7" + query;
    if (!cursor.empty()) target += "&cursor=" + cursor;
    const json page = get_json(port, target, token);
    ++pages;
    REQUIRE(page["series"].size() <= 7);
    for (const json& s : page["series"]) series.push_back(s);
    if (page["next_cursor"].is_null()) return series;
    cursor = page["next_cursor"].get<std::string>();
  }
}

}  // namespace

TEST_CASE("forecast api: every forecast endpoint answers every role and region as the access table says") {
  ApiFixture api(HttpOptions{}, history_story());
  check_access(api.port(), {
      {"/v1/forecast", 200, 200, 200, 403, 403, 401},
      {"/v1/forecast?region=East", 200, 200, 404, 403, 403, 401},
      {"/v1/forecast?region=West", 200, 404, 200, 403, 403, 401},
      {"/v1/forecast?region=North", 200, 404, 404, 403, 403, 401},  // a region with a location, no sales
      {"/v1/forecast?region=Nowhere", 404, 404, 404, 403, 403, 401},
      {"/v1/forecast?sku=1&days=90", 200, 200, 200, 403, 403, 401},
      {"/v1/forecast/accuracy", 200, 200, 200, 403, 403, 401},
      {"/v1/forecast/accuracy?region=West", 200, 404, 200, 403, 403, 401},
      {"/v1/production-plan", 200, 403, 403, 403, 403, 401},
      {"/v1/production-plan?service_level=0.99", 200, 403, 403, 403, 403, 401},
      {"/v1/forecast?days=0", 400, 400, 400, 403, 403, 401},
      {"/v1/forecast?days=91", 400, 400, 400, 403, 403, 401},
      {"/v1/forecast?limit=1001", 400, 400, 400, 403, 403, 401},
      {"/v1/forecast?cursor=East", 400, 400, 400, 403, 403, 401},
      {"/v1/forecast?sku=x", 400, 400, 400, 403, 403, 401},
      {"/v1/forecast?region=", 400, 400, 400, 403, 403, 401},
      {"/v1/production-plan?service_level=1", 400, 403, 403, 403, 403, 401},
      {"/v1/production-plan?service_level=0.4", 400, 403, 403, 403, 403, 401},
      {"/v1/production-plan?service_level=high", 400, 403, 403, 403, 403, 401},
      {"/v1/production-plan?cursor=5", 400, 403, 403, 403, 403, 401},
  });

  // The story's series: sku 1 in East and West, sku 2 in East; East sees only its own.
  const json hq = get_json(api.port(), "/v1/forecast");
  REQUIRE(hq["series"].size() == 3);
  CHECK(hq["series"][0]["sku"] == 1);
  CHECK(hq["series"][0]["region"] == "East");
  CHECK(hq["series"][1]["region"] == "West");
  CHECK(hq["series"][0]["daily_units"].size() == kForecastDaysDefault);
  CHECK(hq["as_of"]["offsets"]["0"].get<std::int64_t>() > 0);
  const json east = get_json(api.port(), "/v1/forecast", kTestEastToken);
  REQUIRE(east["series"].size() == 2);
  for (const json& s : east["series"]) CHECK(s["region"] == "East");
  const json west = get_json(api.port(), "/v1/forecast/accuracy", kTestWestToken);
  CHECK(west["series"] == 1);
  // No sku was defined: nothing to plan, and the sold skus are counted as having no lead time.
  const json plan = get_json(api.port(), "/v1/production-plan");
  CHECK(plan["plan"].empty());
  CHECK(plan["skus_without_lead_time"] == 2);
}

TEST_CASE("forecast api: the HTTP numbers equal qudao forecast FILE's for the same events, per region for a "
          "regional token, at any service level") {
  TempDir dir;
  const std::string file = dir.path() + "/sim.qev";
  simulate_to(file, {.seed = 11, .regions = 3, .cities_per_region = 2, .stores_per_city = 4, .skus = 25, .days = 60,
                     .duplicate_rate = 0.02, .late_rate = 0.03, .malformed_rate = 0.01});
  constexpr int kPartitions = 4;
  ReplayedApi api(file, kPartitions);

  std::atomic<bool> stop{false};
  auto h = read_channel_history(file, kPartitions, stop);
  REQUIRE(h.is_ok());
  const ChannelHistory& history = h.value();
  ForecastArgs args;
  args.path = file;
  args.partitions = kPartitions;
  args.top = 0;
  ForecastOptions options{.service_level = 0.95, .backtest = {}, .forecast_days = kForecastDaysMax};
  auto offline = forecast_and_plan(history.series, history.supply, options);
  REQUIRE(offline.is_ok());
  const ForecastReport& report = offline.value();
  const json tool = json::parse(forecast_json(history, report, args));
  REQUIRE(tool["plan"].size() == 25);

  // Accuracy per class and the plan: the offline tool's JSON, number for number.
  const json accuracy = get_json(api.port(), "/v1/forecast/accuracy");
  CHECK(accuracy["accuracy"] == tool["accuracy"]);
  CHECK(accuracy["series"] == tool["series"]);
  CHECK(accuracy["series_not_backtested"] == tool["series_not_backtested"]);
  const json plan = get_json(api.port(), "/v1/production-plan?limit=1000");
  CHECK(plan["plan"] == tool["plan"]);
  CHECK(plan["production_units_total"] == tool["production_units_total"]);
  CHECK(plan["skus_without_lead_time"] == tool["skus_without_lead_time"]);
  CHECK(plan["as_of"]["last_day"] == tool["last_day"]);

  // Every series, over pages: class, method and the daily forecasts of the offline model.
  std::size_t pages = 0;
  const json series = all_series(api.port(), "&days=30", kTestHqToken, pages);
  REQUIRE(series.size() == report.series.size());
  CHECK(pages == (series.size() + 6) / 7);
  for (std::size_t i = 0; i < series.size(); ++i) {
    const SeriesForecast& f = report.series[i];
    INFO("series " << i << ": sku " << f.sku.value << " " << f.region);
    CHECK(series[i]["sku"] == f.sku.value);
    CHECK(series[i]["region"] == f.region);
    CHECK(series[i]["class"] == series_class_name(f.profile.series_class));
    CHECK(series[i]["method"] == method_name(f.params.method));
    CHECK(series[i]["sigma_units"] == f.sigma_units);
    REQUIRE(series[i]["daily_units"].size() == 30);
    CHECK(series[i]["daily_units"][0] == f.daily_units);
    for (int d = 0; d < 30; ++d) CHECK(series[i]["daily_units"][d] == f.next_days_units[d]);
    CHECK(series[i]["backtest"].is_null() == !f.accuracy.has_value());
  }

  // Another service level: the offline plan at that level.
  ForecastOptions strict = options;
  strict.service_level = 0.99;
  auto offline_strict = forecast_and_plan(history.series, history.supply, strict);
  REQUIRE(offline_strict.is_ok());
  const json strict_plan = get_json(api.port(), "/v1/production-plan?limit=1000&service_level=0.99");
  REQUIRE(strict_plan["plan"].size() == offline_strict.value().plan.size());
  for (std::size_t i = 0; i < offline_strict.value().plan.size(); ++i) {
    CHECK(strict_plan["plan"][i] == plan_row_json(offline_strict.value().plan[i]));
  }
  // Plan pages: 10 rows at a time, together the whole plan.
  json paged = json::array();
  std::string cursor;
  for (int page = 0; page < 10; ++page) {
    const json p = get_json(api.port(), "/v1/production-plan?limit=10" + (cursor.empty() ? "" : "&cursor=" + cursor));
    for (const json& r : p["plan"]) paged.push_back(r);
    if (p["next_cursor"].is_null()) break;
    cursor = p["next_cursor"].get<std::string>();
  }
  CHECK(paged == tool["plan"]);

  // A regional token: only its region's series, and the accuracy of those alone.
  const json east = all_series(api.port(), "", kTestEastToken, pages);
  std::vector<SeriesForecast> east_series;
  std::vector<SeriesAccuracy> east_backtests;
  for (const SeriesForecast& f : report.series) {
    if (f.region != "East") continue;
    east_series.push_back(f);
    if (f.accuracy) east_backtests.push_back(*f.accuracy);
  }
  REQUIRE(!east_series.empty());
  CHECK(east.size() == east_series.size());
  for (const json& s : east) CHECK(s["region"] == "East");
  const json east_accuracy = get_json(api.port(), "/v1/forecast/accuracy", kTestEastToken);
  CHECK(east_accuracy["accuracy"] == accuracy_json(summarise_accuracy(east_backtests), east_series));
  CHECK(get_json(api.port(), "/v1/forecast/accuracy?region=East")["accuracy"] == east_accuracy["accuracy"]);
}

}  // namespace qudao
