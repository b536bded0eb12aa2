#include "connectors/stock_api.h"

#include <fmt/format.h>

#include <charconv>
#include <nlohmann/json.hpp>

#include "connectors/api_common.h"
#include "projections/stock_history.h"

namespace qudao {
namespace {

using nlohmann::json;

// The parameters /v1/stock and /v1/stock/rollup share.
struct Figures {
  std::optional<Day> as_of;
  std::optional<Day> from, to;
  ReorderRule reorder;  // query_days: the reorder_cover_days parameter, which overrides every sku's
};

std::optional<std::string> parse_text(const HttpRequest& req, const char* name, std::optional<std::string>& out) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return std::nullopt;
  if (it->second.empty()) return fmt::format("query parameter {}: must not be empty", name);
  out = it->second;
  return std::nullopt;
}

std::optional<std::string> parse_figures(const HttpRequest& req, Figures& f) {
  if (auto e = parse_param(req, "as_of", f.as_of)) return e;
  if (auto e = parse_param(req, "from", f.from)) return e;
  if (auto e = parse_param(req, "to", f.to)) return e;
  if (f.from.has_value() != f.to.has_value()) return std::string("query parameters from and to: give both or neither");
  if (f.from && *f.to < *f.from) {
    return fmt::format("query parameter to: {} is before from ({})", format_day(*f.to), format_day(*f.from));
  }
  if (f.from && f.to->value - f.from->value + 1 > kSoldPeriodDaysMax) {
    return fmt::format("query parameters from and to: at most {} days, got {}", kSoldPeriodDaysMax,
                       f.to->value - f.from->value + 1);
  }
  std::optional<std::int64_t> reorder;
  if (auto e = parse_param(req, "reorder_cover_days", reorder)) return e;
  if (reorder && (*reorder < 1 || *reorder > kReorderCoverDaysMax)) {
    return fmt::format("query parameter reorder_cover_days: expected 1 to {}, got {}", kReorderCoverDaysMax, *reorder);
  }
  f.reorder.query_days = reorder;
  return std::nullopt;
}

std::string hex(std::string_view s) {
  std::string out;
  for (unsigned char c : s) out += fmt::format("{:02x}", c);
  return out;
}

std::optional<std::string> unhex(std::string_view s) {
  if (s.size() % 2 != 0) return std::nullopt;
  std::string out;
  for (std::size_t i = 0; i < s.size(); i += 2) {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data() + i, s.data() + i + 2, v, 16);
    if (ec != std::errc() || p != s.data() + i + 2) return std::nullopt;
    out.push_back(static_cast<char>(v));
  }
  return out;
}

// The figures of a row or a group, with the same field names everywhere; a row (with its reorder
// threshold) also says whether it is below reorder and by which threshold, a group counts its rows.
void put_figures(json& j, const StockLevels& l, Quantity sold_window, const std::optional<Quantity>& sold_period,
                 std::optional<ReorderThreshold> reorder) {
  const Cover c = cover(l.on_hand, sold_window, reorder ? reorder->days : kReorderCoverDaysDefault);
  j["on_hand"] = l.on_hand.value;
  j["reserved"] = l.reserved.value;
  j["available"] = l.available().value;
  j["in_transit"] = l.in_transit.value;
  j["sold_window"] = sold_window.value;
  j["days_of_cover"] = c.days ? json(*c.days) : json(nullptr);
  if (reorder) {
    j["below_reorder"] = c.below_reorder;
    j["reorder_cover_days"] = reorder->days;
    j["reorder_source"] = reorder_source_name(reorder->source);
  }
  if (sold_period) j["sold"] = sold_period->value;
}

void put_period(json& j, const Figures& f) {
  j["window_days"] = kCoverWindowDays;
  // The query's figure, or the default that a sku without a reorder point of its own uses.
  j["reorder_cover_days"] = f.reorder.query_days.value_or(kReorderCoverDaysDefault);
  if (f.as_of) j["as_of"] = format_day(*f.as_of);
  if (f.from) {
    j["from"] = format_day(*f.from);
    j["to"] = format_day(*f.to);
  }
}

}  // namespace

HttpResponse serve_stock(const StockProjection& stock, Store& store, const HttpRequest& req, const Principal& principal) {
  std::optional<std::uint64_t> location, sku;
  StockFilter filter;
  Figures f;
  std::size_t limit = 0;
  if (auto e = parse_param(req, "location", location)) return error(400, *e);
  if (auto e = parse_param(req, "sku", sku)) return error(400, *e);
  if (auto e = parse_text(req, "region", filter.region)) return error(400, *e);
  if (auto e = parse_text(req, "city", filter.city)) return error(400, *e);
  if (auto e = parse_figures(req, f)) return error(400, *e);
  if (auto e = parse_limit(req, kStockPageRowsMax, kStockPageRowsMax, limit)) return error(400, *e);
  std::optional<StockCursor> from;
  if (auto it = req.query.find("cursor"); it != req.query.end()) {
    StockCursor c;
    if (!parse_pair(it->second, c.location.value, c.sku.value)) return bad_cursor(it->second);
    from = c;
  }
  if (location) filter.location = LocationId{*location};
  if (sku) filter.sku = SkuId{*sku};

  auto page = stock.stock_page(filter, principal.scope, from, limit);
  // Unknown and out of scope are one answer, so that ids and names cannot be probed for other regions.
  if (!page) {
    if (location) return error(404, fmt::format("location {} not found", *location));
    if (filter.city) return error(404, fmt::format("city {} not found", *filter.city));
    return error(404, fmt::format("region {} not found", *filter.region));
  }
  // Only a request about the past reads the history: a RocksDB iterator copies the live vector
  // memtable (engine/store.h), milliseconds of the one HTTP thread under heavy ingest.
  if (f.as_of || f.from) {
    HistoryReader history = store.history_reader();  // one view, one memtable sort, per request
    for (LocationStock& ls : page->locations) {
      if (f.as_of) {
        if (Status s = apply_as_of(history, ls, *f.as_of); !s.is_ok()) return error(500, s.message());
      }
      if (f.from) {
        if (Status s = add_sold_period(history, ls, *f.from, *f.to); !s.is_ok()) return error(500, s.message());
      }
    }
  }
  json out;
  if (location) {
    const LocationStock& ls = page->locations.at(0);
    out = json{{"location", *location}, {"name", ls.info.name}, {"city", ls.info.city}, {"region", ls.info.region},
               {"kind", fb::EnumNameLocationKind(ls.info.kind)}};
  }
  json rows = json::array();
  for (const LocationStock& ls : page->locations) {
    for (const StockRow& r : ls.rows) {
      json j = location ? json{{"sku", r.sku.value}}
                        : json{{"location", r.location.value}, {"region", ls.info.region}, {"city", ls.info.city},
                               {"sku", r.sku.value}};
      put_figures(j, r.levels, r.sold_window, r.sold_period, f.reorder.threshold(r.sku_reorder_cover_days));
      rows.push_back(std::move(j));
    }
  }
  out[location ? "skus" : "rows"] = std::move(rows);
  put_period(out, f);
  out["next_cursor"] = page->next ? json(fmt::format("{}.{}", page->next->location.value, page->next->sku.value))
                                  : json(nullptr);
  return json_response(200, out);
}

HttpResponse serve_stock_rollup(const StockProjection& stock, Store& store, const HttpRequest& req,
                                const Principal& principal) {
  auto level_it = req.query.find("level");
  if (level_it == req.query.end()) return error(400, "query parameter level: required (city, region or nation)");
  RollupLevel level;
  if (level_it->second == "city") level = RollupLevel::city;
  else if (level_it->second == "region") level = RollupLevel::region;
  else if (level_it->second == "nation") level = RollupLevel::nation;
  else return error(400, fmt::format("query parameter level: expected city, region or nation, got \"{}\"", level_it->second));
  // The nation is every region: only a scope of every region may see it.
  if (level == RollupLevel::nation && !principal.scope.is_all()) {
    return error(403, fmt::format("role {} may not read the nation roll-up", role_name(principal.role)));
  }
  std::optional<std::string> region;
  Figures f;
  std::size_t limit = 0;
  if (auto e = parse_text(req, "region", region)) return error(400, *e);
  if (region && level == RollupLevel::nation) {
    return error(400, "query parameter region: not with level=nation (the nation is every region; use level=region)");
  }
  if (auto e = parse_figures(req, f)) return error(400, *e);
  if (auto e = parse_limit(req, kRollupPageGroupsMax, kRollupPageGroupsMax, limit)) return error(400, *e);
  std::pair<std::string, std::string> from;
  if (auto it = req.query.find("cursor"); it != req.query.end()) {
    const auto dot = it->second.find('.');
    auto r = unhex(std::string_view(it->second).substr(0, dot));
    auto c = dot == std::string::npos ? std::nullopt : unhex(std::string_view(it->second).substr(dot + 1));
    if (!r || !c) return bad_cursor(it->second);
    from = {*r, *c};
  }

  bool more = false;
  std::optional<HistoryReader> history;  // only for a question about the past, as in serve_stock
  std::optional<std::vector<GroupStock>> groups;
  std::optional<std::vector<GroupRefs>> refs;
  if (f.as_of || f.from) {
    refs = stock.rollup_refs(level, principal.scope, region, from, limit, more);
    if (!refs) return error(404, fmt::format("region {} not found", *region));
    history = store.history_reader();
  }
  if (f.as_of) {
    auto r = rollup_as_of(*history, *refs, *f.as_of, f.reorder);
    if (!r.is_ok()) return error(500, r.status().message());
    groups = r.take();
  } else {
    groups = stock.rollup(level, principal.scope, region, from, limit, f.reorder, more);
    if (!groups) return error(404, fmt::format("region {} not found", *region));
  }
  if (f.from) {
    if (Status s = add_sold_period(*history, *refs, *f.from, *f.to, *groups); !s.is_ok()) return error(500, s.message());
  }
  json rows = json::array();
  for (const GroupStock& g : *groups) {
    json j;
    if (level != RollupLevel::nation) j["region"] = g.region;
    if (level == RollupLevel::city) j["city"] = g.city;
    j["locations"] = g.locations;
    put_figures(j, g.levels, g.sold_window, g.sold_period, std::nullopt);
    j["rows_below_reorder"] = g.rows_below_reorder;
    rows.push_back(std::move(j));
  }
  json out{{"level", level_it->second}, {"groups", std::move(rows)}};
  put_period(out, f);
  // The next page starts just after the last group: the smallest name greater than its own.
  out["next_cursor"] = nullptr;
  if (more && !groups->empty()) {
    const GroupStock& last = groups->back();
    out["next_cursor"] = level == RollupLevel::city ? hex(last.region) + "." + hex(last.city + '\0')
                                                    : hex(last.region + '\0') + ".";
  }
  return json_response(200, out);
}

HttpResponse serve_anomalies(const StockProjection& stock, Store& store, const HttpRequest& req,
                             const Principal& principal) {
  std::optional<std::uint64_t> location;
  std::size_t limit = 0;
  if (auto e = parse_param(req, "location", location)) return error(400, *e);
  if (!location) return error(400, "query parameter location: required");
  if (auto e = parse_limit(req, kAnomaliesPageMax, kAnomaliesPageDefault, limit)) return error(400, *e);
  std::int64_t from_offset = 0;
  std::uint16_t from_index = 0;
  if (auto it = req.query.find("cursor"); it != req.query.end()) {
    if (!parse_pair(it->second, from_offset, from_index) || from_offset < 0) return bad_cursor(it->second);
  }
  const auto ref = stock.locate(LocationId{*location}, principal.scope);
  if (!ref) return error(404, fmt::format("location {} not found", *location));
  std::vector<AnomalyRecord> found;
  if (ref->partition != kNoPartition) {
    auto r = store.anomalies(ref->partition, ref->location, Offset{from_offset}, from_index, limit + 1);
    if (!r.is_ok()) return error(500, r.status().message());
    found = r.take();
  }
  json next = nullptr;
  if (found.size() > limit) {
    next = fmt::format("{}.{}", found.back().offset.value, found.back().index);
    found.pop_back();
  }
  json rows = json::array();
  for (const AnomalyRecord& a : found) {
    rows.push_back({{"event_id", fmt::format("{:016x}{:016x}", a.event_id.hi, a.event_id.lo)},
                    {"offset", a.offset.value},
                    {"day", format_day(a.day)},
                    {"kind", anomaly_kind_name(a.kind)},
                    {"sku", a.sku.value},
                    {"qty", a.qty.value}});
  }
  return json_response(200, json{{"location", *location}, {"anomalies", std::move(rows)}, {"next_cursor", next}});
}

}  // namespace qudao
