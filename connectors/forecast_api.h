// The forecast endpoints of the query API (connectors/query_api.h lists every endpoint and role):
//
//   GET /v1/forecast[?sku=ID][&region=R][&days=N][&cursor=C][&limit=N]      hq, regional
//       per sku × region series in scope, by (sku, region): its class (ADI, CV²), method and
//       parameters, the daily forecast for the `days` days after the series' last day (1 to
//       kForecastDaysMax, default kForecastDaysDefault), σ (in-sample one-step RMSE) and its
//       backtest (WAPE, MASE and the naive forecast's, null where undefined). Paged: limit (at most
//       kForecastPageSeriesMax) and cursor = next_cursor ("sku:region" of the page's last series).
//   GET /v1/forecast/accuracy[?sku=ID][&region=R]                               hq, regional
//       the rolling backtest pooled per class (and all) over the series in scope that match the
//       filters: WAPE, MASE, and the naive forecast's WAPE and MASE; series counted per method.
//   GET /v1/production-plan[?sku=ID][&service_level=P][&cursor=C][&limit=N]   hq only
//       per defined sku: lead time, forecast over the lead time, safety stock, network on hand, in
//       transit, open backorders, units to produce (projections/forecast.h has the formula);
//       service_level 0.5 to 0.9999 (default 0.95). By production units descending, then sku;
//       cursor = next_cursor ("units.sku"). The plan nets the whole network's stock against the
//       whole network's demand, so it is HQ's: a regional token gets 403, as for the nation roll-up.
//
// What is forecast: projections/demand.h builds the series and supply from one RocksDB snapshot of
// the committed state (the shards as Store::load restores them, and the durable sold rows 'Q'),
// exactly as `qudao forecast FILE` builds them from the same events, and forecast_and_plan() runs
// over them with the offline tool's defaults (28 backtest days, 1 day ahead, service level 0.95).
// The same log gives the same numbers from both.
//
// When: fitting every series is too slow for a request, so a worker thread of its own (never the
// applying thread, never the HTTP I/O thread) computes it, and requests answer from the last
// result. A request that finds the committed offsets moved since that result, and the result at
// least refresh_interval old, asks for a new one and is answered from the old one meanwhile; the
// first request waits for the first result (at most kForecastWaitersMax wait, beyond: 503). Every
// answer says which events it includes: as_of.offsets (the next offset of every partition in the
// snapshot) and as_of.last_day (the last day of the series).
//
// Scope: a series is in a token's scope when its region is; the scope is applied while the result
// is read, so no out-of-scope series is copied out. A region outside the scope answers 404, as one
// that does not exist. Bad parameters answer 400 naming the parameter; a store that cannot be read, 500.
// Thread-safe: serve() may be called from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>
#include <vector>

#include "connectors/access.h"
#include "connectors/http_server.h"
#include "connectors/pipeline.h"
#include "engine/store.h"
#include "projections/demand.h"
#include "projections/forecast.h"

namespace qudao {

inline constexpr std::chrono::milliseconds kForecastRefreshIntervalDefault{30'000};
inline constexpr std::size_t kForecastPageSeriesMax = 1'000;
inline constexpr std::size_t kForecastPageDefault = 100;
inline constexpr int kForecastDaysDefault = 14;
inline constexpr std::size_t kPlanPageRowsMax = 1'000;
inline constexpr std::size_t kForecastWaitersMax = 64;  // requests waiting for the first result

// The JSON both `qudao forecast --json` and the endpoints give for the same figures.
// Accuracy per class and for all: WAPE, MASE, naive WAPE and MASE, and the methods the series of
// each class were given (counted over `series`).
nlohmann::json accuracy_json(const AccuracyReport& accuracy, std::span<const SeriesForecast> series);
nlohmann::json plan_row_json(const PlanRow& row);

// The forecast of one committed state.
struct ForecastComputation {
  std::map<std::int32_t, std::int64_t> next_offsets;  // per partition: the events included
  DemandInput input;
  ForecastReport report;  // at ForecastOptions' service level, with kForecastDaysMax daily forecasts
  std::vector<std::string> regions;  // every region with a location, sorted
};

// Builds the demand input from one snapshot of `store` and forecasts it (any thread).
Result<ForecastComputation> compute_forecast(Store& store, const ForecastOptions& options);

struct ForecastServiceOptions {
  std::chrono::milliseconds refresh_interval = kForecastRefreshIntervalDefault;
};

class ForecastService {
 public:
  // `store` and `pipeline` must outlive the service; the worker starts at once and idles until asked.
  ForecastService(Store& store, const Pipeline& pipeline, ForecastServiceOptions options = {});
  ~ForecastService();  // stops and joins the worker (after the computation in progress, if any)
  ForecastService(const ForecastService&) = delete;
  ForecastService& operator=(const ForecastService&) = delete;

  // Answers GET /v1/forecast, /v1/forecast/accuracy or /v1/production-plan (by req.path), now or,
  // before the first result, once it is ready; `respond` is called exactly once, from any thread.
  void serve(const HttpRequest& req, const Principal& principal, HttpResponder respond);

 private:
  struct Computed {
    std::shared_ptr<const ForecastComputation> computation;  // null if it failed
    std::string error;
    std::chrono::steady_clock::time_point at;
  };
  struct Waiter {
    HttpRequest req;
    Principal principal;
    HttpResponder respond;
  };
  void run();
  bool state_moved(const ForecastComputation& c) const;
  HttpResponse answer(const Computed& r, const HttpRequest& req, const Principal& principal) const;

  Store& store_;
  const Pipeline& pipeline_;
  ForecastServiceOptions options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::shared_ptr<const Computed> current_;  // null until the first computation ends
  bool wanted_ = false, computing_ = false, stop_ = false;
  std::vector<Waiter> waiting_;
  std::thread worker_;
};

}  // namespace qudao
