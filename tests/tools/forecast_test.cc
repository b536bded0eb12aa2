// qudao forecast on a simulated channel written to an event file: the series hold exactly the
// applied scan-outs (duplicates and malformed records do not count), the network stock equals what
// the simulator expects the engine to hold, every class found gets finite accuracy figures, and the
// same file gives the same report byte for byte.
#include <doctest/doctest.h>

#include <fmt/format.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "events/event_file.h"
#include "tests/support.h"
#include "tests/tools/simulate_file.h"
#include "tools/forecast.h"
#include "tools/simulate.h"

namespace qudao {
using namespace qudao::test;

namespace {

bool finite_or_null(const nlohmann::json& j) { return j.is_null() || (j.is_number() && std::isfinite(j.get<double>())); }

}  // namespace

TEST_CASE("qudao forecast: a simulated file's sell-through, stock and plan, every class with finite figures, "
          "the same bytes twice") {
  TempDir dir;
  const std::string file = dir.path() + "/sim.qev";
  const SimulationSummary summary = simulate_to(file, {.seed = 5, .regions = 3, .cities_per_region = 2,
                                                       .stores_per_city = 5, .skus = 40, .days = 70,
                                                       .duplicate_rate = 0.02, .late_rate = 0.03,
                                                       .malformed_rate = 0.01});
  std::atomic<bool> stop{false};
  auto h = read_channel_history(file, 4, stop);
  REQUIRE_MESSAGE(h.is_ok(), h.status().message());
  const ChannelHistory& history = h.value();
  CHECK(history.records == summary.events);
  CHECK(history.applied == summary.applied());
  // Re-sent scan-outs are duplicates and malformed records are rejected: neither is a sale.
  CHECK(history.scan_outs == summary.events_by_type.at("ScanOut"));
  // 70 days, and up to 3 before them: a late upload counts on the day it says it happened.
  const std::int64_t days = history.last_day.value - history.first_day.value + 1;
  CHECK(days >= 70);
  CHECK(days <= 73);

  std::int64_t expected_on_hand = 0, expected_in_transit = 0, on_hand = 0, in_transit = 0;
  for (const auto& [region, e] : summary.regions) expected_on_hand += e.on_hand, expected_in_transit += e.in_transit;
  for (const SkuSupply& s : history.supply) on_hand += s.on_hand.value, in_transit += s.in_transit.value;
  CHECK(history.supply.size() == 40);
  CHECK(on_hand == expected_on_hand);
  CHECK(in_transit == expected_in_transit);
  for (const DemandSeries& s : history.series) CHECK(s.units_per_day.size() == static_cast<std::size_t>(days));

  ForecastArgs args;
  args.path = file;
  args.partitions = 4;
  args.top = 0;
  auto report = forecast_and_plan(history.series, history.supply,
                                  {.service_level = args.service_level,
                                   .backtest = {.backtest_days = args.backtest_days, .horizon_days = args.horizon_days}});
  REQUIRE(report.is_ok());
  const std::string json_text = forecast_json(history, report.value(), args);
  const nlohmann::json j = nlohmann::json::parse(json_text);
  CHECK(j["series"].get<std::size_t>() == history.series.size());
  std::size_t classes_found = 0, backtested = 0;
  for (const auto& c : j["accuracy"]["classes"]) {
    CHECK(finite_or_null(c["wape"]));
    CHECK(finite_or_null(c["mase"]));
    CHECK(finite_or_null(c["naive_wape"]));
    CHECK(finite_or_null(c["naive_mase"]));
    if (c["series_backtested"].get<std::size_t>() == 0) continue;
    ++classes_found;
    backtested += c["series_backtested"].get<std::size_t>();
    if (c["class"] != "no_demand") {
      CHECK(c["wape"].is_number());
      CHECK(c["mase"].is_number());
    }
  }
  CHECK(classes_found >= 2);  // the Zipf tail makes sparse series next to the best sellers' smooth ones
  CHECK(backtested == j["accuracy"]["all"]["series_backtested"].get<std::size_t>());
  CHECK(j["plan"].size() == 40);
  for (const auto& row : j["plan"]) {
    CHECK(row["production_units"].get<std::int64_t>() >= 0);
    CHECK(std::isfinite(row["forecast_units"].get<double>()));
    CHECK(std::isfinite(row["safety_units"].get<double>()));
  }
  const std::string text = forecast_text(history, report.value(), args);
  CHECK(text.find("smooth") != std::string::npos);
  CHECK(text.find("production plan") != std::string::npos);

  // Again from the file, with another partition count (the simulator keys a region to one shard
  // whatever the count): the same report.
  auto again = read_channel_history(file, 8, stop);
  REQUIRE(again.is_ok());
  auto report2 = forecast_and_plan(again.value().series, again.value().supply,
                                   {.service_level = args.service_level,
                                    .backtest = {.backtest_days = args.backtest_days, .horizon_days = args.horizon_days}});
  REQUIRE(report2.is_ok());
  CHECK(forecast_json(again.value(), report2.value(), args) == json_text);
}

TEST_CASE("qudao forecast: a file without scan-outs forecasts nothing; a corrupt file is an error") {
  TempDir dir;
  const std::string file = dir.path() + "/empty.qev";
  {
    auto w = EventFileWriter::create(file);
    REQUIRE(w.is_ok());
    REQUIRE(w.value()->finish().is_ok());
  }
  std::atomic<bool> stop{false};
  auto h = read_channel_history(file, 8, stop);
  REQUIRE(h.is_ok());
  CHECK(h.value().series.empty());
  auto report = forecast_and_plan(h.value().series, h.value().supply, {});
  REQUIRE(report.is_ok());
  ForecastArgs args;
  args.path = file;
  CHECK(forecast_text(h.value(), report.value(), args).find("no scan-outs") != std::string::npos);

  // 20 days of sales: too short for a 28-day backtest, and the report says so.
  const std::string short_file = dir.path() + "/short.qev";
  simulate_to(short_file, {.seed = 2, .regions = 1, .cities_per_region = 1, .stores_per_city = 3, .skus = 5, .days = 20});
  auto s = read_channel_history(short_file, 8, stop);
  REQUIRE(s.is_ok());
  auto short_report = forecast_and_plan(s.value().series, s.value().supply, {});
  REQUIRE(short_report.is_ok());
  CHECK(short_report.value().accuracy.all.series == 0);
  args.path = short_file;
  CHECK(forecast_text(s.value(), short_report.value(), args)
            .find(fmt::format("{} series not backtested: shorter than 14 days before the last 28",
                              s.value().series.size())) != std::string::npos);

  const std::string bad = dir.path() + "/bad.qev";
  std::FILE* f = std::fopen(bad.c_str(), "wb");
  REQUIRE(f != nullptr);
  std::fputs("not an event file", f);
  std::fclose(f);
  CHECK_FALSE(read_channel_history(bad, 8, stop).is_ok());
}

}  // namespace qudao
