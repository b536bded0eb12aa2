#include "connectors/query_api.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <memory>
#include <variant>
#include <nlohmann/json.hpp>

#include "connectors/api_common.h"
#include "connectors/forecast_api.h"
#include "connectors/metrics.h"
#include "connectors/order_api.h"
#include "connectors/stock_api.h"

namespace qudao {
namespace {

using nlohmann::json;

json counts_json(const OutcomeCounts& c) {
  return json{{"consumed", c.consumed}, {"applied", c.applied}, {"duplicates", c.duplicates},
              {"rejected", c.rejected}, {"anomalies", c.anomalies}};
}

HttpResponse status(const Pipeline& pipeline) {
  const PipelineStats s = pipeline.stats();
  json parts = json::array();
  for (const PartitionStats& p : s.partitions) {
    json j = counts_json(p.counts);
    j["partition"] = p.partition.value;
    j["next_offset"] = p.next_offset.value;
    j["digest"] = fmt::format("{:016x}", p.digest);
    parts.push_back(std::move(j));
  }
  json body{{"topic", s.topic}, {"assigned", s.assigned}, {"commits", s.commits},
            {"last_commit_latency_us", s.last_commit_latency.count()},
            {"totals", counts_json(s.totals)}, {"partitions", std::move(parts)}};
  if (s.relay) {
    body["outbox"] = json{{"sent", s.relay->sent}, {"delivered", s.relay->delivered},
                          {"delivered_dispatch", s.relay->delivered_dispatch},
                          {"delivered_dead_letters", s.relay->delivered_dead_letters},
                          {"delivered_events", s.relay->delivered_events},
                          {"found_sent", s.relay->found_sent}, {"undelivered", s.relay->undelivered},
                          {"checks", s.relay->checks},
                          {"producers", s.relay->producers}};
  }
  return json_response(200, body);
}


HttpResponse region_stock(const StockProjection& stock, const Principal& principal) {
  json regions = json::array();
  std::int64_t on_hand = 0, reserved = 0, in_transit = 0;
  std::size_t locations = 0;
  for (const RegionTotals& r : stock.region_totals(principal.scope)) {
    regions.push_back({{"region", r.region}, {"locations", r.locations}, {"on_hand", r.levels.on_hand.value},
                       {"reserved", r.levels.reserved.value}, {"available", r.levels.available().value},
                       {"in_transit", r.levels.in_transit.value}});
    on_hand += r.levels.on_hand.value;
    reserved += r.levels.reserved.value;
    in_transit += r.levels.in_transit.value;
    locations += r.locations;
  }
  json out{{"regions", std::move(regions)}};
  // The nation is every region: only a scope of every region may see its totals.
  if (principal.scope.is_all()) {
    out["nation"] = {{"locations", locations}, {"on_hand", on_hand}, {"reserved", reserved},
                     {"available", on_hand - reserved}, {"in_transit", in_transit}};
  }
  return json_response(200, out);
}

HttpResponse dead_letters(Store& store, const HttpRequest& req) {
  std::optional<std::int32_t> partition;
  std::optional<std::int64_t> from, cursor;
  std::size_t page = 0;
  if (auto e = parse_param(req, "partition", partition)) return error(400, *e);
  if (auto e = parse_param(req, "from", from)) return error(400, *e);
  if (auto e = parse_param(req, "cursor", cursor)) return error(400, *e);
  if (auto e = parse_limit(req, kDeadLettersPageMax, kPageDefault, page)) return error(400, *e);
  if (!partition) return error(400, "query parameter partition: required");
  if (from && cursor) return error(400, "query parameters from and cursor: give one (cursor continues a page)");
  if (from.value_or(0) < 0 || cursor.value_or(0) < 0) return error(400, "query parameter from/cursor: must be >= 0");
  auto letters = store.dead_letters(PartitionId{*partition}, Offset{cursor.value_or(from.value_or(0))}, page);
  if (!letters.is_ok()) return error(500, letters.status().message());
  json out = json::array();
  for (const DeadLetter& d : letters.value()) {
    std::string hex;
    hex.reserve(d.bytes.size() * 2);
    for (unsigned char c : d.bytes) hex += fmt::format("{:02x}", c);
    out.push_back({{"partition", *partition}, {"offset", d.offset.value}, {"reason", reason_name(d.rejection.reason)},
                   {"field", d.rejection.field}, {"message", d.rejection.message}, {"bytes_hex", std::move(hex)}});
  }
  // A full page may have more after it: the cursor is the offset after its last letter.
  const json next = letters.value().size() == page
                        ? json(std::to_string(letters.value().back().offset.value + 1))
                        : json(nullptr);
  return json_response(200, json{{"dead_letters", std::move(out)}, {"next_cursor", next}});
}

// ---- performance and rebates (projections/performance.h) ----

std::string param(const HttpRequest& req, const char* name) {
  auto it = req.query.find(name);
  return it == req.query.end() ? std::string() : it->second;
}

// Splits "a.b" into two non-negative integers (a cursor); false if it is not that.
template <class A, class B>
bool split_cursor(std::string_view s, char sep, A& a, B& b) {
  const auto dot = s.rfind(sep);
  if (dot == std::string_view::npos) return false;
  auto [pa, ea] = std::from_chars(s.data(), s.data() + dot, a);
  auto [pb, eb] = std::from_chars(s.data() + dot + 1, s.data() + s.size(), b);
  return ea == std::errc() && pa == s.data() + dot && eb == std::errc() && pb == s.data() + s.size();
}

json row_json(const PerformanceRow& r) {
  const PeriodStats& s = r.stats;
  json j{{"party", r.party.value}, {"name", r.info.name}, {"kind", fb::EnumNamePartyKind(r.info.kind)},
         {"region", r.info.region}, {"parent", r.info.parent.value}, {"period", r.period.text()},
         {"orders_store", s.orders_store}, {"orders_proxy", s.orders_proxy}, {"sell_in_fen", s.sell_in.value},
         {"sell_through_qty", s.sell_through.value}, {"sell_through_value_fen", s.sell_through_value.value},
         {"sell_through_unpriced_qty", s.sell_through_unpriced.value}, {"active_stores", s.active_stores},
         {"target_fen", s.target.value}, {"attainment_bp", s.attainment_bp}, {"rebate_tier", s.tier},
         {"rebate_rate_bp", s.rebate_bp}, {"rebate_accrued_fen", r.rebate_accrued.value},
         {"rebate_adjusted_fen", r.rebate_adjusted.value}, {"rebate_settled_fen", r.rebate_settled.value},
         {"rebate_outstanding_fen", r.rebate_outstanding.value}, {"ratings", s.ratings}, {"trainings", s.trainings},
         {"rebate_history_rows", s.history_rows}};
  // The average is for display; the stored figures are the integer count and sum.
  j["rating_average"] = s.ratings == 0 ? json(nullptr) : json(static_cast<double>(s.rating_sum) / static_cast<double>(s.ratings));
  return j;
}

std::optional<PartyId> party_param(const HttpRequest& req, std::string& error_text) {
  std::optional<std::uint64_t> party;
  if (auto e = parse_param(req, "party", party)) {
    error_text = *e;
    return std::nullopt;
  }
  if (!party) {
    error_text = "query parameter party: required";
    return std::nullopt;
  }
  return PartyId{*party};
}

HttpResponse performance(const PerformanceProjection& perf, const HttpRequest& req, const Principal& principal) {
  std::string bad;
  const auto party = party_param(req, bad);
  if (!party) return error(400, bad);
  std::optional<Period> period;
  if (auto e = parse_param(req, "period", period)) return error(400, *e);
  if (!period) return error(400, "query parameter period: required");
  const auto found = perf.performance(*party, *period, principal.scope);
  // Unknown and out of scope are one answer, so that ids cannot be probed for other regions.
  if (!found) return error(404, fmt::format("party {} not found", party->value));
  json out = row_json(found->row);
  json children = json::array();
  for (PartyId c : found->rolls_up) children.push_back(c.value);
  out["rolls_up"] = std::move(children);
  return json_response(200, out);
}

HttpResponse leaderboard(const PerformanceProjection& perf, const HttpRequest& req, const Principal& principal) {
  const std::string region = param(req, "region");
  if (region.empty()) return error(400, "query parameter region: required");
  std::optional<Period> period;
  if (auto e = parse_param(req, "period", period)) return error(400, *e);
  if (!period) return error(400, "query parameter period: required");
  const std::string kind_text = param(req, "kind");
  fb::PartyKind kind = fb::PartyKind::Distributor;
  if (kind_text == "agent") kind = fb::PartyKind::Agent;
  else if (!kind_text.empty() && kind_text != "distributor") {
    return error(400, fmt::format("query parameter kind: expected distributor or agent, got \"{}\"", kind_text));
  }
  std::size_t limit = 0;
  if (auto e = parse_limit(req, kLeaderboardPageMax, kPageDefault, limit)) return error(400, *e);
  std::optional<LeaderboardCursor> after;
  if (const std::string c = param(req, "cursor"); !c.empty()) {
    LeaderboardCursor cur;
    if (!split_cursor(c, '.', cur.attainment_bp, cur.party.value)) {
      return error(400, fmt::format("query parameter cursor: expected the next_cursor of a previous page, got \"{}\"", c));
    }
    after = cur;
  }
  const auto page = perf.leaderboard(region, *period, kind, principal.scope, after, limit);
  if (!page) return error(404, fmt::format("region {} not found", region));
  json entries = json::array();
  for (const LeaderboardEntry& e : page->entries) {
    json j = row_json(e.row);
    j["rank"] = e.rank;
    entries.push_back(std::move(j));
  }
  json out{{"region", region}, {"period", period->text()}, {"kind", fb::EnumNamePartyKind(kind)},
           {"total", page->total}, {"entries", std::move(entries)}, {"next_cursor", nullptr}};
  if (page->next) out["next_cursor"] = fmt::format("{}.{}", page->next->attainment_bp, page->next->party.value);
  return json_response(200, out);
}

json history_json(const RebateHistoryRow& h) {
  return json{{"seq", h.seq}, {"event_id", fmt::format("{:016x}{:016x}", h.event.hi, h.event.lo)},
              {"occurred_at_ms", h.occurred_at.value}, {"cause", fb::EnumNamePayload(h.cause)},
              {"old_tier", h.old_tier}, {"new_tier", h.new_tier}, {"old_rate_bp", h.old_rebate_bp},
              {"new_rate_bp", h.new_rebate_bp}, {"sell_in_fen", h.sell_in.value}, {"target_fen", h.target.value},
              {"delta_fen", h.delta.value}, {"reason", h.reason}};
}

HttpResponse rebates(const PerformanceProjection& perf, const HttpRequest& req, const Principal& principal) {
  std::string bad;
  const auto party = party_param(req, bad);
  if (!party) return error(400, bad);
  std::optional<Period> period;
  if (auto e = parse_param(req, "period", period)) return error(400, *e);
  const std::size_t limit_max = period ? kRebateHistoryPageMax : kRebatePeriodsPageMax;
  std::size_t limit = 0;
  if (auto e = parse_limit(req, limit_max, kPageDefault, limit)) return error(400, *e);
  const std::string cursor = param(req, "cursor");
  const auto not_found = [&] { return error(404, fmt::format("party {} not found", party->value)); };
  if (period) {
    // One period: its accrual, adjustments and the history of why they moved.
    std::optional<std::uint32_t> after;
    if (auto e = parse_param(req, "cursor", after)) return error(400, *e);
    const auto page = perf.rebate_history(*party, *period, principal.scope, after.value_or(0),
                                          limit);
    if (!page) return not_found();
    json rows = json::array();
    for (const RebateHistoryRow& h : page->rows) rows.push_back(history_json(h));
    json out = row_json(page->row);
    out["history"] = std::move(rows);
    out["next_cursor"] = page->next ? json(std::to_string(*page->next)) : json(nullptr);
    return json_response(200, out);
  }
  std::optional<Period> after;
  if (!cursor.empty()) {
    after = parse_period(cursor);
    if (!after) return error(400, fmt::format("query parameter cursor: expected a period, got \"{}\"", cursor));
  }
  const auto page = perf.rebate_periods(*party, principal.scope, after, limit);
  if (!page) return not_found();
  json periods = json::array();
  for (const PerformanceRow& r : page->periods) {
    periods.push_back({{"period", r.period.text()}, {"sell_in_fen", r.stats.sell_in.value},
                       {"target_fen", r.stats.target.value}, {"attainment_bp", r.stats.attainment_bp},
                       {"rebate_tier", r.stats.tier}, {"rebate_rate_bp", r.stats.rebate_bp},
                       {"rebate_accrued_fen", r.rebate_accrued.value}, {"rebate_adjusted_fen", r.rebate_adjusted.value},
                       {"rebate_settled_fen", r.rebate_settled.value},
                       {"rebate_outstanding_fen", r.rebate_outstanding.value},
                       {"rebate_history_rows", r.stats.history_rows}});
  }
  return json_response(200, json{{"party", party->value}, {"name", page->info.name}, {"region", page->info.region},
                                 {"periods", std::move(periods)},
                                 {"next_cursor", page->next ? json(page->next->text()) : json(nullptr)}});
}

HttpResponse conflicts(const PerformanceProjection& perf, const HttpRequest& req, const Principal& principal) {
  std::size_t limit = 0;
  if (auto e = parse_limit(req, kConflictsPageMax, kPageDefault, limit)) return error(400, *e);
  std::optional<std::pair<std::string, std::pair<LocationId, PartyId>>> after;
  if (const std::string c = param(req, "cursor"); !c.empty()) {
    // region:store.claimant (the region may hold any character but is followed by the last ':').
    const auto colon = c.rfind(':');
    LocationId store;
    PartyId claimant;
    if (colon == std::string::npos || !split_cursor(std::string_view(c).substr(colon + 1), '.', store.value, claimant.value)) {
      return error(400, fmt::format("query parameter cursor: expected the next_cursor of a previous page, got \"{}\"", c));
    }
    after = std::pair{c.substr(0, colon), std::pair{store, claimant}};
  }
  const ConflictsPage page = perf.conflicts(principal.scope, after, limit);
  json rows = json::array();
  for (const ConflictRow& r : page.conflicts) {
    rows.push_back({{"region", r.region}, {"store", r.conflict.store.value}, {"assigned", r.conflict.assigned.value},
                    {"claimant", r.conflict.claimant.value}, {"claims", r.conflict.claims},
                    {"first_claim_ms", r.conflict.first_claim.value}, {"last_claim_ms", r.conflict.last_claim.value}});
  }
  json out{{"conflicts", std::move(rows)}, {"next_cursor", nullptr}};
  if (page.next) out["next_cursor"] = fmt::format("{}:{}.{}", page.next->first, page.next->second.first.value,
                                                  page.next->second.second.value);
  return json_response(200, out);
}

constexpr std::uint8_t role_bit(Role r) { return static_cast<std::uint8_t>(1u << static_cast<unsigned>(r)); }

struct Api {
  const StockProjection& stock;
  const Pipeline& pipeline;
  Store& store;
  std::shared_ptr<QueryLatency> latency;  // shared by the copies of the handler
  const EventIngest* ingest;              // null: POST /v1/events is not served
};

struct Endpoint {
  std::string_view path;
  std::uint8_t roles;  // role_bit()s of the roles admitted
  // Null: answered later, by the forecast service (connectors/forecast_api.h).
  HttpResponse (*serve)(const Api&, const HttpRequest&, const Principal&);
};

// Every endpoint behind a token. Status, metrics and dead letters are per partition, and a
// partition holds several regions' events, so no regional scope can be applied to them.
// The production plan nets the whole network's stock, so it is HQ's, like the nation roll-up.
constexpr std::array<Endpoint, 15> kEndpoints{{
    {"/metrics", role_bit(Role::hq) | role_bit(Role::metrics),
     [](const Api& a, const HttpRequest&, const Principal&) {
       return HttpResponse{200, "text/plain; version=0.0.4",
                           metrics_text(a.pipeline.stats(), *a.latency,
                                        a.ingest ? std::optional(a.ingest->counters()) : std::nullopt)};
     }},
    {"/v1/status", role_bit(Role::hq), [](const Api& a, const HttpRequest&, const Principal&) { return status(a.pipeline); }},
    {"/v1/stock", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return serve_stock(a.stock, a.store, req, p); }},
    {"/v1/stock/rollup", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return serve_stock_rollup(a.stock, a.store, req, p); }},
    {"/v1/anomalies", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return serve_anomalies(a.stock, a.store, req, p); }},
    {"/v1/stock/regions", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest&, const Principal& p) { return region_stock(a.stock, p); }},
    {"/v1/orders", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) {
       return serve_orders(a.pipeline.orders(), a.stock, a.pipeline.performance(), req, p);
     }},
    {"/v1/dead-letters", role_bit(Role::hq),
     [](const Api& a, const HttpRequest& req, const Principal&) { return dead_letters(a.store, req); }},
    {"/v1/performance", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return performance(a.pipeline.performance(), req, p); }},
    {"/v1/leaderboard", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return leaderboard(a.pipeline.performance(), req, p); }},
    {"/v1/rebates", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return rebates(a.pipeline.performance(), req, p); }},
    {"/v1/conflicts", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return conflicts(a.pipeline.performance(), req, p); }},
    {"/v1/forecast", role_bit(Role::hq) | role_bit(Role::regional), nullptr},
    {"/v1/forecast/accuracy", role_bit(Role::hq) | role_bit(Role::regional), nullptr},
    {"/v1/production-plan", role_bit(Role::hq), nullptr},
}};

HttpResponse unauthorized(std::string message, std::string challenge) {
  HttpResponse r = error(401, message);
  r.headers.emplace_back("WWW-Authenticate", std::move(challenge));
  return r;
}

HttpResponse method_not_allowed(const HttpRequest& req, const char* allow = "GET") {
  HttpResponse r = error(405, fmt::format("method {} not allowed", req.method));
  r.headers.emplace_back("Allow", allow);
  return r;
}

constexpr std::string_view kEventsPath = "/v1/events";

}  // namespace

std::vector<ApiRoute> api_routes() {
  std::vector<ApiRoute> routes{{"GET", "/health"}};
  for (const Endpoint& e : kEndpoints) routes.push_back({"GET", e.path});  // these endpoints answer GET only
  routes.push_back({"POST", kEventsPath});
  return routes;
}

HttpAsyncHandler make_query_api(const StockProjection& stock, const Pipeline& pipeline, Store& store,
                                const ServedTokens& tokens, EventIngest* ingest, ForecastServiceOptions forecast_options) {
  std::vector<std::string_view> paths;
  for (const ApiRoute& r : api_routes()) paths.push_back(r.path);
  auto latency = std::make_shared<QueryLatency>(paths);
  // Shared by the copies of the handler; its worker stops with the last copy.
  auto forecast = std::make_shared<ForecastService>(store, pipeline, forecast_options);
  // The answer, or for POST /v1/events and the forecast endpoints that passed every check, the
  // principal to answer for later (holding the tokens it was found in: a reload may replace them).
  using Routed = std::variant<HttpResponse, std::shared_ptr<const Principal>>;
  auto route = [api = Api{stock, pipeline, store, latency, ingest}, &tokens](const HttpRequest& req) -> Routed {
    const auto started = std::chrono::steady_clock::now();
    if (req.path == "/health") {
      if (req.method != "GET") return method_not_allowed(req);
      HttpResponse r = json_response(200, json{{"status", "ok"}, {"assigned", api.pipeline.stats().assigned}});
      api.latency->observe(req.path, std::chrono::steady_clock::now() - started);
      return r;
    }
    // Authenticate before routing: without a token, not even which paths exist is told.
    const std::string_view token = bearer_token(req.authorization);
    if (token.empty()) {
      return unauthorized("an Authorization: Bearer token is required", R"(Bearer realm="qudao")");
    }
    std::shared_ptr<const Principal> principal = tokens.authenticate(token);
    if (principal == nullptr) {
      return unauthorized("unknown token", R"(Bearer realm="qudao", error="invalid_token")");
    }
    if (req.path == kEventsPath) {
      if (req.method != "POST") return method_not_allowed(req, "POST");
      if (principal->role != Role::ingest) {
        return error(403, fmt::format("role {} may not write {} (an ingest token may)", role_name(principal->role),
                                      req.path));
      }
      return principal;
    }
    const auto endpoint = std::find_if(kEndpoints.begin(), kEndpoints.end(),
                                       [&](const Endpoint& e) { return e.path == req.path; });
    if (endpoint == kEndpoints.end()) return error(404, fmt::format("no such endpoint: {}", req.path));
    if (req.method != "GET") return method_not_allowed(req);
    if ((endpoint->roles & role_bit(principal->role)) == 0) {
      return error(403, fmt::format("role {} may not read {}", role_name(principal->role), req.path));
    }
    if (endpoint->serve == nullptr) return principal;
    HttpResponse r = endpoint->serve(api, req, *principal);
    api.latency->observe(endpoint->path, std::chrono::steady_clock::now() - started);
    return r;
  };
  return [route = std::move(route), ingest, latency, forecast](const HttpRequest& req, HttpResponder respond) {
    const auto started = std::chrono::steady_clock::now();
    Routed routed = route(req);
    if (auto* answer = std::get_if<HttpResponse>(&routed)) return respond(std::move(*answer));
    if (req.path != kEventsPath) {
      const std::string_view path = std::find_if(kEndpoints.begin(), kEndpoints.end(),
                                                 [&](const Endpoint& e) { return e.path == req.path; })->path;
      return forecast->serve(req, *std::get<std::shared_ptr<const Principal>>(routed),
                             [respond = std::move(respond), latency, started, path](HttpResponse r) {
                               latency->observe(path, std::chrono::steady_clock::now() - started);
                               respond(std::move(r));
                             });
    }
    if (ingest == nullptr) return respond(error(503, "this server does not accept events (no ingest configured)"));
    // Timed until the answer is ready, which for an accepted batch is when Kafka has acknowledged it.
    ingest->post(req, *std::get<std::shared_ptr<const Principal>>(routed),
                 [respond = std::move(respond), latency, started](HttpResponse r) {
                   latency->observe(kEventsPath, std::chrono::steady_clock::now() - started);
                   respond(std::move(r));
                 });
  };
}

}  // namespace qudao
