// qudao forecast: see tools/forecast.h for what is read from the event file and how.
#include "tools/forecast.h"

#include <absl/container/btree_map.h>
#include <absl/container/flat_hash_map.h>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "connectors/kafka.h"
#include "engine/apply.h"
#include "events/event_file.h"

namespace qudao {
namespace {

using json = nlohmann::json;

// Records applied between two releases of the shards' per-commit bookkeeping (the ids remembered
// since the last commit, dead letters, outbox rows), which nothing here writes anywhere.
constexpr std::uint64_t kCleanEveryRecords = 100'000;

std::string date_of(Day d) {
  const std::chrono::year_month_day ymd{std::chrono::sys_days{std::chrono::days{d.value}}};
  return fmt::format("{:04}-{:02}-{:02}", static_cast<int>(ymd.year()), static_cast<unsigned>(ymd.month()),
                     static_cast<unsigned>(ymd.day()));
}

json optional_number(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

std::string percent(const std::optional<double>& v) { return v ? fmt::format("{:.1f}%", *v * 100) : "-"; }
std::string ratio(const std::optional<double>& v) { return v ? fmt::format("{:.3f}", *v) : "-"; }

// Which methods the series of each class were given (for the full series, as the plan uses them).
std::map<SeriesClass, std::map<Method, std::size_t>> methods_by_class(const ForecastReport& report) {
  std::map<SeriesClass, std::map<Method, std::size_t>> m;
  for (const SeriesForecast& s : report.series) ++m[s.profile.series_class][s.params.method];
  return m;
}

std::size_t plan_rows_shown(const ForecastReport& report, const ForecastArgs& args) {
  return args.top == 0 ? report.plan.size() : std::min(args.top, report.plan.size());
}

}  // namespace

Result<ChannelHistory> read_channel_history(const std::string& path, int partitions, const std::atomic<bool>& stop) {
  if (partitions < 1) return Status::error(fmt::format("partitions: must be >= 1, got {}", partitions));
  auto reader = EventFileReader::open(path);
  if (!reader.is_ok()) return reader.status();
  std::map<std::int32_t, Shard> shards;
  for (int p = 0; p < partitions; ++p) shards.try_emplace(p, PartitionId{p});
  Applier applier;

  ChannelHistory h;
  std::map<std::string, std::uint32_t> region_ids;  // region name -> index into `regions`
  std::vector<std::string> regions;
  // (sku, region index) -> units per day; ordered containers, so nothing depends on hash order.
  absl::flat_hash_map<std::pair<std::uint64_t, std::uint32_t>, std::size_t> series_index;
  std::vector<absl::btree_map<std::int64_t, std::int64_t>> sold;
  std::vector<std::pair<std::uint64_t, std::uint32_t>> series_keys;
  std::map<SkuId, int> lead_time_days;
  std::vector<std::pair<std::int32_t, OrderId>> orders;
  std::optional<std::int32_t> first_day, last_day;

  while (!stop.load(std::memory_order_relaxed)) {
    auto record = reader.value()->next();
    if (!record.is_ok()) return record.status();
    if (!record.value()) break;
    const FileRecord& r = *record.value();
    ++h.records;
    if (r.key.empty()) {
      return Status::error(fmt::format("{}: offset {}: record {} has no key, so no partition: Kafka would have put it "
                                       "on a random one",
                                       path, r.offset, r.index + 1));
    }
    const auto key = std::span(reinterpret_cast<const std::uint8_t*>(r.key.data()), r.key.size());
    Shard& shard = shards.at(partition_for_key(key, partitions).value);
    const Ingested in = applier.ingest(shard, shard.next_offset(), r.value, key);
    if (h.records % kCleanEveryRecords == 0) {
      for (auto& [p, s] : shards) s.mark_clean();
    }
    if (in.outcome != RecordOutcome::applied) continue;
    ++h.applied;
    const fb::Envelope& e = *in.envelope;
    switch (e.payload_type()) {
      case fb::Payload::ScanOut: {
        const fb::ScanOut& s = *e.payload_as_ScanOut();
        const LocationInfo* store = shard.location(LocationId{s.store()});
        if (store == nullptr) continue;  // apply rejects a scan-out at an unknown store; kept for safety
        auto [rid, added] = region_ids.try_emplace(store->region, static_cast<std::uint32_t>(regions.size()));
        if (added) regions.push_back(store->region);
        const std::pair<std::uint64_t, std::uint32_t> k{s.sku(), rid->second};
        auto [it, fresh] = series_index.try_emplace(k, sold.size());
        if (fresh) sold.emplace_back(), series_keys.push_back(k);
        const std::int32_t day = day_of(TimeMs{e.occurred_at_ms()}).value;
        sold[it->second][day] += s.qty();
        first_day = std::min(first_day.value_or(day), day);
        last_day = std::max(last_day.value_or(day), day);
        ++h.scan_outs;
        break;
      }
      case fb::Payload::SkuDefined: {
        const fb::SkuDefined& s = *e.payload_as_SkuDefined();
        lead_time_days[SkuId{s.sku()}] = s.production_lead_time_days();
        break;
      }
      case fb::Payload::OrderPlaced:
        orders.emplace_back(shard.partition().value, OrderId{e.payload_as_OrderPlaced()->order()});
        break;
      default: break;
    }
  }
  if (stop.load()) return Status::error("forecast interrupted");

  // Supply: integer sums, so the (hash) order of the balances does not matter.
  std::map<SkuId, SkuSupply> supply;
  for (const auto& [sku, lead] : lead_time_days) supply[sku] = SkuSupply{sku, lead, {}, {}, {}};
  for (const auto& [p, shard] : shards) {
    shard.for_each_balance([&](const Account& a, Quantity q) {
      if (a.location == kVirtualLocation || q.value <= 0) return;
      auto it = supply.find(a.sku);
      if (it == supply.end()) return;
      if (a.bucket == Bucket::on_hand || a.bucket == Bucket::reserved) it->second.on_hand.value += q.value;
      if (a.bucket == Bucket::in_transit) it->second.in_transit.value += q.value;
    });
  }
  for (const auto& [p, id] : orders) {
    const Order* o = shards.at(p).order(id);
    if (o == nullptr || o->state != OrderState::paid) continue;
    for (const OrderLine& l : o->lines) {
      auto it = supply.find(l.sku);
      if (it != supply.end()) it->second.open_backorders.value += l.ordered - l.dispatched;
    }
  }
  for (const auto& [sku, s] : supply) h.supply.push_back(s);

  if (first_day) {
    h.first_day = Day{*first_day};
    h.last_day = Day{*last_day};
    const std::size_t days = static_cast<std::size_t>(*last_day - *first_day + 1);
    std::vector<std::size_t> order(series_keys.size());
    for (std::size_t i = 0; i < order.size(); ++i) order[i] = i;
    std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) {
      return std::tie(series_keys[a].first, regions[series_keys[a].second]) <
             std::tie(series_keys[b].first, regions[series_keys[b].second]);
    });
    for (std::size_t i : order) {
      DemandSeries s{SkuId{series_keys[i].first}, regions[series_keys[i].second], h.first_day,
                     std::vector<std::int64_t>(days, 0)};
      for (const auto& [day, units] : sold[i]) s.units_per_day[static_cast<std::size_t>(day - *first_day)] = units;
      h.series.push_back(std::move(s));
    }
  }
  return h;
}

std::string forecast_json(const ChannelHistory& h, const ForecastReport& report, const ForecastArgs& args) {
  json classes = json::array();
  const auto methods = methods_by_class(report);
  auto accuracy = [&](const ClassAccuracy& c, const std::string& name) {
    json j{{"class", name},
           {"series_backtested", c.series},
           {"series_with_mase", c.mase_series},
           {"wape", optional_number(c.wape)},
           {"mase", optional_number(c.mase)},
           {"naive_wape", optional_number(c.naive_wape)},
           {"naive_mase", optional_number(c.naive_mase)}};
    return j;
  };
  for (const ClassAccuracy& c : report.accuracy.classes) {
    json j = accuracy(c, series_class_name(c.series_class));
    std::size_t total = 0;
    json m = json::object();
    if (auto it = methods.find(c.series_class); it != methods.end()) {
      for (const auto& [method, n] : it->second) m[method_name(method)] = n, total += n;
    }
    j["series"] = total;
    j["methods"] = m;
    classes.push_back(j);
  }
  json plan = json::array();
  for (std::size_t i = 0; i < plan_rows_shown(report, args); ++i) {
    const PlanRow& r = report.plan[i];
    plan.push_back({{"sku", r.sku.value},
                    {"lead_time_days", r.lead_time_days},
                    {"regions", r.regions},
                    {"forecast_units", r.forecast_units},
                    {"safety_units", r.safety_units},
                    {"on_hand", r.on_hand.value},
                    {"in_transit", r.in_transit.value},
                    {"open_backorders", r.open_backorders.value},
                    {"production_units", r.production_units.value}});
  }
  std::int64_t production_total = 0;
  for (const PlanRow& r : report.plan) production_total += r.production_units.value;
  const json out{
      {"file", args.path},
      {"records", h.records},
      {"applied", h.applied},
      {"scan_outs", h.scan_outs},
      {"first_day", h.series.empty() ? json(nullptr) : json(date_of(h.first_day))},
      {"last_day", h.series.empty() ? json(nullptr) : json(date_of(h.last_day))},
      {"series", report.series.size()},
      {"series_not_backtested", report.series.size() - report.accuracy.all.series},
      {"backtest", {{"backtest_days", args.backtest_days}, {"horizon_days", args.horizon_days}}},
      {"accuracy", {{"classes", classes}, {"all", accuracy(report.accuracy.all, "all")}}},
      {"service_level", args.service_level},
      {"z", report.z},
      {"skus_planned", report.plan.size()},
      {"skus_without_lead_time", report.skus_without_supply},
      {"production_units_total", production_total},
      {"plan", plan}};
  return out.dump(2) + "\n";
}

std::string forecast_text(const ChannelHistory& h, const ForecastReport& report, const ForecastArgs& args) {
  std::string out;
  auto line = [&](const std::string& s) { out += s, out += '\n'; };
  if (h.series.empty()) {
    line(fmt::format("{}: {} records, {} applied, no scan-outs: nothing to forecast", args.path, h.records, h.applied));
  } else {
    line(fmt::format("{}: {} records, {} applied, {} scan-outs; {} series (sku x region) over {} days, {} .. {}",
                     args.path, h.records, h.applied, h.scan_outs, report.series.size(),
                     h.last_day.value - h.first_day.value + 1, date_of(h.first_day), date_of(h.last_day)));
  }
  line(fmt::format("\nforecast accuracy: rolling origin over the last {} days, {} day(s) ahead; naive = last day's "
                   "sales; MASE < 1 beats the naive forecast",
                   args.backtest_days, args.horizon_days));
  line(fmt::format("{:<13} {:>7} {:>10} {:>8} {:>7} {:>11} {:>10}   {}", "class", "series", "backtested", "WAPE", "MASE",
                   "naive WAPE", "naive MASE", "methods (whole series)"));
  const auto methods = methods_by_class(report);
  auto row = [&](const ClassAccuracy& c, const std::string& name, std::size_t series, const std::string& used) {
    line(fmt::format("{:<13} {:>7} {:>10} {:>8} {:>7} {:>11} {:>10}   {}", name, series, c.series, percent(c.wape),
                     ratio(c.mase), percent(c.naive_wape), ratio(c.naive_mase), used));
  };
  for (const ClassAccuracy& c : report.accuracy.classes) {
    std::size_t total = 0;
    std::string used;
    if (auto it = methods.find(c.series_class); it != methods.end()) {
      for (const auto& [method, n] : it->second) {
        total += n;
        used += fmt::format("{}{} {}", used.empty() ? "" : ", ", method_name(method), n);
      }
    }
    row(c, series_class_name(c.series_class), total, used);
  }
  row(report.accuracy.all, "all", report.series.size(), "");
  if (const std::size_t short_series = report.series.size() - report.accuracy.all.series; short_series > 0) {
    line(fmt::format("{} series not backtested: shorter than {} days before the last {}", short_series, kTrainDaysMin,
                     args.backtest_days));
  }

  const std::size_t shown = plan_rows_shown(report, args);
  std::int64_t production_total = 0;
  for (const PlanRow& r : report.plan) production_total += r.production_units.value;
  line(fmt::format("\nproduction plan: service level {} (z = {:.3f}); {} skus, {} units to produce in all{}", args.service_level,
                   report.z, report.plan.size(), production_total,
                   report.skus_without_supply == 0
                       ? std::string()
                       : fmt::format("; {} skus sold but never defined (no lead time): not planned",
                                     report.skus_without_supply)));
  line(fmt::format("produce = max(0, forecast over lead time + safety - (on hand + in transit) + open backorders); "
                   "top {} by units", shown));
  line(fmt::format("{:>8} {:>5} {:>7} {:>10} {:>8} {:>9} {:>10} {:>10} {:>9}", "sku", "lead", "regions", "forecast",
                   "safety", "on hand", "in transit", "backorders", "produce"));
  for (std::size_t i = 0; i < shown; ++i) {
    const PlanRow& r = report.plan[i];
    line(fmt::format("{:>8} {:>5} {:>7} {:>10.1f} {:>8.1f} {:>9} {:>10} {:>10} {:>9}", r.sku.value, r.lead_time_days,
                     r.regions, r.forecast_units, r.safety_units, r.on_hand.value, r.in_transit.value,
                     r.open_backorders.value, r.production_units.value));
  }
  return out;
}

int run_forecast(const ForecastArgs& args, const std::atomic<bool>& stop) {
  const auto start = std::chrono::steady_clock::now();
  auto history = read_channel_history(args.path, args.partitions, stop);
  if (!history.is_ok()) {
    spdlog::error("{}", history.status().message());
    return 1;
  }
  const auto read = std::chrono::steady_clock::now();
  ForecastOptions options;
  options.service_level = args.service_level;
  options.backtest = {args.backtest_days, args.horizon_days};
  auto report = forecast_and_plan(history.value().series, history.value().supply, options);
  if (!report.is_ok()) {
    spdlog::error("{}", report.status().message());
    return 1;
  }
  const auto done = std::chrono::steady_clock::now();
  spdlog::info("forecast: read and applied {} records in {:.2f} s; {} series forecast, backtested and planned in {:.3f} s",
               history.value().records, std::chrono::duration<double>(read - start).count(),
               report.value().series.size(), std::chrono::duration<double>(done - read).count());
  fmt::print("{}", args.json ? forecast_json(history.value(), report.value(), args)
                             : forecast_text(history.value(), report.value(), args));
  return 0;
}

}  // namespace qudao
