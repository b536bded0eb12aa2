// The forecast endpoints: see forecast_api.h for what they answer, from which state, and when.
#include "connectors/forecast_api.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <limits>
#include <map>

#include "connectors/api_common.h"

namespace qudao {
namespace {

using nlohmann::json;

json optional_number(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json class_accuracy_json(const ClassAccuracy& c, const std::string& name) {
  return json{{"class", name},
              {"series_backtested", c.series},
              {"series_with_mase", c.mase_series},
              {"wape", optional_number(c.wape)},
              {"mase", optional_number(c.mase)},
              {"naive_wape", optional_number(c.naive_wape)},
              {"naive_mase", optional_number(c.naive_mase)}};
}

json params_json(const ModelParams& p) {
  switch (p.method) {
    case Method::zero: return json::object();
    case Method::holt: return json{{"alpha", p.alpha}, {"beta", p.beta}, {"phi", p.phi}};
    case Method::ses:
    case Method::croston:
    case Method::sba: return json{{"alpha", p.alpha}};
  }
  return json::object();
}

json series_json(const SeriesForecast& f, int days) {
  json backtest = nullptr;
  if (f.accuracy) {
    const SeriesAccuracy& a = *f.accuracy;
    const bool sold = a.actual_units > 0;
    backtest = json{{"class", series_class_name(a.series_class)},
                    {"method", method_name(a.method)},
                    {"points", a.points},
                    {"actual_units", a.actual_units},
                    {"wape", sold ? json(a.abs_error_units / a.actual_units) : json(nullptr)},
                    {"mase", optional_number(a.mase)},
                    {"naive_wape", sold ? json(a.naive_abs_error_units / a.actual_units) : json(nullptr)},
                    {"naive_mase", optional_number(a.naive_mase)}};
  }
  const auto n = std::min<std::size_t>(static_cast<std::size_t>(days), f.next_days_units.size());
  return json{{"sku", f.sku.value},
              {"region", f.region},
              {"class", series_class_name(f.profile.series_class)},
              {"adi", f.profile.adi},
              {"cv2", f.profile.cv2},
              {"demand_days", f.profile.demand_days},
              {"method", method_name(f.params.method)},
              {"parameters", params_json(f.params)},
              {"daily_units", std::vector<double>(f.next_days_units.begin(), f.next_days_units.begin() + n)},
              {"sigma_units", f.sigma_units},
              {"backtest", backtest}};
}

// The filters /v1/forecast and /v1/forecast/accuracy share; the region checked against the scope.
struct SeriesFilter {
  std::optional<std::uint64_t> sku;
  std::optional<std::string> region;
  bool matches(const SeriesForecast& f, const RegionScope& scope) const {
    return scope.contains(f.region) && (!sku || f.sku.value == *sku) && (!region || f.region == *region);
  }
};

std::optional<HttpResponse> parse_filter(const HttpRequest& req, const ForecastComputation& c,
                                         const Principal& principal, SeriesFilter& f) {
  if (auto e = parse_param(req, "sku", f.sku)) return error(400, *e);
  if (auto it = req.query.find("region"); it != req.query.end()) {
    if (it->second.empty()) return error(400, "query parameter region: must not be empty");
    // Unknown and out of scope are one answer, so that region names cannot be probed.
    if (!principal.scope.contains(it->second) ||
        !std::binary_search(c.regions.begin(), c.regions.end(), it->second)) {
      return error(404, fmt::format("region {} not found", it->second));
    }
    f.region = it->second;
  }
  return std::nullopt;
}

json as_of_json(const ForecastComputation& c, std::chrono::milliseconds refresh) {
  json offsets = json::object();
  for (const auto& [p, next] : c.next_offsets) offsets[std::to_string(p)] = next;
  return json{{"offsets", offsets},
              {"first_day", c.input.series.empty() ? json(nullptr) : json(format_day(c.input.first_day))},
              {"last_day", c.input.series.empty() ? json(nullptr) : json(format_day(c.input.last_day))},
              {"refresh_interval_seconds", std::chrono::duration<double>(refresh).count()}};
}

json backtest_options_json(const ForecastOptions& o) {
  return json{{"backtest_days", o.backtest.backtest_days}, {"horizon_days", o.backtest.horizon_days}};
}

const ForecastOptions kServeOptions{.service_level = 0.95, .backtest = {}, .forecast_days = kForecastDaysMax};

HttpResponse forecast(const ForecastComputation& c, const HttpRequest& req, const Principal& principal,
                      std::chrono::milliseconds refresh) {
  SeriesFilter filter;
  if (auto bad = parse_filter(req, c, principal, filter)) return *bad;
  std::optional<int> days;
  if (auto e = parse_param(req, "days", days)) return error(400, *e);
  if (days && (*days < 1 || *days > kForecastDaysMax)) {
    return error(400, fmt::format("query parameter days: expected 1 to {}, got {}", kForecastDaysMax, *days));
  }
  std::size_t limit = 0;
  if (auto e = parse_limit(req, kForecastPageSeriesMax, kForecastPageDefault, limit)) return error(400, *e);
  // The cursor is the last series of the previous page: "sku:region"; the page starts after it.
  std::optional<std::pair<SkuId, std::string>> after;
  if (auto it = req.query.find("cursor"); it != req.query.end()) {
    const std::string& s = it->second;
    const auto colon = s.find(':');
    std::uint64_t sku = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + (colon == std::string::npos ? s.size() : colon), sku);
    if (colon == std::string::npos || ec != std::errc() || p != s.data() + colon) return bad_cursor(s);
    after = std::pair{SkuId{sku}, s.substr(colon + 1)};
  }
  const std::vector<SeriesForecast>& all = c.report.series;  // by (sku, region)
  auto it = all.begin();
  if (after) {
    it = std::upper_bound(all.begin(), all.end(), *after, [](const auto& key, const SeriesForecast& f) {
      return key < std::pair{f.sku, f.region};
    });
  }
  json rows = json::array();
  const SeriesForecast* last = nullptr;
  bool more = false;
  for (; it != all.end(); ++it) {
    if (!filter.matches(*it, principal.scope)) continue;
    if (rows.size() == limit) {
      more = true;
      break;
    }
    rows.push_back(series_json(*it, days.value_or(kForecastDaysDefault)));
    last = &*it;
  }
  json out{{"as_of", as_of_json(c, refresh)},
           {"first_forecast_day", format_day(Day{c.input.last_day.value + 1})},
           {"days", days.value_or(kForecastDaysDefault)},
           {"backtest", backtest_options_json(kServeOptions)},
           {"series", std::move(rows)},
           {"next_cursor", more ? json(fmt::format("{}:{}", last->sku.value, last->region)) : json(nullptr)}};
  if (c.input.series.empty()) out["first_forecast_day"] = nullptr;
  return json_response(200, out);
}

HttpResponse accuracy(const ForecastComputation& c, const HttpRequest& req, const Principal& principal,
                      std::chrono::milliseconds refresh) {
  SeriesFilter filter;
  if (auto bad = parse_filter(req, c, principal, filter)) return *bad;
  std::vector<SeriesForecast> in_scope;
  std::vector<SeriesAccuracy> backtested;
  for (const SeriesForecast& f : c.report.series) {
    if (!filter.matches(f, principal.scope)) continue;
    in_scope.push_back(f);
    if (f.accuracy) backtested.push_back(*f.accuracy);
  }
  return json_response(200, json{{"as_of", as_of_json(c, refresh)},
                                 {"backtest", backtest_options_json(kServeOptions)},
                                 {"series", in_scope.size()},
                                 {"series_not_backtested", in_scope.size() - backtested.size()},
                                 {"accuracy", accuracy_json(summarise_accuracy(backtested), in_scope)}});
}

HttpResponse production(const ForecastComputation& c, const HttpRequest& req, std::chrono::milliseconds refresh) {
  std::optional<std::uint64_t> sku;
  if (auto e = parse_param(req, "sku", sku)) return error(400, *e);
  double service_level = kServeOptions.service_level;
  if (auto it = req.query.find("service_level"); it != req.query.end()) {
    const std::string& s = it->second;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), service_level);
    if (ec != std::errc() || p != s.data() + s.size() || !(service_level >= kServiceLevelMin) ||
        !(service_level <= kServiceLevelMax)) {
      return error(400, fmt::format("query parameter service_level: expected a number from {} to {}, got \"{}\"",
                                    kServiceLevelMin, kServiceLevelMax, s));
    }
  }
  std::size_t limit = 0;
  if (auto e = parse_limit(req, kPlanPageRowsMax, kForecastPageDefault, limit)) return error(400, *e);
  std::optional<std::pair<std::int64_t, std::uint64_t>> after;  // (production units, sku) of the last row
  if (auto it = req.query.find("cursor"); it != req.query.end()) {
    std::pair<std::int64_t, std::uint64_t> c;
    if (!parse_pair(it->second, c.first, c.second)) return bad_cursor(it->second);
    after = c;
  }
  const double z = normal_quantile(service_level);
  const std::vector<PlanRow> plan =
      service_level == kServeOptions.service_level ? c.report.plan : production_plan(c.report.series, c.input.supply, z);
  json rows = json::array();
  std::int64_t total = 0;
  const PlanRow* last = nullptr;
  bool more = false;
  for (const PlanRow& r : plan) {  // by production units descending, then sku
    total += r.production_units.value;
    if (sku && r.sku.value != *sku) continue;
    if (after && std::pair{-r.production_units.value, r.sku.value} <= std::pair{-after->first, after->second}) continue;
    if (rows.size() == limit) {
      more = true;
      continue;
    }
    rows.push_back(plan_row_json(r));
    last = &r;
  }
  return json_response(
      200, json{{"as_of", as_of_json(c, refresh)},
                {"service_level", service_level},
                {"z", z},
                {"skus_planned", plan.size()},
                {"skus_without_lead_time", c.report.skus_without_supply},
                {"production_units_total", total},
                {"plan", std::move(rows)},
                {"next_cursor", more ? json(fmt::format("{}.{}", last->production_units.value, last->sku.value))
                                     : json(nullptr)}});
}

}  // namespace

json accuracy_json(const AccuracyReport& report, std::span<const SeriesForecast> series) {
  const auto methods = methods_by_class(series);
  json classes = json::array();
  for (const ClassAccuracy& c : report.classes) {
    json j = class_accuracy_json(c, series_class_name(c.series_class));
    std::size_t total = 0;
    json m = json::object();
    if (auto it = methods.find(c.series_class); it != methods.end()) {
      for (const auto& [method, n] : it->second) m[method_name(method)] = n, total += n;
    }
    j["series"] = total;
    j["methods"] = m;
    classes.push_back(j);
  }
  return json{{"classes", classes}, {"all", class_accuracy_json(report.all, "all")}};
}

json plan_row_json(const PlanRow& r) {
  return json{{"sku", r.sku.value},
              {"lead_time_days", r.lead_time_days},
              {"regions", r.regions},
              {"forecast_units", r.forecast_units},
              {"safety_units", r.safety_units},
              {"on_hand", r.on_hand.value},
              {"in_transit", r.in_transit.value},
              {"open_backorders", r.open_backorders.value},
              {"production_units", r.production_units.value}};
}

Result<ForecastComputation> compute_forecast(Store& store, const ForecastOptions& options) {
  const auto snapshot = store.snapshot();
  auto shards = store.load(kDedupWindowEventsDefault, snapshot.get());
  if (!shards.is_ok()) return shards.status();
  HistoryReader history = store.history_reader(snapshot.get());
  ForecastComputation c;
  DemandBuilder demand;
  std::vector<std::string> regions;
  for (const auto& [p, shard] : shards.value()) {
    c.next_offsets[p] = shard.next_offset().value;
    Status status = Status::ok();
    shard.for_each_location([&](LocationId id, const LocationInfo& info) {
      regions.push_back(info.region);
      if (!status.is_ok()) return;
      auto sales = history.sales(PartitionId{p}, id, Day{std::numeric_limits<std::int32_t>::min()},
                                 Day{std::numeric_limits<std::int32_t>::max() - 1});
      if (!sales.is_ok()) {
        status = sales.status();
        return;
      }
      for (const Sale& s : sales.value()) demand.add_sale(s.sku, info.region, s.day, s.qty);
    });
    if (!status.is_ok()) return status;
  }
  std::sort(regions.begin(), regions.end());
  regions.erase(std::unique(regions.begin(), regions.end()), regions.end());
  c.regions = std::move(regions);
  c.input = demand.build(shards.value());
  auto report = forecast_and_plan(c.input.series, c.input.supply, options);
  if (!report.is_ok()) return report.status();
  c.report = report.take();
  return c;
}

ForecastService::ForecastService(Store& store, const Pipeline& pipeline, ForecastServiceOptions options)
    : store_(store), pipeline_(pipeline), options_(options), worker_([this] { run(); }) {}

ForecastService::~ForecastService() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  worker_.join();
}

bool ForecastService::state_moved(const ForecastComputation& c) const {
  for (const PartitionStats& p : pipeline_.stats().partitions) {
    auto it = c.next_offsets.find(p.partition.value);
    const std::int64_t forecast = it == c.next_offsets.end() ? 0 : it->second;  // nothing committed there yet
    if (forecast != p.next_offset.value) return true;
  }
  return false;
}

void ForecastService::serve(const HttpRequest& req, const Principal& principal, HttpResponder respond) {
  std::shared_ptr<const Computed> current;
  {
    std::lock_guard lock(mutex_);
    const bool due = current_ && std::chrono::steady_clock::now() - current_->at >= options_.refresh_interval;
    if (current_ && current_->computation) {
      if (due && !computing_ && !wanted_ && state_moved(*current_->computation)) wanted_ = true, wake_.notify_one();
      current = current_;
    } else if (current_ && !due) {
      current = current_;  // the last attempt failed: its error until it may be retried
    } else {
      if (waiting_.size() >= kForecastWaitersMax) {
        return respond(error(503, "the forecast is being computed; try again shortly"));
      }
      waiting_.push_back(Waiter{req, principal, std::move(respond)});
      wanted_ = true;
      wake_.notify_one();
      return;
    }
  }
  respond(answer(*current, req, principal));
}

HttpResponse ForecastService::answer(const Computed& r, const HttpRequest& req, const Principal& principal) const {
  if (!r.computation) return error(500, r.error);
  const ForecastComputation& c = *r.computation;
  if (req.path == "/v1/forecast") return forecast(c, req, principal, options_.refresh_interval);
  if (req.path == "/v1/forecast/accuracy") return accuracy(c, req, principal, options_.refresh_interval);
  return production(c, req, options_.refresh_interval);
}

void ForecastService::run() {
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || wanted_; });
      if (stop_) return;
      wanted_ = false;
      computing_ = true;
    }
    const auto started = std::chrono::steady_clock::now();
    auto c = compute_forecast(store_, kServeOptions);
    auto done = std::make_shared<Computed>();
    done->at = std::chrono::steady_clock::now();
    if (c.is_ok()) {
      spdlog::info("forecast: {} series, {} skus planned, computed in {:.3f} s", c.value().report.series.size(),
                   c.value().report.plan.size(), std::chrono::duration<double>(done->at - started).count());
      done->computation = std::make_shared<const ForecastComputation>(c.take());
    } else {
      spdlog::error("forecast: {}", c.status().message());
      done->error = fmt::format("forecast: {}", c.status().message());
    }
    std::vector<Waiter> waiting;
    {
      std::lock_guard lock(mutex_);
      current_ = done;
      computing_ = false;
      waiting.swap(waiting_);
    }
    for (Waiter& w : waiting) w.respond(answer(*done, w.req, w.principal));
  }
}

}  // namespace qudao
