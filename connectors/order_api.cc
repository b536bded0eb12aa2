#include "connectors/order_api.h"

#include <fmt/format.h>
#include <fmt/ranges.h>

#include <array>
#include <charconv>
#include <map>
#include <nlohmann/json.hpp>
#include <vector>

#include "connectors/api_common.h"

namespace qudao {
namespace {

using nlohmann::json;

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

json rows_json(const OrdersPage& page) {
  json rows = json::array();
  for (const OrderStatus& s : page.orders) rows.push_back(order_json(s));
  return rows;
}

// The position of each partition the page's orders come from, by partition.
json page_as_of_json(const OrdersPage& page) {
  std::map<std::int32_t, OrdersAsOf> partitions;
  for (const OrderStatus& s : page.orders) partitions.try_emplace(s.as_of.partition.value, s.as_of);
  json out = json::array();
  for (const auto& [p, a] : partitions) out.push_back(as_of_json(a));
  return out;
}

// "ID" (after that order id on every partition: a store listing's) or "ID.PARTITION".
std::optional<OrderCursor> parse_cursor(std::string_view s) {
  std::uint64_t order = 0;
  std::int32_t partition = 0;
  if (s.find('.') != std::string_view::npos) {
    if (!parse_pair(s, order, partition) || partition < 0) return std::nullopt;
    return OrderCursor{OrderId{order}, PartitionId{partition}};
  }
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), order);
  if (ec != std::errc() || p != s.data() + s.size()) return std::nullopt;
  return OrderCursor{OrderId{order}};
}

std::optional<std::string> parse_region(const HttpRequest& req, std::optional<std::string>& out) {
  auto it = req.query.find("region");
  if (it == req.query.end()) return std::nullopt;
  if (it->second.empty()) return std::string("query parameter region: must not be empty");
  out = it->second;
  return std::nullopt;
}

// What a request lists or shows: exactly one of these parameters.
constexpr std::array<const char*, 5> kSelectors{"id", "store", "placed_by", "region", "distributor"};

std::optional<std::string> one_selector(const HttpRequest& req) {
  std::vector<std::string> given;
  for (const char* name : kSelectors) {
    if (req.query.contains(name)) given.emplace_back(name);
  }
  if (given.size() == 1) return std::nullopt;
  if (given.empty()) return std::string("query parameter id, store, placed_by, region or distributor: required");
  const std::string last = given.back();
  given.pop_back();
  return fmt::format("query parameters {} and {}: give one (id: one order; store, placed_by, region or distributor: a listing)",
                     fmt::join(given, ", "), last);
}

// A region with locations in scope (the stock projection knows every defined location's region).
bool region_in_scope(const StockProjection& stock, const std::string& region, const RegionScope& scope) {
  if (!scope.contains(region)) return false;
  for (const RegionTotals& r : stock.region_totals(RegionScope::only({region}))) {
    if (r.region == region) return true;
  }
  return false;
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

HttpResponse serve_orders(const OrderProjection& orders, const StockProjection& stock,
                          const PerformanceProjection& performance, const HttpRequest& req, const Principal& principal) {
  std::optional<std::uint64_t> id, store, placed_by, distributor;
  std::optional<std::string> region;
  std::optional<OrderCursor> cursor;
  std::optional<OrderState> state;
  std::size_t limit = 0;
  if (auto e = parse_param(req, "id", id)) return error(400, *e);
  if (auto e = parse_param(req, "store", store)) return error(400, *e);
  if (auto e = parse_param(req, "placed_by", placed_by)) return error(400, *e);
  if (auto e = parse_param(req, "distributor", distributor)) return error(400, *e);
  if (auto e = parse_region(req, region)) return error(400, *e);
  if (auto e = parse_param_with(req, "state", state, parse_state,
                                "one of placed, paid, dispatched, received, cancelled, expired")) {
    return error(400, *e);
  }
  if (auto it = req.query.find("cursor"); it != req.query.end()) {
    cursor = parse_cursor(it->second);
    if (!cursor) return bad_cursor(it->second);
  }
  if (auto e = parse_limit(req, kOrdersPageMax, kPageDefault, limit)) return error(400, *e);
  if (auto e = one_selector(req)) return error(400, *e);
  if (id) {
    if (state || cursor || req.query.contains("limit")) {
      return error(400, "query parameters state, cursor and limit: only with store, placed_by, region or distributor (id names one order)");
    }
    const auto found = orders.order(OrderId{*id}, principal.scope);
    // Unknown and out of scope are one answer, so that order ids of other regions cannot be probed.
    if (!found) return error(404, fmt::format("order {} not found", *id));
    json out = order_json(*found);
    out["shipments"] = shipments_json(*found);
    out["as_of"] = as_of_json(found->as_of);
    return json_response(200, out);
  }
  const json state_json = state ? json(order_state_name(*state)) : json(nullptr);
  if (store) {
    const auto located = stock.locate(LocationId{*store}, principal.scope);
    if (!located) return error(404, fmt::format("store {} not found", *store));
    const OrdersPage page = orders.store_orders(LocationId{*store}, state, principal.scope, cursor, limit);
    // A store is on one partition: its cursor is the order id alone.
    return json_response(200, json{{"store", *store},
                                   {"state", state_json},
                                   {"orders", rows_json(page)},
                                   {"next_cursor", page.next ? json(std::to_string(page.next->order.value)) : json(nullptr)},
                                   {"as_of", as_of_json(orders.as_of(located->partition))}});
  }
  std::optional<OrdersPage> page;
  json out;
  if (placed_by) {
    page = orders.placed_orders(PartyId{*placed_by}, state, principal.scope, cursor, limit);
    // A placer is known by its orders: one without orders in scope is not told from an unknown one.
    if (!page) return error(404, fmt::format("placed_by {} not found: no orders placed by it", *placed_by));
    out = json{{"placed_by", *placed_by}};
  } else if (distributor) {
    const auto assigned = performance.assigned_stores(PartyId{*distributor}, principal.scope);
    // Unknown and out of scope are one answer, as for every party.
    if (!assigned) return error(404, fmt::format("distributor {} not found", *distributor));
    if (assigned->info.kind != fb::PartyKind::Distributor && assigned->info.kind != fb::PartyKind::Agent) {
      return error(400, fmt::format("query parameter distributor: party {} is a {}, not a Distributor or an Agent",
                                    *distributor, fb::EnumNamePartyKind(assigned->info.kind)));
    }
    page = orders.stores_orders(assigned->stores, state, principal.scope, cursor, limit);
    out = json{{"distributor", *distributor}};
  } else {
    page = orders.region_orders(*region, state, principal.scope, cursor, limit);
    // A region in scope whose stores have placed no order yet lists none, like such a store.
    if (!page && region_in_scope(stock, *region, principal.scope)) page.emplace();
    if (!page) return error(404, fmt::format("region {} not found", *region));
    out = json{{"region", *region}};
  }
  out["state"] = state_json;
  out["orders"] = rows_json(*page);
  out["next_cursor"] = page->next ? json(fmt::format("{}.{}", page->next->order.value, page->next->partition.value))
                                  : json(nullptr);
  out["as_of"] = page_as_of_json(*page);
  return json_response(200, out);
}

}  // namespace qudao
