#include "connectors/query_api.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <charconv>
#include <memory>
#include <variant>
#include <nlohmann/json.hpp>

#include "connectors/metrics.h"

namespace qudao {
namespace {

using nlohmann::json;

HttpResponse json_response(unsigned status, const json& body) { return HttpResponse{status, "application/json", body.dump()}; }

HttpResponse error(unsigned status, const std::string& message) { return json_response(status, json{{"error", message}}); }

// Parses an optional non-negative integer query parameter; error text names the parameter.
template <class T>
std::optional<std::string> parse_param(const HttpRequest& req, const char* name, std::optional<T>& out) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return std::nullopt;
  T v{};
  const auto& s = it->second;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) {
    return fmt::format("query parameter {}: expected a non-negative integer, got \"{}\"", name, s);
  }
  out = v;
  return std::nullopt;
}

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
                          {"found_sent", s.relay->found_sent}, {"checks", s.relay->checks},
                          {"producers", s.relay->producers}};
  }
  return json_response(200, body);
}

HttpResponse location_stock(const StockProjection& stock, const HttpRequest& req, const Principal& principal) {
  std::optional<std::uint64_t> location, sku;
  if (auto e = parse_param(req, "location", location)) return error(400, *e);
  if (auto e = parse_param(req, "sku", sku)) return error(400, *e);
  if (!location) return error(400, "query parameter location: required");
  const auto found =
      stock.location_stock(LocationId{*location}, sku ? std::optional(SkuId{*sku}) : std::nullopt, principal.scope);
  // Unknown and out of scope are one answer, so that ids cannot be probed for other regions.
  if (!found) return error(404, fmt::format("location {} not found", *location));
  json rows = json::array();
  for (const StockRow& r : found->rows) {
    rows.push_back({{"sku", r.sku.value}, {"on_hand", r.levels.on_hand.value}, {"reserved", r.levels.reserved.value},
                    {"available", r.levels.available().value}, {"in_transit", r.levels.in_transit.value}});
  }
  return json_response(200, json{{"location", *location}, {"name", found->info.name}, {"city", found->info.city},
                                 {"region", found->info.region}, {"kind", fb::EnumNameLocationKind(found->info.kind)},
                                 {"skus", std::move(rows)}});
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
  std::optional<std::int64_t> from;
  std::optional<std::size_t> limit;
  if (auto e = parse_param(req, "partition", partition)) return error(400, *e);
  if (auto e = parse_param(req, "from", from)) return error(400, *e);
  if (auto e = parse_param(req, "limit", limit)) return error(400, *e);
  if (!partition) return error(400, "query parameter partition: required");
  auto letters = store.dead_letters(PartitionId{*partition}, Offset{from.value_or(0)},
                                    std::min(limit.value_or(100), kDeadLettersPageMax));
  if (!letters.is_ok()) return error(500, letters.status().message());
  json out = json::array();
  for (const DeadLetter& d : letters.value()) {
    std::string hex;
    hex.reserve(d.bytes.size() * 2);
    for (unsigned char c : d.bytes) hex += fmt::format("{:02x}", c);
    out.push_back({{"partition", *partition}, {"offset", d.offset.value}, {"reason", reason_name(d.rejection.reason)},
                   {"field", d.rejection.field}, {"message", d.rejection.message}, {"bytes_hex", std::move(hex)}});
  }
  return json_response(200, json{{"dead_letters", std::move(out)}});
}

constexpr std::uint8_t role_bit(Role r) { return static_cast<std::uint8_t>(1u << static_cast<unsigned>(r)); }

struct Api {
  const StockProjection& stock;
  const Pipeline& pipeline;
  Store& store;
  std::shared_ptr<QueryLatency> latency;  // shared by the copies of the handler
};

struct Endpoint {
  std::string_view path;
  std::uint8_t roles;  // role_bit()s of the roles admitted
  HttpResponse (*serve)(const Api&, const HttpRequest&, const Principal&);
};

// Every endpoint behind a token. Status, metrics and dead letters are per partition, and a
// partition holds several regions' events, so no regional scope can be applied to them.
constexpr std::array<Endpoint, 5> kEndpoints{{
    {"/metrics", role_bit(Role::hq) | role_bit(Role::metrics),
     [](const Api& a, const HttpRequest&, const Principal&) {
       return HttpResponse{200, "text/plain; version=0.0.4", metrics_text(a.pipeline.stats(), *a.latency)};
     }},
    {"/v1/status", role_bit(Role::hq), [](const Api& a, const HttpRequest&, const Principal&) { return status(a.pipeline); }},
    {"/v1/stock", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return location_stock(a.stock, req, p); }},
    {"/v1/stock/regions", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest&, const Principal& p) { return region_stock(a.stock, p); }},
    {"/v1/dead-letters", role_bit(Role::hq),
     [](const Api& a, const HttpRequest& req, const Principal&) { return dead_letters(a.store, req); }},
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
                                const AccessTokens& tokens, EventIngest* ingest) {
  std::vector<std::string_view> paths;
  for (const ApiRoute& r : api_routes()) paths.push_back(r.path);
  auto latency = std::make_shared<QueryLatency>(paths);
  // The answer, or for POST /v1/events that passed every check, the principal to ingest for.
  using Routed = std::variant<HttpResponse, const Principal*>;
  auto route = [api = Api{stock, pipeline, store, latency}, &tokens](const HttpRequest& req) -> Routed {
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
    const Principal* principal = tokens.authenticate(token);
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
    HttpResponse r = endpoint->serve(api, req, *principal);
    api.latency->observe(endpoint->path, std::chrono::steady_clock::now() - started);
    return r;
  };
  return [route = std::move(route), ingest, latency](const HttpRequest& req, HttpResponder respond) {
    const auto started = std::chrono::steady_clock::now();
    Routed routed = route(req);
    if (auto* answer = std::get_if<HttpResponse>(&routed)) return respond(std::move(*answer));
    if (ingest == nullptr) return respond(error(503, "this server does not accept events (no ingest configured)"));
    // Timed until the answer is ready, which for an accepted batch is when Kafka has acknowledged it.
    ingest->post(req, *std::get<const Principal*>(routed),
                 [respond = std::move(respond), latency, started](HttpResponse r) {
                   latency->observe(kEventsPath, std::chrono::steady_clock::now() - started);
                   respond(std::move(r));
                 });
  };
}

}  // namespace qudao
