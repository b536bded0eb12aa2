// qudao forecast: the demand forecast and production plan (projections/forecast.h) of an event file,
// offline, without a broker or a store.
//
// The file's records go through the engine's own Applier into one Shard per partition, placed as
// `replay --from-file` places them (murmur2(key) % partitions), so only what the engine applies
// counts: duplicates and rejected records are not sales. Every applied ScanOut is a sale of (sku,
// region of its store) on the UTC day of its occurred_at (a late upload counts on the day it
// happened); the series, lead times, network stock and open backorders are then built from those
// sales and the shards' final state by projections/demand.h, the same builder `qudao serve` uses
// for GET /v1/forecast and /v1/production-plan (connectors/forecast_api.h).
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "projections/demand.h"
#include "projections/forecast.h"

namespace qudao {

struct ForecastArgs {
  std::string path;        // an event file (simulate --out, export); "-" for stdin
  int partitions = 8;      // as replay --from-file: the topic's partition count
  int horizon_days = 1;    // backtest: days ahead each forecast is for
  int backtest_days = 28;  // backtest: the last days of every series
  double service_level = 0.95;
  std::size_t top = 20;    // plan rows printed (0 = all)
  bool json = false;       // print JSON instead of tables
};

// What the event file says about demand and supply, ready for forecast_and_plan().
struct ChannelHistory : DemandInput {
  std::uint64_t records = 0;
  std::uint64_t applied = 0;
  std::uint64_t scan_outs = 0;  // applied ScanOut events counted into the series
};

Result<ChannelHistory> read_channel_history(const std::string& path, int partitions, const std::atomic<bool>& stop);

// The report as JSON (what `qudao forecast --json` prints): days, accuracy per class, plan rows.
std::string forecast_json(const ChannelHistory& history, const ForecastReport& report, const ForecastArgs& args);
// The report as text tables.
std::string forecast_text(const ChannelHistory& history, const ForecastReport& report, const ForecastArgs& args);

int run_forecast(const ForecastArgs& args, const std::atomic<bool>& stop);

}  // namespace qudao
