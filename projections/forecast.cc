// Demand forecast and production plan: see forecast.h for the formulas and their sources.
#include "projections/forecast.h"

#include <fmt/format.h>

#include <algorithm>
#include <cassert>
#include <cmath>
#include <map>
#include <numeric>
#include <utility>

namespace qudao {

const char* series_class_name(SeriesClass c) {
  switch (c) {
    case SeriesClass::smooth: return "smooth";
    case SeriesClass::erratic: return "erratic";
    case SeriesClass::intermittent: return "intermittent";
    case SeriesClass::lumpy: return "lumpy";
    case SeriesClass::no_demand: return "no_demand";
  }
  return "?";
}

const char* method_name(Method m) {
  switch (m) {
    case Method::zero: return "zero";
    case Method::ses: return "ses";
    case Method::holt: return "holt";
    case Method::croston: return "croston";
    case Method::sba: return "sba";
  }
  return "?";
}

DemandProfile classify(std::span<const double> y) {
  DemandProfile p;
  double sum = 0;
  for (double v : y) {
    if (v > 0) ++p.demand_days, sum += v;
  }
  if (p.demand_days == 0) return p;
  const double d = static_cast<double>(p.demand_days);
  const double mean = sum / d;
  double squares = 0;
  for (double v : y) {
    if (v > 0) squares += (v - mean) * (v - mean);
  }
  p.adi = static_cast<double>(y.size()) / d;
  p.cv2 = squares / d / (mean * mean);
  const bool frequent = p.adi < kAdiCutoff, steady = p.cv2 < kCv2Cutoff;
  p.series_class = frequent ? (steady ? SeriesClass::smooth : SeriesClass::erratic)
                            : (steady ? SeriesClass::intermittent : SeriesClass::lumpy);
  return p;
}

namespace {

bool is_smoothing(Method m) { return m == Method::ses || m == Method::holt; }
bool is_croston(Method m) { return m == Method::croston || m == Method::sba; }

// Parameters the information criterion charges for (see forecast.h).
int parameter_count(Method m) {
  switch (m) {
    case Method::ses: return 2;
    case Method::holt: return 4;
    case Method::croston:
    case Method::sba: return 3;  // α, z_0, p_0
    case Method::zero: return 0;
  }
  return 0;
}

}  // namespace

FittedModel FittedModel::fit(std::span<const double> y, const ModelParams& params) {
  FittedModel m;
  m.params_ = params;
  if (is_smoothing(params.method)) {
    if (y.empty()) return m;
    const std::size_t k = std::min<std::size_t>(y.size(), kLevelInitDays);
    m.level_ = std::accumulate(y.begin(), y.begin() + static_cast<std::ptrdiff_t>(k), 0.0) / static_cast<double>(k);
    m.days_ = 1;
    for (std::size_t t = 1; t < y.size(); ++t) m.absorb(y[t]);
    return m;
  }
  for (double v : y) m.absorb(v);
  return m;
}

void FittedModel::absorb(double y) {
  const Method method = params_.method;
  if (is_smoothing(method)) {
    if (days_ == 0) {
      level_ = y;  // a model fitted to nothing starts from its first day
    } else {
      const double f = level_ + params_.phi * trend_;
      const double e = y - f;
      sse_ += e * e;
      ++errors_;
      const double level = f + params_.alpha * e;
      if (method == Method::holt) trend_ = params_.beta * (level - level_) + (1 - params_.beta) * params_.phi * trend_;
      level_ = level;
    }
  } else if (is_croston(method)) {
    if (started_) {
      const double e = y - forecast(1);
      sse_ += e * e;
      ++errors_;
    }
    ++since_demand_;
    if (y > 0) {
      if (!started_) {
        size_ = y;
        interval_ = static_cast<double>(since_demand_);
        started_ = true;
      } else {
        size_ += params_.alpha * (y - size_);
        interval_ += params_.alpha * (static_cast<double>(since_demand_) - interval_);
      }
      since_demand_ = 0;
    }
  } else {
    const double e = y;  // Method::zero forecasts 0
    if (days_ > 0) sse_ += e * e, ++errors_;
  }
  ++days_;
}

double FittedModel::forecast(int days_ahead) const {
  assert(days_ahead >= 1);
  switch (params_.method) {
    case Method::zero: return 0;
    case Method::ses: return std::max(0.0, level_);
    case Method::holt: {
      double damping = 0, power = 1;
      for (int i = 0; i < days_ahead; ++i) power *= params_.phi, damping += power;
      return std::max(0.0, level_ + damping * trend_);
    }
    case Method::croston:
    case Method::sba: {
      if (!started_) return 0;
      const double rate = size_ / interval_;
      return params_.method == Method::sba ? (1 - params_.alpha / 2) * rate : rate;
    }
  }
  return 0;
}

double FittedModel::forecast_total(int days) const {
  if (params_.method != Method::holt) return days <= 0 ? 0 : forecast(1) * days;
  double total = 0, damping = 0, power = 1;
  for (int h = 1; h <= days; ++h) {
    power *= params_.phi;
    damping += power;
    total += std::max(0.0, level_ + damping * trend_);
  }
  return total;
}

double FittedModel::rmse() const { return errors_ == 0 ? 0 : std::sqrt(sse_ / static_cast<double>(errors_)); }

double FittedModel::aic() const {
  if (errors_ == 0) return 2.0 * parameter_count(params_.method);
  // A perfect fit (SSE = 0) would give -inf; the floor keeps comparisons ordinary.
  constexpr double kMeanSquareFloor = 1e-12;
  const double m = static_cast<double>(errors_);
  return m * std::log(std::max(sse_ / m, kMeanSquareFloor)) + 2.0 * parameter_count(params_.method);
}

ModelChoice choose_model(std::span<const double> y) {
  ModelChoice c{classify(y), FittedModel::fit(y, ModelParams{})};
  switch (c.profile.series_class) {
    case SeriesClass::no_demand: break;
    case SeriesClass::smooth:
    case SeriesClass::erratic: {
      bool first = true;
      auto consider = [&](const ModelParams& p) {
        FittedModel m = FittedModel::fit(y, p);
        if (first || m.aic() < c.model.aic()) c.model = std::move(m), first = false;
      };
      for (double a : kSesAlphas) consider({Method::ses, a, 0, 1});
      for (double a : kHoltAlphas)
        for (double b : kHoltBetas)
          for (double phi : kHoltPhis) consider({Method::holt, a, b, phi});
      break;
    }
    case SeriesClass::intermittent:
    case SeriesClass::lumpy: {
      bool first = true;
      for (double a : kCrostonAlphas) {
        for (Method method : {Method::sba, Method::croston}) {
          FittedModel m = FittedModel::fit(y, {method, a, 0, 1});
          if (first || m.sse() < c.model.sse()) c.model = std::move(m), first = false;
        }
      }
      break;
    }
  }
  return c;
}

std::optional<SeriesAccuracy> backtest(std::span<const double> y, const BacktestOptions& o) {
  const std::ptrdiff_t n = static_cast<std::ptrdiff_t>(y.size());
  const std::ptrdiff_t train = n - o.backtest_days;
  if (o.backtest_days < 1 || o.horizon_days < 1 || o.horizon_days > o.backtest_days || train < kTrainDaysMin) {
    return std::nullopt;
  }
  const std::span<const double> training = y.first(static_cast<std::size_t>(train));
  ModelChoice choice = choose_model(training);
  SeriesAccuracy a;
  a.series_class = choice.profile.series_class;
  a.method = choice.model.params().method;
  for (std::ptrdiff_t t = 1; t < train; ++t) a.scale_units += std::abs(y[t] - y[t - 1]);
  a.scale_units /= static_cast<double>(train - 1);

  const int h = o.horizon_days;
  for (std::ptrdiff_t origin = train; origin + h <= n; ++origin) {
    const double actual = y[origin + h - 1];
    a.actual_units += actual;
    a.abs_error_units += std::abs(actual - choice.model.forecast(h));
    a.naive_abs_error_units += std::abs(actual - y[origin - 1]);
    ++a.points;
    choice.model.absorb(y[origin]);
  }
  if (a.scale_units > 0) {
    const double points = static_cast<double>(a.points);
    a.mase = a.abs_error_units / points / a.scale_units;
    a.naive_mase = a.naive_abs_error_units / points / a.scale_units;
  }
  return a;
}

namespace {

struct Pool {
  std::size_t series = 0, mase_series = 0;
  double actual = 0, abs_error = 0, naive_abs_error = 0, mase = 0, naive_mase = 0;

  void add(const SeriesAccuracy& a) {
    ++series;
    actual += a.actual_units;
    abs_error += a.abs_error_units;
    naive_abs_error += a.naive_abs_error_units;
    if (a.mase) ++mase_series, mase += *a.mase, naive_mase += *a.naive_mase;
  }
  ClassAccuracy result(SeriesClass c) const {
    ClassAccuracy r{c, series, mase_series, {}, {}, {}, {}};
    if (actual > 0) r.wape = abs_error / actual, r.naive_wape = naive_abs_error / actual;
    if (mase_series > 0) {
      r.mase = mase / static_cast<double>(mase_series);
      r.naive_mase = naive_mase / static_cast<double>(mase_series);
    }
    return r;
  }
};

}  // namespace

AccuracyReport summarise_accuracy(std::span<const SeriesAccuracy> series) {
  std::vector<Pool> pools(std::size(kSeriesClasses));
  Pool all;
  for (const SeriesAccuracy& a : series) {
    pools[static_cast<std::size_t>(a.series_class)].add(a);
    all.add(a);
  }
  AccuracyReport r;
  for (SeriesClass c : kSeriesClasses) r.classes.push_back(pools[static_cast<std::size_t>(c)].result(c));
  r.all = all.result(SeriesClass::no_demand);
  return r;
}

double normal_quantile(double p) {
  assert(p > 0 && p < 1);
  static constexpr double a[] = {-3.969683028665376e+01, 2.209460984245205e+02, -2.759285104469687e+02,
                                 1.383577518672690e+02,  -3.066479806614716e+01, 2.506628277459239e+00};
  static constexpr double b[] = {-5.447609879822406e+01, 1.615858368580409e+02, -1.556989798598866e+02,
                                 6.680131188771972e+01,  -1.328068155288572e+01};
  static constexpr double c[] = {-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e+00,
                                 -2.549732539343734e+00, 4.374664141464968e+00,  2.938163982698783e+00};
  static constexpr double d[] = {7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e+00,
                                 3.754408661907416e+00};
  constexpr double kTail = 0.02425;
  auto tail = [&](double q) {
    return (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
           ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1);
  };
  double x;
  if (p < kTail) {
    x = tail(std::sqrt(-2 * std::log(p)));
  } else if (p > 1 - kTail) {
    x = -tail(std::sqrt(-2 * std::log(1 - p)));
  } else {
    const double q = p - 0.5, r = q * q;
    x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
        (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1);
  }
  // One Halley step on Φ(x) - p brings the approximation's 1e-9 to machine precision.
  const double e = 0.5 * std::erfc(-x / std::sqrt(2.0)) - p;
  const double u = e * std::sqrt(2 * M_PI) * std::exp(x * x / 2);
  return x - u / (1 + x * u / 2);
}

Result<ForecastReport> forecast_and_plan(std::span<const DemandSeries> series, std::span<const SkuSupply> supply,
                                         const ForecastOptions& o) {
  if (!(o.service_level >= kServiceLevelMin && o.service_level <= kServiceLevelMax)) {
    return Status::error(fmt::format("service_level: must be in [{}, {}], got {}", kServiceLevelMin, kServiceLevelMax,
                                     o.service_level));
  }
  if (o.backtest.backtest_days < 1) {
    return Status::error(fmt::format("backtest_days: must be >= 1, got {}", o.backtest.backtest_days));
  }
  if (o.backtest.horizon_days < 1 || o.backtest.horizon_days > o.backtest.backtest_days) {
    return Status::error(fmt::format("horizon_days: must be in [1, backtest_days = {}], got {}",
                                     o.backtest.backtest_days, o.backtest.horizon_days));
  }
  if (o.forecast_days < 0 || o.forecast_days > kForecastDaysMax) {
    return Status::error(fmt::format("forecast_days: must be in [0, {}], got {}", kForecastDaysMax, o.forecast_days));
  }
  std::map<SkuId, const SkuSupply*> by_sku;
  for (const SkuSupply& s : supply) {
    if (!by_sku.emplace(s.sku, &s).second) return Status::error(fmt::format("supply: sku {} given twice", s.sku.value));
    if (s.lead_time_days < 0 || s.lead_time_days > kLeadTimeDaysMax) {
      return Status::error(fmt::format("supply: sku {}: lead_time_days must be in [0, {}], got {}", s.sku.value,
                                       kLeadTimeDaysMax, s.lead_time_days));
    }
    for (auto [name, q] : {std::pair{"on_hand", s.on_hand}, std::pair{"in_transit", s.in_transit},
                           std::pair{"open_backorders", s.open_backorders}}) {
      if (q.value < 0) {
        return Status::error(fmt::format("supply: sku {}: {} must be >= 0, got {}", s.sku.value, name, q.value));
      }
    }
  }
  std::vector<const DemandSeries*> ordered;
  ordered.reserve(series.size());
  for (const DemandSeries& s : series) ordered.push_back(&s);
  auto key = [](const DemandSeries* s) { return std::tie(s->sku, s->region); };
  std::sort(ordered.begin(), ordered.end(), [&](auto* x, auto* y) { return key(x) < key(y); });
  for (std::size_t i = 1; i < ordered.size(); ++i) {
    if (key(ordered[i - 1]) == key(ordered[i])) {
      return Status::error(fmt::format("series: sku {} region {} given twice", ordered[i]->sku.value, ordered[i]->region));
    }
  }

  ForecastReport r;
  r.z = normal_quantile(o.service_level);
  std::vector<SkuId> unsupplied;
  std::vector<double> y;
  std::vector<SeriesAccuracy> accuracies;
  for (const DemandSeries* s : ordered) {
    y.clear();
    for (std::size_t day = 0; day < s->units_per_day.size(); ++day) {
      const std::int64_t v = s->units_per_day[day];
      if (v < 0) {
        return Status::error(fmt::format("series: sku {} region {}: units_per_day[{}] (day {}) must be >= 0, got {}",
                                         s->sku.value, s->region, day, s->first_day.value + static_cast<std::int64_t>(day),
                                         v));
      }
      y.push_back(static_cast<double>(v));
    }
    const ModelChoice choice = choose_model(y);
    SeriesForecast f{s->sku, s->region, choice.profile, choice.model.params(), choice.model.forecast(1), 0,
                     choice.model.rmse(), backtest(y, o.backtest), {}};
    for (int h = 1; h <= o.forecast_days; ++h) f.next_days_units.push_back(choice.model.forecast(h));
    if (f.accuracy) accuracies.push_back(*f.accuracy);
    if (auto row = by_sku.find(s->sku); row != by_sku.end()) {
      f.lead_time_units = choice.model.forecast_total(row->second->lead_time_days);
    } else if (unsupplied.empty() || unsupplied.back() != s->sku) {
      unsupplied.push_back(s->sku);  // `ordered` is by sku: one entry each
    }
    r.series.push_back(std::move(f));
  }
  r.skus_without_supply = unsupplied.size();
  r.accuracy = summarise_accuracy(accuracies);
  r.plan = production_plan(r.series, supply, r.z);
  return r;
}

std::map<SeriesClass, std::map<Method, std::size_t>> methods_by_class(std::span<const SeriesForecast> series) {
  std::map<SeriesClass, std::map<Method, std::size_t>> m;
  for (const SeriesForecast& s : series) ++m[s.profile.series_class][s.params.method];
  return m;
}

std::vector<PlanRow> production_plan(std::span<const SeriesForecast> series, std::span<const SkuSupply> supply, double z) {
  std::map<SkuId, PlanRow> rows;
  for (const SkuSupply& s : supply) {
    rows[s.sku] = PlanRow{s.sku, s.lead_time_days, 0, 0, 0, s.on_hand, s.in_transit, s.open_backorders, Quantity{0}};
  }
  for (const SeriesForecast& f : series) {
    auto row = rows.find(f.sku);
    if (row == rows.end()) continue;
    ++row->second.regions;
    row->second.forecast_units += f.lead_time_units;
    row->second.safety_units += z * f.sigma_units * std::sqrt(static_cast<double>(row->second.lead_time_days));
  }
  std::vector<PlanRow> plan;
  for (auto& [sku, row] : rows) {
    const double need = row.forecast_units + row.safety_units -
                        static_cast<double>(row.on_hand.value + row.in_transit.value) +
                        static_cast<double>(row.open_backorders.value);
    row.production_units = Quantity{need > 0 ? static_cast<std::int64_t>(std::ceil(need)) : 0};
    plan.push_back(row);
  }
  std::stable_sort(plan.begin(), plan.end(), [](const PlanRow& a, const PlanRow& b) {
    return a.production_units.value > b.production_units.value;
  });
  return plan;
}

}  // namespace qudao
