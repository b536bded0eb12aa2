// The HTTP query API over the projections and the pipeline's counters (JSON unless noted), and
// the roles (connectors/access.h) each endpoint admits. connectors/openapi.yaml is the contract
// (paths, parameters, roles, every answer's body schema); the `openapi` test runs each operation's
// examples against a real `qudao serve` and checks that its paths and api_routes() are the same set.
//
//   GET /health                          anyone        liveness, and whether the topic is assigned yet
//   GET /metrics                         hq, metrics   Prometheus text (connectors/metrics.h): events by outcome,
//                                                      lag per partition, commit and query latency, outbox
//   GET /v1/status                       hq            per-partition next offset, outcome counts, digest
//   GET /v1/stock?location=ID[&sku=ID]   hq, regional  one location's stock per sku, with days of cover
//       [&region=R][&city=C][&as_of=DAY]               and below-reorder flags; without location, a page
//       [&from=DAY&to=DAY][&cursor=][&limit=N]         of rows in scope (connectors/stock_api.h)
//   GET /v1/stock/regions                hq, regional  on hand, reserved, in transit per region in
//                                                      scope; the nation's totals for hq only
//   GET /v1/stock/rollup?level=city|region|nation
//       [&region=R][&as_of=DAY][&from=DAY&to=DAY]
//                                        hq, regional  the same figures per group; nation: hq only (403)
//   GET /v1/anomalies?location=ID[&cursor=][&limit=N]
//                                        hq, regional  a location's anomalies, oldest first
//   GET /v1/orders?id=ID                 hq, regional  one order's status: state, store, fulfilment, placed_by
//                                                      (proxy), deadline, due/paid fen, lines, shipments, as_of
//   GET /v1/orders?store=ID[&state=S][&cursor=C][&limit=N]
//                                        hq, regional  a store's orders by id (connectors/order_api.h)
//   GET /v1/orders?placed_by=PARTY|region=R[&state=S][&cursor=C][&limit=N]
//                                        hq, regional  the orders a party placed, or a region's, in scope
//   GET /v1/dead-letters?partition=P[&from=OFFSET|&cursor=C][&limit=N]
//                                        hq            rejected records: reason, field, original bytes
//   POST /v1/events[?region=REGION]      ingest        events as JSON to the events topic: 202 with their
//                                                      ids once Kafka has them (connectors/ingest_api.h)
//   GET /v1/performance?party=ID&period=2026-03|2026-Q1
//                                        hq, regional  one party's figures for a period (agents: rolled up)
//   GET /v1/leaderboard?region=R&period=P[&kind=distributor|agent][&cursor=C][&limit=N]
//                                        hq, regional  parties ranked by target attainment, ties by id
//   GET /v1/rebates?party=ID[&period=P][&cursor=C][&limit=N]
//                                        hq, regional  per period: tier, accrued, adjusted; with period:
//                                                      the history rows (which event moved it, and how)
//   GET /v1/conflicts[?cursor=C][&limit=N] hq, regional store-assignment conflicts in scope
//   GET /v1/forecast[?sku=ID][&region=R][&days=N][&cursor=C][&limit=N]
//                                        hq, regional  per sku × region: class, method, daily forecast, σ,
//                                                      backtest WAPE/MASE (connectors/forecast_api.h)
//   GET /v1/forecast/accuracy[?sku=ID][&region=R]
//                                        hq, regional  the backtest per class, and the naive forecast's
//   GET /v1/production-plan[?sku=ID][&service_level=P][&cursor=C][&limit=N]
//                                        hq            per sku: forecast over lead time, safety, stock,
//                                                      backorders, units to produce (network-wide: 403
//                                                      for a regional token)
//   Listings answer next_cursor (null on the last page); limit defaults to 100 (kPageDefault; the
//   stock rows and roll-ups default to their maximum) and must be 1 to the endpoint's k*PageMax
//   (projections/performance.h, orders.h, stock_api.h, forecast_api.h, kDeadLettersPageMax below), else 400.
//
// Deny by default. The answer to a request, in the order checked:
//   /health                              200 to anyone (405 for another method)
//   no Authorization: Bearer header      401, WWW-Authenticate: Bearer realm="qudao"
//   a token not in the tokens file       401, WWW-Authenticate: Bearer realm="qudao", error="invalid_token"
//   a path that is no endpoint           404
//   a method other than GET              405, Allow: GET (for /v1/events: other than POST, Allow: POST)
//   a role the endpoint does not admit   403 (status, metrics, dead letters and the production plan span
//                                        every region)
//   an object outside the token's scope  404, the same answer as for an object that does not exist
//   (a location, city, region, party     (the scope is passed into the projection's lookup)
//   or an order of such a store)
// Every error body is {"error": "<what is wrong, naming the parameter>"}.
//
// Each endpoint's time to answer is recorded per path (qudao_query_duration_seconds in /metrics).
#pragma once

#include <string_view>
#include <vector>

#include "connectors/access.h"
#include "connectors/forecast_api.h"
#include "connectors/http_server.h"
#include "connectors/ingest_api.h"
#include "connectors/pipeline.h"

namespace qudao {

inline constexpr std::size_t kDeadLettersPageMax = 1'000;  // the stock endpoints' limits: stock_api.h

struct ApiRoute {
  std::string_view method;
  std::string_view path;
};

// Every method and path the handler answers other than 404 (no such path) or 405 (another method),
// /health included, in table order. The openapi test compares it with the spec's paths both ways.
std::vector<ApiRoute> api_routes();

// The handler reads the objects it is given for as long as it is called; they must outlive it.
// Without `ingest`, POST /v1/events answers 503 (not configured).
// `forecast` sets the forecast endpoints' refresh interval (connectors/forecast_api.h).
HttpAsyncHandler make_query_api(const StockProjection& stock, const Pipeline& pipeline, Store& store,
                                const ServedTokens& tokens, EventIngest* ingest = nullptr,
                                ForecastServiceOptions forecast = {});

}  // namespace qudao
