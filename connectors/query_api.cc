#include "connectors/query_api.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <nlohmann/json.hpp>

#include "connectors/api_common.h"
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
                          {"found_sent", s.relay->found_sent}, {"checks", s.relay->checks},
                          {"producers", s.relay->producers}};
  }
  return json_response(200, body);
}

HttpResponse metrics(const Pipeline& pipeline) {
  const PipelineStats s = pipeline.stats();
  std::string out;
  out += "# HELP qudao_events_total Records consumed from the events topic, by outcome.\n"
         "# TYPE qudao_events_total counter\n";
  for (const PartitionStats& p : s.partitions) {
    for (auto [name, v] : {std::pair{"applied", p.counts.applied}, {"duplicate", p.counts.duplicates},
                           {"rejected", p.counts.rejected}}) {
      out += fmt::format("qudao_events_total{{partition=\"{}\",outcome=\"{}\"}} {}\n", p.partition.value, name, v);
    }
  }
  out += "# HELP qudao_anomalies_total Applied events flagged as anomalies.\n# TYPE qudao_anomalies_total counter\n";
  for (const PartitionStats& p : s.partitions) {
    out += fmt::format("qudao_anomalies_total{{partition=\"{}\"}} {}\n", p.partition.value, p.counts.anomalies);
  }
  out += "# HELP qudao_next_offset Next input offset committed to RocksDB, per partition.\n# TYPE qudao_next_offset gauge\n";
  for (const PartitionStats& p : s.partitions) {
    out += fmt::format("qudao_next_offset{{partition=\"{}\"}} {}\n", p.partition.value, p.next_offset.value);
  }
  out += fmt::format("# HELP qudao_commits_total RocksDB commits.\n# TYPE qudao_commits_total counter\nqudao_commits_total {}\n",
                     s.commits);
  out += fmt::format("# HELP qudao_last_commit_seconds Latency of the last commit.\n# TYPE qudao_last_commit_seconds gauge\n"
                     "qudao_last_commit_seconds {:.6f}\n", s.last_commit_latency.count() / 1e6);
  if (s.relay) {
    out += "# HELP qudao_outbox_records_total Outbox records (dispatch requests, dead letters): sent, delivered, "
           "or found already on the broker when checking.\n# TYPE qudao_outbox_records_total counter\n";
    for (auto [name, v] : {std::pair{"sent", s.relay->sent}, {"delivered", s.relay->delivered},
                           {"found_sent", s.relay->found_sent}}) {
      out += fmt::format("qudao_outbox_records_total{{state=\"{}\"}} {}\n", name, v);
    }
    out += fmt::format("# HELP qudao_outbox_delivered_total Outbox records acknowledged by the broker, per output "
                       "topic.\n# TYPE qudao_outbox_delivered_total counter\n"
                       "qudao_outbox_delivered_total{{topic=\"dispatch\"}} {}\n"
                       "qudao_outbox_delivered_total{{topic=\"dead_letters\"}} {}\n",
                       s.relay->delivered_dispatch, s.relay->delivered_dead_letters);
    out += fmt::format("# HELP qudao_outbox_checks_total Tail checks of the output topics (after a restart or a failed "
                       "send).\n# TYPE qudao_outbox_checks_total counter\nqudao_outbox_checks_total {}\n",
                       s.relay->checks);
  }
  return HttpResponse{200, "text/plain; version=0.0.4", std::move(out)};
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
};

struct Endpoint {
  std::string_view path;
  std::uint8_t roles;  // role_bit()s of the roles admitted
  HttpResponse (*serve)(const Api&, const HttpRequest&, const Principal&);
};

// Every endpoint behind a token. Status, metrics and dead letters are per partition, and a
// partition holds several regions' events, so no regional scope can be applied to them.
constexpr std::array<Endpoint, 7> kEndpoints{{
    {"/metrics", role_bit(Role::hq) | role_bit(Role::metrics),
     [](const Api& a, const HttpRequest&, const Principal&) { return metrics(a.pipeline); }},
    {"/v1/status", role_bit(Role::hq), [](const Api& a, const HttpRequest&, const Principal&) { return status(a.pipeline); }},
    {"/v1/stock", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return serve_stock(a.stock, a.store, req, p); }},
    {"/v1/stock/rollup", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return serve_stock_rollup(a.stock, a.store, req, p); }},
    {"/v1/anomalies", role_bit(Role::hq) | role_bit(Role::regional),
     [](const Api& a, const HttpRequest& req, const Principal& p) { return serve_anomalies(a.stock, a.store, req, p); }},
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

HttpResponse method_not_allowed(const HttpRequest& req) {
  HttpResponse r = error(405, fmt::format("method {} not allowed", req.method));
  r.headers.emplace_back("Allow", "GET");
  return r;
}

}  // namespace

HttpHandler make_query_api(const StockProjection& stock, const Pipeline& pipeline, Store& store,
                           const AccessTokens& tokens) {
  return [api = Api{stock, pipeline, store}, &tokens](const HttpRequest& req) -> HttpResponse {
    if (req.path == "/health") {
      if (req.method != "GET") return method_not_allowed(req);
      return json_response(200, json{{"status", "ok"}, {"assigned", api.pipeline.stats().assigned}});
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
    const auto endpoint = std::find_if(kEndpoints.begin(), kEndpoints.end(),
                                       [&](const Endpoint& e) { return e.path == req.path; });
    if (endpoint == kEndpoints.end()) return error(404, fmt::format("no such endpoint: {}", req.path));
    if (req.method != "GET") return method_not_allowed(req);
    if ((endpoint->roles & role_bit(principal->role)) == 0) {
      return error(403, fmt::format("role {} may not read {}", role_name(principal->role), req.path));
    }
    return endpoint->serve(api, req, *principal);
  };
}

}  // namespace qudao
