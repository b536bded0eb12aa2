// The HTTP query API over the projections and the pipeline's counters (JSON unless noted):
//
//   GET /health                          liveness, and whether the topic is assigned yet
//   GET /metrics                         Prometheus text: events by outcome, commits, offsets
//   GET /v1/status                       per-partition next offset, outcome counts and digest
//   GET /v1/stock?location=ID[&sku=ID]   one location's stock per sku (404 if unknown)
//   GET /v1/stock/regions                on hand and in transit per region, and the nation
//   GET /v1/dead-letters?partition=P[&from=OFFSET][&limit=N]
//                                        rejected records with reason, field and original bytes
//
// Authentication and region scopes are not built yet (README); bind to 127.0.0.1 until they are.
#pragma once

#include "connectors/http_server.h"
#include "connectors/pipeline.h"

namespace qudao {

inline constexpr std::size_t kDeadLettersPageMax = 1'000;

HttpHandler make_query_api(const StockProjection& stock, const Pipeline& pipeline, Store& store);

}  // namespace qudao
