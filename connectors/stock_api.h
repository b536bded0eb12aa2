// The stock endpoints of the query API (connectors/query_api.h lists every endpoint and role):
//
//   GET /v1/stock       rows of stock per location × sku: on hand, reserved, available, in transit,
//                       units sold over the cover window, days of cover and the below-reorder flag
//                       (projections/stock.h says how they are computed). Filters: location, region,
//                       city, sku; as_of=YYYY-MM-DD (the stored daily closings, projections/stock_history.h);
//                       from=YYYY-MM-DD&to=YYYY-MM-DD (adds units sold in that period, both days
//                       included, at most kSoldPeriodDaysMax days); reorder_cover_days=N (overrides
//                       every sku's own reorder point; without it each row uses its sku's
//                       SkuDefined.reorder_cover_days, else kReorderCoverDaysDefault; each row names
//                       the threshold it used and its source). With location=ID the answer is that location with
//                       its rows (as before); without, a list of rows. Paged: limit (at most
//                       kStockPageRowsMax) and cursor=next_cursor of the previous page.
//   GET /v1/stock/rollup?level=city|region|nation
//                       the same figures summed per city, region or the nation (hq only), with the
//                       count of rows below reorder; region, as_of, from/to, reorder_cover_days as above;
//                       paged by group (limit at most kRollupPageGroupsMax, cursor).
//   GET /v1/anomalies?location=ID
//                       the location's anomalies (scan-outs beyond stock, receipt shortages), oldest
//                       first; paged (limit at most kAnomaliesPageMax, cursor).
//
// A location, region or city outside the token's regions answers 404, as one that does not exist:
// the scope is passed into the projection's lookups. Bad parameters answer 400 naming the parameter.
#pragma once

#include "connectors/access.h"
#include "connectors/http_server.h"
#include "engine/store.h"
#include "projections/stock.h"

namespace qudao {

inline constexpr std::size_t kStockPageRowsMax = 1'000;  // also the default page
inline constexpr std::size_t kRollupPageGroupsMax = 200;  // also the default page
inline constexpr std::size_t kAnomaliesPageMax = 1'000;
inline constexpr std::size_t kAnomaliesPageDefault = 100;
inline constexpr std::int64_t kReorderCoverDaysMax = 365;

HttpResponse serve_stock(const StockProjection& stock, Store& store, const HttpRequest& req, const Principal& principal);
HttpResponse serve_stock_rollup(const StockProjection& stock, Store& store, const HttpRequest& req,
                                const Principal& principal);
HttpResponse serve_anomalies(const StockProjection& stock, Store& store, const HttpRequest& req,
                             const Principal& principal);

}  // namespace qudao
