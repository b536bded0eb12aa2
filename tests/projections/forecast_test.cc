// The forecast library's contract (projections/forecast.h): classification by ADI and CV², each
// method's recursion against values computed by hand, the backtest's WAPE and MASE on a series whose
// errors are known, the production plan's formula, and bit-identical output for the same input.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "projections/forecast.h"

namespace qudao {
namespace {

using V = std::vector<double>;

// 0, 2, 0, 2, ...: intermittent, and the naive forecast is always 2 off.
V alternating(std::size_t n) {
  V y(n);
  for (std::size_t i = 0; i < n; ++i) y[i] = i % 2 == 1 ? 2 : 0;
  return y;
}

// Deterministic pseudo-random daily sales (a linear congruential generator), some days zero.
std::vector<std::int64_t> noisy(std::uint64_t seed, std::size_t n, int zero_one_in, int size_max) {
  std::vector<std::int64_t> y(n);
  std::uint64_t s = seed;
  for (auto& v : y) {
    s = s * 6364136223846793005ULL + 1442695040888963407ULL;
    const std::uint64_t r = s >> 33;
    v = static_cast<int>(r % static_cast<std::uint64_t>(zero_one_in)) == 0 ? 0 : 1 + static_cast<std::int64_t>((r >> 8) % static_cast<std::uint64_t>(size_max));
  }
  return y;
}

}  // namespace

TEST_CASE("forecast: classify puts hand-made series in each Syntetos-Boylan class") {
  const DemandProfile smooth = classify(V{3, 4, 5, 4, 3, 4, 5, 4});
  CHECK(smooth.series_class == SeriesClass::smooth);
  CHECK(smooth.adi == 1.0);
  CHECK(smooth.cv2 == doctest::Approx(0.5 / 16));

  const DemandProfile erratic = classify(V{1, 10, 1, 10, 1, 10});
  CHECK(erratic.series_class == SeriesClass::erratic);
  CHECK(erratic.cv2 == doctest::Approx(20.25 / 30.25));

  const DemandProfile intermittent = classify(V{0, 0, 5, 0, 0, 5, 0, 0, 4, 0, 0, 6});
  CHECK(intermittent.series_class == SeriesClass::intermittent);
  CHECK(intermittent.adi == 3.0);
  CHECK(intermittent.demand_days == 4);
  CHECK(intermittent.cv2 == doctest::Approx(0.5 / 25));

  const DemandProfile lumpy = classify(V{0, 0, 1, 0, 0, 20, 0, 0, 2, 0, 0, 15});
  CHECK(lumpy.series_class == SeriesClass::lumpy);
  CHECK(lumpy.cv2 == doctest::Approx(67.25 / 90.25));
}

TEST_CASE("forecast: ADI at the 1.32 cut-off is intermittent; all-zero and empty series have no demand; one day is smooth") {
  V y(33, 0);
  for (int i = 0; i < 25; ++i) y[static_cast<std::size_t>(i)] = 1;  // 33 / 25 = 1.32
  CHECK(classify(y).series_class == SeriesClass::intermittent);
  y[25] = 1;  // 33 / 26 < 1.32
  CHECK(classify(y).series_class == SeriesClass::smooth);

  for (const V& none : {V{}, V{0, 0, 0}}) {
    const DemandProfile p = classify(none);
    CHECK(p.series_class == SeriesClass::no_demand);
    CHECK(p.adi == 0);
    const ModelChoice c = choose_model(none);
    CHECK(c.model.params().method == Method::zero);
    CHECK(c.model.forecast(1) == 0);
    CHECK(c.model.rmse() == 0);
  }
  const DemandProfile one = classify(V{7});
  CHECK(one.series_class == SeriesClass::smooth);
  CHECK(one.adi == 1);
  CHECK(one.cv2 == 0);
}

TEST_CASE("forecast: SES starts from the first week's mean and follows l += alpha e") {
  // l0 = mean(2,2,2,2,2,2,9) = 3; then 2.5, 2.25, 2.125, 2.0625, 2.03125, 5.515625, 52.7578125.
  const FittedModel m = FittedModel::fit(V{2, 2, 2, 2, 2, 2, 9, 100}, {Method::ses, 0.5, 0, 1});
  CHECK(m.forecast(1) == 52.7578125);
  CHECK(m.forecast(30) == 52.7578125);
  CHECK(m.forecast_total(4) == 4 * 52.7578125);
  CHECK(m.errors() == 7);
  const double sse = 1 + 0.25 + 0.0625 + 0.015625 + 0.00390625 + 6.96875 * 6.96875 + 94.484375 * 94.484375;
  CHECK(m.sse() == doctest::Approx(sse));
  CHECK(m.rmse() == doctest::Approx(std::sqrt(sse / 7)));

  const FittedModel short_series = FittedModel::fit(V{10, 12, 8, 10}, {Method::ses, 0.5, 0, 1});
  CHECK(short_series.forecast(1) == 9.75);  // l0 = 10; 11, 9.5, 9.75
  CHECK(short_series.sse() == 13.25);
}

TEST_CASE("forecast: Holt's level and trend, undamped and damped, against hand-computed values") {
  // l0 = 13, b0 = 0; (l, b) = (12.5, -0.25), (13.125, 0.1875), (14.65625, 0.859375).
  FittedModel m = FittedModel::fit(V{10, 12, 14, 16}, {Method::holt, 0.5, 0.5, 1.0});
  CHECK(m.forecast(1) == 15.515625);
  CHECK(m.forecast(3) == 17.234375);
  CHECK(m.forecast_total(2) == 15.515625 + 16.375);
  CHECK(m.sse() == 1 + 3.0625 + 2.6875 * 2.6875);
  m.absorb(18);  // f = 15.515625, e = 2.484375: l = 16.7578125, b = 0.5 * 2.1015625 + 0.5 * 0.859375
  CHECK(m.forecast(1) == 16.7578125 + 1.48046875);

  // l0 = 4; y1 = 8: f = 4, e = 4, l = 6, b = 0.5 * 2 = 1; h days ahead: 6 + (0.5 + ... + 0.5^h) * 1.
  const FittedModel damped = FittedModel::fit(V{0, 8}, {Method::holt, 0.5, 0.5, 0.5});
  CHECK(damped.forecast(1) == 6.5);
  CHECK(damped.forecast(2) == 6.75);
  CHECK(damped.forecast_total(2) == 13.25);

  // A falling trend never forecasts negative sales.
  const FittedModel falling = FittedModel::fit(V{30, 24, 18, 12, 6, 0, 0}, {Method::holt, 0.5, 0.5, 1.0});
  CHECK(falling.forecast(20) == 0);
}

TEST_CASE("forecast: Croston smooths size and interval on demand days; SBA scales by 1 - alpha/2") {
  const V y{0, 0, 6, 0, 2, 0, 0, 0, 4};
  // z0 = 6, p0 = 3; at day 4: z = 4, p = 2.5; at day 8 (4 days later): z = 4, p = 3.25.
  const FittedModel croston = FittedModel::fit(y, {Method::croston, 0.5, 0, 1});
  CHECK(croston.forecast(1) == doctest::Approx(4 / 3.25));
  CHECK(croston.forecast_total(10) == doctest::Approx(40 / 3.25));
  CHECK(croston.errors() == 6);  // from the day after the first demand
  CHECK(croston.sse() == doctest::Approx(4 + 0 + 3 * 2.56 + 5.76));

  const FittedModel sba = FittedModel::fit(y, {Method::sba, 0.5, 0, 1});
  CHECK(sba.forecast(1) == doctest::Approx(0.75 * 4 / 3.25));
  CHECK(sba.sse() == doctest::Approx(2.25 + 0.25 + 3 * 1.44 + 7.84));

  const FittedModel before_demand = FittedModel::fit(V{0, 0, 0}, {Method::croston, 0.5, 0, 1});
  CHECK(before_demand.forecast(1) == 0);
}

TEST_CASE("forecast: choose_model uses SES or Holt for smooth and erratic series, Croston or SBA for the others") {
  const ModelChoice flat = choose_model(V(30, 5.0));
  CHECK(flat.profile.series_class == SeriesClass::smooth);
  CHECK(flat.model.params().method == Method::ses);  // a perfect fit: the fewer parameters win
  CHECK(flat.model.params().alpha == kSesAlphas[0]);
  CHECK(flat.model.forecast(1) == 5);

  V trend;
  for (int i = 0; i < 60; ++i) trend.push_back(10 + i + (i % 3));  // a clear upward trend
  const ModelChoice rising = choose_model(trend);
  CHECK(rising.profile.series_class == SeriesClass::smooth);
  CHECK(rising.model.params().method == Method::holt);
  CHECK(rising.model.forecast(7) > rising.model.forecast(1));

  const ModelChoice alt = choose_model(alternating(16));
  CHECK(alt.profile.series_class == SeriesClass::intermittent);
  // Every demand is 2 after 2 days: Croston forecasts exactly the mean 1, SBA less; Croston wins.
  CHECK(alt.model.params().method == Method::croston);
  CHECK(alt.model.forecast(1) == 1);

  const ModelChoice lumpy = choose_model(V{0, 0, 1, 0, 0, 20, 0, 0, 2, 0, 0, 15, 0, 0, 1});
  CHECK(lumpy.profile.series_class == SeriesClass::lumpy);
  const Method m = lumpy.model.params().method;
  CHECK((m == Method::croston || m == Method::sba));
}

TEST_CASE("forecast: backtest WAPE and MASE on a series whose errors are known; the naive MASE is 1 when its "
          "errors equal its training errors") {
  // Training: days 0..15; Croston forecasts 1 every day, the naive forecast is always 2 off.
  const std::optional<SeriesAccuracy> a = backtest(alternating(20), {.backtest_days = 4, .horizon_days = 1});
  REQUIRE(a);
  CHECK(a->series_class == SeriesClass::intermittent);
  CHECK(a->method == Method::croston);
  CHECK(a->points == 4);
  CHECK(a->actual_units == 4);
  CHECK(a->abs_error_units == 4);
  CHECK(a->naive_abs_error_units == 8);
  CHECK(a->scale_units == 2);
  CHECK(*a->mase == 0.5);
  CHECK(*a->naive_mase == 1.0);

  // Two days ahead the naive forecast (the day before the origin) hits every time: period 2.
  const std::optional<SeriesAccuracy> h2 = backtest(alternating(20), {.backtest_days = 4, .horizon_days = 2});
  REQUIRE(h2);
  CHECK(h2->points == 3);  // origins 16, 17, 18 forecast days 17, 18, 19
  CHECK(h2->actual_units == 4);
  CHECK(h2->abs_error_units == 3);
  CHECK(*h2->mase == 0.5);  // 1 off per point, over the scale 2
  CHECK(*h2->naive_mase == 0);

  const AccuracyReport r = summarise_accuracy(std::vector<SeriesAccuracy>{*a, *h2});
  const ClassAccuracy& c = r.classes[static_cast<std::size_t>(SeriesClass::intermittent)];
  CHECK(c.series == 2);
  CHECK(*c.wape == doctest::Approx(7.0 / 8));      // pooled: (4 + 3) / (4 + 4)
  CHECK(*c.mase == 0.5);
  CHECK(*c.naive_mase == 0.5);  // the mean of the series' 1 and 0 (pooling would give 8 / 7 / 2)
  CHECK(*c.naive_wape == doctest::Approx(8.0 / 8));
  CHECK(r.all.series == 2);
  CHECK_FALSE(r.classes[static_cast<std::size_t>(SeriesClass::smooth)].wape);
}

TEST_CASE("forecast: backtest edge cases: too short, a constant training part, no sales at all") {
  CHECK_FALSE(backtest(V(kTrainDaysMin + 27, 1.0), {.backtest_days = 28, .horizon_days = 1}));
  CHECK(backtest(V(kTrainDaysMin + 28, 1.0), {.backtest_days = 28, .horizon_days = 1}));
  CHECK_FALSE(backtest(V(100, 1.0), {.backtest_days = 5, .horizon_days = 6}));

  // Constant training part: the scale is 0, so MASE is undefined; WAPE is still defined.
  const auto flat = backtest(V(40, 3.0), {.backtest_days = 10, .horizon_days = 1});
  REQUIRE(flat);
  CHECK_FALSE(flat->mase);
  CHECK(flat->abs_error_units == 0);

  const auto none = backtest(V(40, 0.0), {.backtest_days = 10, .horizon_days = 1});
  REQUIRE(none);
  CHECK(none->series_class == SeriesClass::no_demand);
  const AccuracyReport r = summarise_accuracy(std::vector<SeriesAccuracy>{*none});
  CHECK(r.classes[static_cast<std::size_t>(SeriesClass::no_demand)].series == 1);
  CHECK_FALSE(r.classes[static_cast<std::size_t>(SeriesClass::no_demand)].wape);
  CHECK_FALSE(r.classes[static_cast<std::size_t>(SeriesClass::no_demand)].mase);
}

TEST_CASE("forecast: normal_quantile gives the usual z values") {
  CHECK(normal_quantile(0.5) == doctest::Approx(0).epsilon(1e-12));
  CHECK(normal_quantile(0.95) == doctest::Approx(1.6448536269514722).epsilon(1e-12));
  CHECK(normal_quantile(0.99) == doctest::Approx(2.3263478740408408).epsilon(1e-12));
  CHECK(normal_quantile(0.01) == doctest::Approx(-2.3263478740408408).epsilon(1e-12));
  CHECK(normal_quantile(0.9999) == doctest::Approx(3.7190164854556804).epsilon(1e-12));
}

TEST_CASE("forecast: production = forecast over the lead time + safety - (on hand + in transit) + backorders, "
          "floored at 0") {
  const std::vector<std::int64_t> five(30, 5);
  const std::vector<DemandSeries> series{
      {SkuId{1}, "East", Day{20454}, five},
      {SkuId{1}, "West", Day{20454}, five},
      {SkuId{2}, "East", Day{20454}, five},
      {SkuId{3}, "East", Day{20454}, five},  // sold, never defined: not planned
  };
  const std::vector<SkuSupply> supply{
      {SkuId{1}, 10, Quantity{20}, Quantity{5}, Quantity{7}},
      {SkuId{2}, 10, Quantity{100}, Quantity{0}, Quantity{0}},
      {SkuId{4}, 3, Quantity{1}, Quantity{0}, Quantity{9}},  // defined, never sold: backorders only
  };
  auto r = forecast_and_plan(series, supply, {});
  REQUIRE_MESSAGE(r.is_ok(), r.status().message());
  const ForecastReport& f = r.value();
  REQUIRE(f.plan.size() == 3);
  CHECK(f.skus_without_supply == 1);
  // Constant series: SES forecasts 5 a day with no error, so no safety stock.
  CHECK(f.plan[0].sku == SkuId{1});
  CHECK(f.plan[0].regions == 2);
  CHECK(f.plan[0].forecast_units == 100);  // 2 regions x 5 a day x 10 days
  CHECK(f.plan[0].safety_units == 0);
  CHECK(f.plan[0].production_units == Quantity{100 - 25 + 7});
  CHECK(f.plan[1].sku == SkuId{4});
  CHECK(f.plan[1].production_units == Quantity{9 - 1});
  CHECK(f.plan[2].sku == SkuId{2});
  CHECK(f.plan[2].production_units == Quantity{0});  // 50 - 100: floored
  CHECK(f.series.size() == 4);
  CHECK(f.series[3].lead_time_units == 0);  // sku 3: no lead time

  // Safety stock: z x sigma x sqrt(L), summed over the regions.
  const std::vector<DemandSeries> varied{{SkuId{1}, "East", Day{0}, noisy(1, 90, 5, 9)},
                                         {SkuId{1}, "West", Day{0}, noisy(2, 90, 5, 9)}};
  auto v = forecast_and_plan(varied, std::vector<SkuSupply>{{SkuId{1}, 16, Quantity{0}, Quantity{0}, Quantity{0}}},
                             {.service_level = 0.99, .backtest = {}});
  REQUIRE(v.is_ok());
  const ForecastReport& g = v.value();
  const double sigma = g.series[0].sigma_units + g.series[1].sigma_units;
  CHECK(sigma > 0);
  CHECK(g.plan[0].safety_units == doctest::Approx(normal_quantile(0.99) * sigma * 4));
  CHECK(g.plan[0].forecast_units == doctest::Approx(g.series[0].lead_time_units + g.series[1].lead_time_units));
  CHECK(g.plan[0].production_units.value == static_cast<std::int64_t>(std::ceil(g.plan[0].forecast_units + g.plan[0].safety_units)));
}

TEST_CASE("forecast: bad input is an error naming the field") {
  const std::vector<DemandSeries> negative{{SkuId{1}, "East", Day{0}, {1, -2, 3}}};
  auto r = forecast_and_plan(negative, {}, {});
  REQUIRE_FALSE(r.is_ok());
  CHECK(r.status().message() == "series: sku 1 region East: units_per_day[1] (day 1) must be >= 0, got -2");

  const std::vector<DemandSeries> twice{{SkuId{1}, "East", Day{0}, {1}}, {SkuId{1}, "East", Day{0}, {2}}};
  CHECK(forecast_and_plan(twice, {}, {}).status().message() == "series: sku 1 region East given twice");

  const std::vector<SkuSupply> lead{{SkuId{1}, 400, {}, {}, {}}};
  CHECK(forecast_and_plan({}, lead, {}).status().message() == "supply: sku 1: lead_time_days must be in [0, 365], got 400");
  const std::vector<SkuSupply> stock{{SkuId{1}, 4, Quantity{-1}, {}, {}}};
  CHECK(forecast_and_plan({}, stock, {}).status().message() == "supply: sku 1: on_hand must be >= 0, got -1");
  CHECK_FALSE(forecast_and_plan({}, {}, {.service_level = 1.0, .backtest = {}}).is_ok());
  CHECK_FALSE(forecast_and_plan({}, {}, {.service_level = 0.9, .backtest = {.backtest_days = 7, .horizon_days = 8}}).is_ok());
}

TEST_CASE("forecast: the same series in any order give bit-identical results") {
  std::vector<DemandSeries> series;
  std::vector<SkuSupply> supply;
  for (std::uint64_t sku = 1; sku <= 40; ++sku) {
    for (const char* region : {"East", "North", "South"}) {
      series.push_back({SkuId{sku}, region, Day{20454}, noisy(sku * 7 + region[0], 120, 1 + static_cast<int>(sku % 6), 1 + static_cast<int>(sku % 11) * 3)});
    }
    supply.push_back({SkuId{sku}, static_cast<int>(sku % 45), Quantity{static_cast<std::int64_t>(sku * 13 % 200)},
                      Quantity{static_cast<std::int64_t>(sku % 7)}, Quantity{static_cast<std::int64_t>(sku % 5)}});
  }
  auto a = forecast_and_plan(series, supply, {});
  std::reverse(series.begin(), series.end());
  std::rotate(supply.begin(), supply.begin() + 17, supply.end());
  auto b = forecast_and_plan(series, supply, {});
  REQUIRE(a.is_ok());
  REQUIRE(b.is_ok());
  const ForecastReport& x = a.value();
  const ForecastReport& y = b.value();
  REQUIRE(x.series.size() == y.series.size());
  for (std::size_t i = 0; i < x.series.size(); ++i) {
    CHECK(x.series[i].sku == y.series[i].sku);
    CHECK(x.series[i].region == y.series[i].region);
    CHECK(std::memcmp(&x.series[i].lead_time_units, &y.series[i].lead_time_units, sizeof(double)) == 0);
    CHECK(std::memcmp(&x.series[i].sigma_units, &y.series[i].sigma_units, sizeof(double)) == 0);
  }
  REQUIRE(x.plan.size() == y.plan.size());
  for (std::size_t i = 0; i < x.plan.size(); ++i) {
    CHECK(x.plan[i].sku == y.plan[i].sku);
    CHECK(x.plan[i].production_units == y.plan[i].production_units);
    CHECK(std::memcmp(&x.plan[i].safety_units, &y.plan[i].safety_units, sizeof(double)) == 0);
  }
  for (std::size_t c = 0; c < x.accuracy.classes.size(); ++c) {
    CHECK(x.accuracy.classes[c].series == y.accuracy.classes[c].series);
    CHECK(x.accuracy.classes[c].wape == y.accuracy.classes[c].wape);
    CHECK(x.accuracy.classes[c].mase == y.accuracy.classes[c].mase);
  }
  // The mix covers several classes.
  std::size_t classes_seen = 0;
  for (const ClassAccuracy& c : x.accuracy.classes) classes_seen += c.series > 0;
  CHECK(classes_seen >= 3);
}

}  // namespace qudao
