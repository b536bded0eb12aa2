// qudao forecast: see tools/forecast.h for what is read from the event file and how.
#include "tools/forecast.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>

#include "connectors/forecast_api.h"  // accuracy_json, plan_row_json: the endpoints' JSON
#include "connectors/kafka.h"
#include "engine/apply.h"
#include "events/event_file.h"

namespace qudao {
namespace {

using json = nlohmann::json;

// Records applied between two releases of the shards' per-commit bookkeeping (the ids remembered
// since the last commit, dead letters, outbox rows), which nothing here writes anywhere.
constexpr std::uint64_t kCleanEveryRecords = 100'000;

std::string percent(const std::optional<double>& v) { return v ? fmt::format("{:.1f}%", *v * 100) : "-"; }
std::string ratio(const std::optional<double>& v) { return v ? fmt::format("{:.3f}", *v) : "-"; }

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
  DemandBuilder demand;
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
    if (e.payload_type() != fb::Payload::ScanOut) continue;
    const fb::ScanOut& s = *e.payload_as_ScanOut();
    const LocationInfo* store = shard.location(LocationId{s.store()});
    if (store == nullptr) continue;  // apply rejects a scan-out at an unknown store; kept for safety
    demand.add_sale(SkuId{s.sku()}, store->region, day_of(TimeMs{e.occurred_at_ms()}), Quantity{s.qty()});
  }
  if (stop.load()) return Status::error("forecast interrupted");

  static_cast<DemandInput&>(h) = demand.build(shards);
  h.scan_outs = h.sales;
  return h;
}

std::string forecast_json(const ChannelHistory& h, const ForecastReport& report, const ForecastArgs& args) {
  json plan = json::array();
  for (std::size_t i = 0; i < plan_rows_shown(report, args); ++i) plan.push_back(plan_row_json(report.plan[i]));
  std::int64_t production_total = 0;
  for (const PlanRow& r : report.plan) production_total += r.production_units.value;
  const json out{
      {"file", args.path},
      {"records", h.records},
      {"applied", h.applied},
      {"scan_outs", h.scan_outs},
      {"first_day", h.series.empty() ? json(nullptr) : json(format_day(h.first_day))},
      {"last_day", h.series.empty() ? json(nullptr) : json(format_day(h.last_day))},
      {"series", report.series.size()},
      {"series_not_backtested", report.series.size() - report.accuracy.all.series},
      {"backtest", {{"backtest_days", args.backtest_days}, {"horizon_days", args.horizon_days}}},
      {"accuracy", accuracy_json(report.accuracy, report.series)},
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
                     h.last_day.value - h.first_day.value + 1, format_day(h.first_day), format_day(h.last_day)));
  }
  line(fmt::format("\nforecast accuracy: rolling origin over the last {} days, {} day(s) ahead; naive = last day's "
                   "sales; MASE < 1 beats the naive forecast",
                   args.backtest_days, args.horizon_days));
  line(fmt::format("{:<13} {:>7} {:>10} {:>8} {:>7} {:>11} {:>10}   {}", "class", "series", "backtested", "WAPE", "MASE",
                   "naive WAPE", "naive MASE", "methods (whole series)"));
  const auto methods = methods_by_class(report.series);
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
