// The HTTP query API over the projections and the pipeline's counters (JSON unless noted), and
// the roles (connectors/access.h) each endpoint admits:
//
//   GET /health                          anyone        liveness, and whether the topic is assigned yet
//   GET /metrics                         hq, metrics   Prometheus text: events by outcome, commits, offsets
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
//   GET /v1/dead-letters?partition=P[&from=OFFSET][&limit=N]
//                                        hq            rejected records: reason, field, original bytes
//
// Deny by default. The answer to a request, in the order checked:
//   /health                              200 to anyone (405 for another method)
//   no Authorization: Bearer header      401, WWW-Authenticate: Bearer realm="qudao"
//   a token not in the tokens file       401, WWW-Authenticate: Bearer realm="qudao", error="invalid_token"
//   a path that is no endpoint           404
//   a method other than GET              405, Allow: GET
//   a role the endpoint does not admit   403 (status, metrics and dead letters span every region)
//   an object outside the token's scope  404, the same answer as for an object that does not exist
//   (a location, city or region)         (the scope is passed into the projection's lookup)
#pragma once

#include "connectors/access.h"
#include "connectors/http_server.h"
#include "connectors/pipeline.h"

namespace qudao {

inline constexpr std::size_t kDeadLettersPageMax = 1'000;  // the stock endpoints' limits: stock_api.h

// The handler reads the four objects it is given for as long as it is called; they must outlive it.
HttpHandler make_query_api(const StockProjection& stock, const Pipeline& pipeline, Store& store,
                           const AccessTokens& tokens);

}  // namespace qudao
