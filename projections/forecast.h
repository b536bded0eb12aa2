// Demand forecast and production plan: daily sell-through series per sku × region in, a forecast per
// series, its accuracy in a rolling backtest, and how much of each sku to produce out.
//
// Pure and deterministic: no clock, no randomness, no hash-map iteration; every parameter comes
// from a fixed grid searched in a fixed order (ties keep the earlier candidate), and results are in
// input order or sorted by key. The same input gives bit-identical output. The functions keep no
// state, so any number of threads may call them; a FittedModel is one thread's at a time.
//
// Series. y[0..n) are units sold per day (scan-outs: what consumers bought), one value per calendar
// day from `first_day`, zeros included.
//
// Classification (Syntetos, Boylan & Croston 2005, "On the categorization of demand patterns",
// JORS 56(5)):
//   ADI = n / d        d = days with y > 0: the mean interval between demands, the series' whole
//                      length counted (a sku that stopped selling has a long last interval)
//   CV² = var(s) / mean(s)²   over the d non-zero sizes s (population variance); 0 when d = 1
//   smooth ADI < 1.32, CV² < 0.49 · erratic ADI < 1.32, CV² >= 0.49
//   intermittent ADI >= 1.32, CV² < 0.49 · lumpy ADI >= 1.32, CV² >= 0.49
//   no_demand: d = 0 (empty or all zeros): forecast 0 with σ = 0; in a backtest its MASE is
//   undefined (scale 0), and so is its WAPE unless the test days sold. A very short series is classified all the same (one demand day
//   out of one: smooth); the backtest skips series shorter than it needs (see below).
//
// Methods (one-step-ahead forecasts f_t for y_t; in-sample errors e_t = y_t - f_t):
//   SES   l_0 = mean(y_0..y_{k-1}), k = min(n, 7)   f_t = l_{t-1}   l_t = l_{t-1} + α e_t
//   Holt  (damped trend, Gardner & McKenzie 1985) l_0 as SES, b_0 = 0
//         f_t = l_{t-1} + φ b_{t-1}   l_t = f_t + α e_t   b_t = β (l_t - l_{t-1}) + (1-β) φ b_{t-1}
//         h days ahead: l + (φ + φ² + … + φ^h) b. Damped because lead times reach 45 days, over
//         which an undamped daily trend fitted to noise runs away.
//   Croston (1972) on the demand days only: z_0 = first non-zero size, p_0 = its day index + 1;
//         at a demand y_t > 0, q days after the previous one: z += α (y_t - z), p += α (q - p).
//         f = z / p.  SBA (Syntetos & Boylan 2005): f = (1 - α/2) z / p.
//   Errors are counted from t = 1 (SES, Holt) or from the day after the first demand (Croston, SBA).
//   Smooth and erratic series: SES over α ∈ kSesAlphas, Holt over kHoltAlphas × kHoltBetas ×
//   kHoltPhis; each scored by AIC = m ln(SSE/m) + 2k (k = 2 for SES: α, l_0; 4 for Holt: α, β, φ,
//   l_0; m errors), the lowest wins, SES on a tie. Intermittent and lumpy: Croston and SBA over
//   α ∈ kCrostonAlphas, lowest in-sample SSE wins (same parameter count), SBA first on a tie.
//   Daily forecasts are floored at 0.
//
// Backtest (rolling origin, fixed parameters; Tashman 2000). Train = y[0..n-B) with B =
// backtest_days. The class, method and parameters are chosen on the training part only; then for
// each origin o = n-B .. n-h the model holds y[0..o) and forecasts day o+h-1 (h = horizon_days),
// and absorbs y_o before the next origin. The naive forecast for the same day is y_{o-1}.
//   WAPE = Σ|y - f| / Σ y                  (undefined when Σ y = 0)
//   MASE = mean|y - f| / scale, scale = mean_{t=1..n-B-1} |y_t - y_{t-1}|, the naive forecast's
//          in-sample one-step MAE on the training part (Hyndman & Koehler 2006); undefined when the
//          scale is 0 (a constant training part). So the naive forecast's MASE is 1 exactly when its
//          backtest error equals its training error; < 1 means better than naive.
//   A series is backtested only if it has n-B >= kTrainDaysMin training days and B >= h.
//   Per class: WAPE pools the absolute errors and actuals of every backtested series of the class
//   (volume-weighted); MASE is the mean of the series' MASE over those where it is defined.
//
// Production plan, per sku with lead time L days (SkuDefined.production_lead_time_days):
//   forecast_units = Σ_regions Σ_{h=1..L} f(h)      the demand expected while a batch is made
//   safety_units   = Σ_regions z σ √L               σ = in-sample one-step RMSE of the series' model,
//                    z = Φ⁻¹(service level) (cycle service level, per region: regions do not pool
//                    stock, goods move only within a region's shard)
//   production_units = max(0, ⌈forecast + safety - (on_hand + in_transit) + open_backorders⌉)
// on_hand and in_transit are across the network (warehouses and stores); open backorders are units
// on paid orders not yet dispatched. The caller decides what those are (projections/demand.h builds
// them from the shards).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "engine/history.h"  // Day, day_of: the engine's UTC calendar days
#include "events/status.h"
#include "events/types.h"

namespace qudao {

// Syntetos–Boylan cut-offs.
inline constexpr double kAdiCutoff = 1.32;
inline constexpr double kCv2Cutoff = 0.49;
// Parameter grids, searched in this order.
inline constexpr double kSesAlphas[] = {0.05, 0.1, 0.2, 0.3, 0.5};
inline constexpr double kHoltAlphas[] = {0.05, 0.1, 0.2, 0.3, 0.5};
inline constexpr double kHoltBetas[] = {0.01, 0.05, 0.1};
inline constexpr double kHoltPhis[] = {0.9, 0.98};
inline constexpr double kCrostonAlphas[] = {0.05, 0.1, 0.2, 0.3};
inline constexpr int kLevelInitDays = 7;   // SES and Holt start from the first week's mean
inline constexpr int kTrainDaysMin = 14;   // fewer training days: the series is not backtested
inline constexpr int kLeadTimeDaysMax = 365;
inline constexpr double kServiceLevelMin = 0.5;
inline constexpr double kServiceLevelMax = 0.9999;

enum class SeriesClass : std::uint8_t { smooth, erratic, intermittent, lumpy, no_demand };
inline constexpr SeriesClass kSeriesClasses[] = {SeriesClass::smooth, SeriesClass::erratic, SeriesClass::intermittent,
                                                 SeriesClass::lumpy, SeriesClass::no_demand};
const char* series_class_name(SeriesClass c);

enum class Method : std::uint8_t { zero, ses, holt, croston, sba };
const char* method_name(Method m);

struct DemandProfile {
  double adi = 0;               // 0 when there is no demand
  double cv2 = 0;
  std::size_t demand_days = 0;  // days with y > 0
  SeriesClass series_class = SeriesClass::no_demand;
};

DemandProfile classify(std::span<const double> y);

struct ModelParams {
  Method method = Method::zero;
  double alpha = 0;
  double beta = 0;  // Holt
  double phi = 1;   // Holt: the damping factor; 1 = Holt's linear trend
};

// A model fitted to a series, holding its state after the last observation it has absorbed.
class FittedModel {
 public:
  // Runs the method with these parameters over y (see the header comment for each recursion).
  static FittedModel fit(std::span<const double> y, const ModelParams& params);

  const ModelParams& params() const { return params_; }
  // Forecast for the day `days_ahead` >= 1 after the last absorbed one, floored at 0.
  double forecast(int days_ahead) const;
  // Σ forecast(1..days): the demand over a lead time.
  double forecast_total(int days) const;
  // Absorbs one more day (the backtest rolls the origin forward with fixed parameters).
  void absorb(double y);

  double sse() const { return sse_; }
  std::size_t errors() const { return errors_; }  // m: in-sample one-step errors counted
  double rmse() const;                            // sqrt(SSE / m); 0 when m = 0
  double aic() const;                             // m ln(SSE/m) + 2k

 private:
  ModelParams params_;
  std::size_t days_ = 0;      // observations absorbed
  double level_ = 0;          // SES, Holt
  double trend_ = 0;          // Holt
  double size_ = 0;           // Croston, SBA: smoothed demand size z
  double interval_ = 0;       // Croston, SBA: smoothed interval p
  std::size_t since_demand_ = 0;  // Croston, SBA: days since the last demand
  bool started_ = false;      // Croston, SBA: seen a demand
  double sse_ = 0;
  std::size_t errors_ = 0;
};

struct ModelChoice {
  DemandProfile profile;
  FittedModel model;
};

// Classifies y and fits the method its class calls for over the fixed grids.
ModelChoice choose_model(std::span<const double> y);

struct BacktestOptions {
  int backtest_days = 28;
  int horizon_days = 1;
};

// The backtest of one series (all sums over its backtest points).
struct SeriesAccuracy {
  SeriesClass series_class = SeriesClass::no_demand;  // of the training part
  Method method = Method::zero;
  std::size_t points = 0;
  double actual_units = 0;           // Σ y
  double abs_error_units = 0;        // Σ |y - f|
  double naive_abs_error_units = 0;  // Σ |y - y_{o-1}|
  double scale_units = 0;            // the training part's naive one-step MAE
  std::optional<double> mase;        // none when scale_units = 0
  std::optional<double> naive_mase;
};

// Nothing when the series is too short for the options (see the header comment).
std::optional<SeriesAccuracy> backtest(std::span<const double> y, const BacktestOptions& options);

struct ClassAccuracy {
  SeriesClass series_class = SeriesClass::no_demand;
  std::size_t series = 0;       // backtested series of the class
  std::size_t mase_series = 0;  // those whose MASE is defined
  std::optional<double> wape, naive_wape, mase, naive_mase;
};

// One row per class in kSeriesClasses order (every class, also empty ones), then one for all.
struct AccuracyReport {
  std::vector<ClassAccuracy> classes;
  ClassAccuracy all;
};
AccuracyReport summarise_accuracy(std::span<const SeriesAccuracy> series);

// Φ⁻¹(p) for 0 < p < 1 (Acklam's rational approximation, one Halley step: |error| < 1e-12).
double normal_quantile(double p);

struct DemandSeries {
  SkuId sku;
  std::string region;
  Day first_day;
  std::vector<std::int64_t> units_per_day;  // >= 0
};

struct SkuSupply {
  SkuId sku;
  int lead_time_days = 0;  // 0..kLeadTimeDaysMax
  Quantity on_hand;        // across the network, >= 0
  Quantity in_transit;     // >= 0
  Quantity open_backorders;  // >= 0
};

inline constexpr int kForecastDaysMax = 90;  // daily forecasts kept per series, at most

struct ForecastOptions {
  double service_level = 0.95;  // kServiceLevelMin..kServiceLevelMax
  BacktestOptions backtest;
  int forecast_days = 0;        // 0..kForecastDaysMax: SeriesForecast::next_days_units kept
};

struct SeriesForecast {
  SkuId sku;
  std::string region;
  DemandProfile profile;
  ModelParams params;
  double daily_units = 0;      // forecast for the next day
  double lead_time_units = 0;  // over the sku's lead time (0 without a SkuSupply row)
  double sigma_units = 0;      // in-sample one-step RMSE
  std::optional<SeriesAccuracy> accuracy;
  std::vector<double> next_days_units;  // forecast(1..forecast_days): the days after the series' last
};

struct PlanRow {
  SkuId sku;
  int lead_time_days = 0;
  std::size_t regions = 0;  // series of the sku
  double forecast_units = 0;
  double safety_units = 0;
  Quantity on_hand, in_transit, open_backorders;
  Quantity production_units;
};

struct ForecastReport {
  std::vector<SeriesForecast> series;  // by (sku, region)
  AccuracyReport accuracy;
  double z = 0;                        // Φ⁻¹(service level)
  // One row per SkuSupply (a sku with sales but no SkuSupply row has no lead time: no row, and it
  // is counted here), by production_units descending, then sku.
  std::vector<PlanRow> plan;
  std::size_t skus_without_supply = 0;
};

// How many of `series` each class has, per method (the whole series' class and method).
std::map<SeriesClass, std::map<Method, std::size_t>> methods_by_class(std::span<const SeriesForecast> series);

// Bad input (a negative quantity, a lead time out of range, a series or sku twice, a service level
// out of range, backtest days < 1, a horizon outside 1..backtest days or forecast days out of range)
// is an error naming it.
Result<ForecastReport> forecast_and_plan(std::span<const DemandSeries> series, std::span<const SkuSupply> supply,
                                         const ForecastOptions& options);

// The plan part of forecast_and_plan() for another z (a service level asked for later, with the
// series already forecast): `series` as in ForecastReport::series (lead_time_units filled by the
// supply it was made with), `supply` checked as forecast_and_plan checks it. The same rows, in the
// same order, as forecast_and_plan() with that z.
std::vector<PlanRow> production_plan(std::span<const SeriesForecast> series, std::span<const SkuSupply> supply, double z);

}  // namespace qudao
