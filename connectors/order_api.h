// The order status endpoint of the query API (connectors/query_api.h lists every endpoint and role):
//
//   GET /v1/orders?id=ID
//       one order: state (placed, paid, dispatched, received, cancelled, expired), store and its
//       region, fulfilment location, placed_by and whether it is a proxy order (代下单: placed by
//       someone other than the store), payment deadline, due and paid in fen, per line the sku and
//       the units ordered, reserved (held at the fulfilment location) and dispatched, shipments still
//       open, and the shipments made for it (from, to, lines, received; the first
//       kOrderShipmentsListedMax, with shipments_total).
//   GET /v1/orders?store=ID[&state=S][&cursor=C][&limit=N]
//       the store's orders by id (only those in state S if given), without their shipments; paged:
//       limit 1..kOrdersPageMax (default kPageDefault), cursor = next_cursor of the previous page.
//   GET /v1/orders?placed_by=PARTY[&state=S][&cursor=C][&limit=N]
//       the orders PARTY placed (OrderPlaced.placed_by: a distributor's 代下单 for its stores, or a
//       store's own), for stores in the token's regions, by (order id, partition), paged likewise.
//   GET /v1/orders?region=R[&state=S][&cursor=C][&limit=N]
//       the orders of the stores in region R, likewise.
//   GET /v1/orders?distributor=PARTY[&state=S][&cursor=C][&limit=N]
//       the orders of the stores assigned to PARTY (StoreAssigned, 客户报备: whoever placed them),
//       or, for an agent, to its distributors; likewise. The stores come from the performance
//       projection (PerformanceProjection::assigned_stores), their orders from the order projection
//       (OrderProjection::stores_orders); both are published after every poll batch, so a store
//       assigned after its orders lists them as soon as the assignment is applied.
//   Give exactly one of id, store, placed_by, region and distributor. The cursor of a store listing
//   is an order id; that of the others "ID.PARTITION" (their orders may span partitions).
//
// Every answer has `as_of` (projections/orders.h): the partition, its next offset and event time
// that the order state includes (a placed_by, region or distributor listing: one per partition its
// page's orders come from). The data is the order projection the pipeline keeps on its
// applying thread (projections/orders.h says why not RocksDB): a request reads memory only.
//
// An order whose store is outside the token's regions answers 404 exactly like an unknown id, a
// store outside them like an unknown store, a region outside them like an unknown region, and a
// placer with no order for a store in them like one that placed none, a distributor or agent of
// another region like an unknown one (its stores outside them are not listed): the scope is passed into
// the projections' lookups (OrderProjection::order, store_orders, region_orders, placed_orders,
// stores_orders; PerformanceProjection::assigned_stores for a distributor;
// StockProjection::locate for the store, region_totals for a region without orders). Bad
// parameters answer 400 naming the parameter.
#pragma once

#include "connectors/access.h"
#include "connectors/http_server.h"
#include "projections/orders.h"
#include "projections/performance.h"
#include "projections/stock.h"

namespace qudao {

HttpResponse serve_orders(const OrderProjection& orders, const StockProjection& stock,
                          const PerformanceProjection& performance, const HttpRequest& req, const Principal& principal);

}  // namespace qudao
