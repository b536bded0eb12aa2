// The HTTP query API over the projections and the pipeline's counters (JSON unless noted), and
// the roles (connectors/access.h) each endpoint admits:
//
//   GET /health                          anyone        liveness, and whether the topic is assigned yet
//   GET /metrics                         hq, metrics   Prometheus text: events by outcome, commits, offsets
//   GET /v1/status                       hq            per-partition next offset, outcome counts, digest
//   GET /v1/stock?location=ID[&sku=ID]   hq, regional  one location's stock per sku
//   GET /v1/stock/regions                hq, regional  on hand, reserved, in transit per region in
//                                                      scope; the nation's totals for hq only
//   GET /v1/dead-letters?partition=P[&from=OFFSET][&limit=N]
//                                        hq            rejected records: reason, field, original bytes
//   GET /v1/performance?party=ID&period=2026-03|2026-Q1
//                                        hq, regional  one party's figures for a period (agents: rolled up)
//   GET /v1/leaderboard?region=R&period=P[&kind=distributor|agent][&cursor=C][&limit=N]
//                                        hq, regional  parties ranked by target attainment, ties by id
//   GET /v1/rebates?party=ID[&period=P][&cursor=C][&limit=N]
//                                        hq, regional  per period: tier, accrued, adjusted; with period:
//                                                      the history rows (which event moved it, and how)
//   GET /v1/conflicts[?cursor=C][&limit=N] hq, regional store-assignment conflicts in scope
//   Listings answer next_cursor (null on the last page); limit defaults to 100, capped by the
//   k*PageMax constants of projections/performance.h.
//
// Deny by default. The answer to a request, in the order checked:
//   /health                              200 to anyone (405 for another method)
//   no Authorization: Bearer header      401, WWW-Authenticate: Bearer realm="qudao"
//   a token not in the tokens file       401, WWW-Authenticate: Bearer realm="qudao", error="invalid_token"
//   a path that is no endpoint           404
//   a method other than GET              405, Allow: GET
//   a role the endpoint does not admit   403 (status, metrics and dead letters span every region)
//   an object outside the token's scope  404, the same answer as for an object that does not exist:
//                                        the scope is passed into the projection's lookup
#pragma once

#include "connectors/access.h"
#include "connectors/http_server.h"
#include "connectors/pipeline.h"

namespace qudao {

inline constexpr std::size_t kDeadLettersPageMax = 1'000;

// The handler reads the four objects it is given for as long as it is called; they must outlive it.
HttpHandler make_query_api(const StockProjection& stock, const Pipeline& pipeline, Store& store,
                           const AccessTokens& tokens);

}  // namespace qudao
