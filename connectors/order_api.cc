#include "connectors/order_api.h"

#include <fmt/format.h>

#include <array>
#include <nlohmann/json.hpp>

#include "connectors/api_common.h"

namespace qudao {
namespace {

using nlohmann::json;

constexpr std::array<OrderState, 6> kOrderStates{OrderState::placed,   OrderState::paid,      OrderState::dispatched,
                                                 OrderState::received, OrderState::cancelled, OrderState::expired};

std::optional<OrderState> parse_state(std::string_view s) {
  for (OrderState st : kOrderStates) {
    if (s == order_state_name(st)) return st;
  }
  return std::nullopt;
}

json as_of_json(const std::optional<OrdersAsOf>& a) {
  if (!a) return nullptr;
  return json{{"partition", a->partition.value}, {"next_offset", a->next_offset.value},
              {"event_time_ms", a->event_time.value}};
}

json order_json(const OrderStatus& s) {
  const Order& o = s.order;
  json lines = json::array();
  for (const OrderLine& l : o.lines) {
    lines.push_back({{"sku", l.sku.value}, {"ordered", l.ordered}, {"reserved", l.reserved}, {"dispatched", l.dispatched}});
  }
  return json{{"order", s.id.value},
              {"state", order_state_name(o.state)},
              {"store", o.store.value},
              {"region", s.region},
              // 0 in the event: no fulfilment location requested (the warehouse is chosen when paid).
              {"fulfilment", o.fulfilment.value == 0 ? json(nullptr) : json(o.fulfilment.value)},
              {"placed_by", o.placed_by},
              {"proxy", o.proxy()},
              {"payment_deadline_ms", o.deadline.value == 0 ? json(nullptr) : json(o.deadline.value)},
              {"due_fen", o.due.value},
              {"paid_fen", o.paid.value},
              {"shipments_open", o.shipments_open},
              {"shipments_total", s.shipments_total},
              {"lines", std::move(lines)}};
}

json shipments_json(const OrderStatus& s) {
  json out = json::array();
  for (const OrderShipment& sh : s.shipments) {
    json lines = json::array();
    for (const auto& [sku, qty] : sh.shipment.lines) lines.push_back({{"sku", sku.value}, {"qty", qty}});
    out.push_back({{"shipment", sh.id.value}, {"from", sh.shipment.from.value}, {"to", sh.shipment.to.value},
                   {"received", sh.shipment.received}, {"lines", std::move(lines)}});
  }
  return out;
}

}  // namespace

HttpResponse serve_orders(const OrderProjection& orders, const StockProjection& stock, const HttpRequest& req,
                          const Principal& principal) {
  std::optional<std::uint64_t> id, store, cursor;
  std::optional<OrderState> state;
  std::size_t limit = 0;
  if (auto e = parse_param(req, "id", id)) return error(400, *e);
  if (auto e = parse_param(req, "store", store)) return error(400, *e);
  if (auto e = parse_param_with(req, "state", state, parse_state,
                                "one of placed, paid, dispatched, received, cancelled, expired")) {
    return error(400, *e);
  }
  if (auto e = parse_param(req, "cursor", cursor)) return error(400, *e);
  if (auto e = parse_limit(req, kOrdersPageMax, kPageDefault, limit)) return error(400, *e);
  if (id && store) return error(400, "query parameters id and store: give one (id: one order; store: its orders)");
  if (id) {
    if (state || cursor || req.query.contains("limit")) {
      return error(400, "query parameters state, cursor and limit: only with store (id names one order)");
    }
    const auto found = orders.order(OrderId{*id}, principal.scope);
    // Unknown and out of scope are one answer, so that order ids of other regions cannot be probed.
    if (!found) return error(404, fmt::format("order {} not found", *id));
    json out = order_json(*found);
    out["shipments"] = shipments_json(*found);
    out["as_of"] = as_of_json(found->as_of);
    return json_response(200, out);
  }
  if (!store) return error(400, "query parameter id or store: required");
  const auto located = stock.locate(LocationId{*store}, principal.scope);
  if (!located) return error(404, fmt::format("store {} not found", *store));
  const OrdersPage page =
      orders.store_orders(LocationId{*store}, state, principal.scope, cursor ? std::optional(OrderId{*cursor}) : std::nullopt, limit);
  json rows = json::array();
  for (const OrderStatus& s : page.orders) rows.push_back(order_json(s));
  return json_response(200, json{{"store", *store},
                                 {"state", state ? json(order_state_name(*state)) : json(nullptr)},
                                 {"orders", std::move(rows)},
                                 {"next_cursor", page.next ? json(std::to_string(page.next->value)) : json(nullptr)},
                                 {"as_of", as_of_json(orders.as_of(located->partition))}});
}

}  // namespace qudao
