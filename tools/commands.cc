#include "tools/commands.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "events/event_file.h"

namespace qudao {

Result<KafkaSettings> KafkaArgs::to_settings() const {
  KafkaSettings s;
  s.brokers = brokers;
  if (!properties_file.empty()) {
    if (Status st = s.add_properties_file(properties_file); !st.is_ok()) return st;
  }
  for (const std::string& kv : settings) {
    if (Status st = s.add_override(kv); !st.is_ok()) return st;
  }
  if (s.brokers.empty()) {
    bool in_overrides = false;
    for (const auto& [k, v] : s.overrides) in_overrides |= (k == "bootstrap.servers" || k == "metadata.broker.list");
    if (!in_overrides) {
      return Status::error("no Kafka brokers: give -b host:port (or run `qudao demo`, which starts an embedded broker)");
    }
  }
  return s;
}

namespace {
// How often serve looks for a SIGHUP's request to read the tokens file again.
constexpr auto kTokensReloadPollInterval = std::chrono::milliseconds(100);
}  // namespace

int run_serve(const ServeArgs& args, const std::atomic<bool>& stop, std::atomic<bool>& reload_tokens) {
  auto kafka = args.kafka.to_settings();
  if (!kafka.is_ok()) {
    spdlog::error("{}", kafka.status().message());
    return 2;
  }
  auto tokens = AccessTokens::load_file(args.tokens_file);
  if (!tokens.is_ok()) {
    spdlog::error("{}", tokens.status().message());
    return 2;
  }
  ServiceOptions o;
  o.kafka = kafka.take();
  o.tokens = tokens.take();
  o.tokens_file = args.tokens_file;
  o.topic = args.kafka.topic;
  o.group_id = args.group_id;
  o.data_dir = args.data_dir;
  o.sync = args.sync == "none" ? SyncMode::no_fsync : SyncMode::fsync;
  o.http.address = args.http_address;
  o.http.port = args.http_port;
  o.http.header_bytes_max = args.http_header_bytes_max;
  o.http.body_bytes_max = args.http_body_bytes_max;
  o.http.read_timeout = std::chrono::milliseconds(args.http_read_timeout_ms);
  o.http.connections_max = args.http_connections_max;
  o.pipeline.commit_interval = std::chrono::milliseconds(args.commit_interval_ms);
  o.pipeline.dedup_window_events = args.dedup_window_events;
  o.pipeline.eviction.terminal_kept_max =
      args.terminal_kept_max < 0 ? kTerminalKeptAll : static_cast<std::size_t>(args.terminal_kept_max);
  o.dispatch_topic = args.dispatch_topic;
  o.dead_letter_topic = args.dead_letter_topic;
  o.ingest_delivery_timeout = std::chrono::milliseconds(args.ingest_delivery_timeout_ms);
  o.forecast_refresh_interval = std::chrono::seconds(args.forecast_refresh_s);
  o.pipeline.consume_events_per_s_max = args.max_events_per_s;
  auto service = Service::open(o);
  if (!service.is_ok()) {
    spdlog::error("{}", service.status().message());
    return 1;
  }
  spdlog::info("serving http://{}:{}/ (topic {}, brokers {}, data {}, {} tokens)", args.http_address,
               service.value()->http_port(), o.topic, args.kafka.brokers, o.data_dir, o.tokens.size());
  // SIGHUP: the tokens file is read again, off the signal handler. Joined before the service goes.
  std::jthread tokens_reloader([&svc = *service.value(), &reload_tokens](std::stop_token done) {
    while (!done.stop_requested()) {
      std::this_thread::sleep_for(kTokensReloadPollInterval);
      if (!reload_tokens.exchange(false)) continue;
      auto n = svc.reload_tokens();
      if (n.is_ok()) {
        spdlog::info("tokens file {} read again (SIGHUP): {} tokens in force", svc.tokens_file(), n.value());
      } else {
        spdlog::error("SIGHUP: {}; the tokens in force stay", n.status().message());
      }
    }
  });
  if (Status s = service.value()->run(stop); !s.is_ok()) {
    spdlog::error("pipeline stopped: {}", s.message());
    return 1;
  }
  const OutcomeCounts c = service.value()->pipeline().stats().totals;
  spdlog::info("stopped cleanly: {} consumed, {} applied, {} rejected, all committed", c.consumed, c.applied, c.rejected);
  return 0;
}

nlohmann::json summary_json(const SimulationSummary& s) {
  nlohmann::json regions = nlohmann::json::object();
  for (const auto& [name, r] : s.regions) {
    regions[name] = {{"locations", r.locations}, {"on_hand", r.on_hand}, {"in_transit", r.in_transit}};
  }
  nlohmann::json j = {{"events", s.events},       {"applied", s.applied()}, {"duplicates", s.duplicates},
                      {"malformed", s.malformed}, {"late", s.late},         {"events_by_type", s.events_by_type},
                      {"regions", regions}};
  if (s.transfers > 0) j["transfers"] = s.transfers;  // --cross-shard only: the default output is unchanged
  return j;
}

namespace {

// simulate --out: the same events, keys and summary, into an event file; no broker needed.
int simulate_to_file(const SimulateArgs& args, const std::atomic<bool>& stop) {
  auto writer = EventFileWriter::create(args.out_path);
  if (!writer.is_ok()) {
    spdlog::error("{}", writer.status().message());
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  Status failed = Status::ok();
  const SimulationSummary summary = simulate(args.simulation, [&](std::string_view key, std::span<const std::uint8_t> value) {
    if (!failed.is_ok() || stop.load(std::memory_order_relaxed)) return;
    failed = writer.value()->append(key, value);
  });
  if (failed.is_ok() && !stop.load()) failed = writer.value()->finish();
  if (!failed.is_ok() || stop.load()) {
    writer.value().reset();
    std::filesystem::remove(args.out_path);
    spdlog::error("{}; {} removed", failed.is_ok() ? std::string("interrupted") : failed.message(), args.out_path);
    return failed.is_ok() ? 130 : 1;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("wrote {} events ({:.1f} MB) to {} in {:.2f} s ({:.0f} events/s)", summary.events,
               static_cast<double>(writer.value()->bytes()) / 1e6, args.out_path, seconds,
               static_cast<double>(summary.events) / std::max(seconds, 1e-9));
  fmt::print("{}\n", summary_json(summary).dump());
  return 0;
}

}  // namespace

int run_simulate(const SimulateArgs& args, const std::atomic<bool>& stop) {
  if (!args.out_path.empty()) return simulate_to_file(args, stop);
  auto kafka = args.kafka.to_settings();
  if (!kafka.is_ok()) {
    spdlog::error("{}", kafka.status().message());
    return 2;
  }
  if (Status s = ensure_topic(kafka.value(), args.kafka.topic, args.partitions, std::chrono::seconds(30)); !s.is_ok()) {
    spdlog::error("{}", s.message());
    return 1;
  }
  auto producer = KafkaProducer::open(kafka.value());
  if (!producer.is_ok()) {
    spdlog::error("{}", producer.status().message());
    return 1;
  }
  const auto start = std::chrono::steady_clock::now();
  Status failed = Status::ok();
  const SimulationSummary summary = simulate(args.simulation, [&](std::string_view key, std::span<const std::uint8_t> value) {
    if (!failed.is_ok() || stop.load(std::memory_order_relaxed)) return;
    failed = producer.value()->produce(args.kafka.topic, {reinterpret_cast<const std::uint8_t*>(key.data()), key.size()}, value);
  });
  if (failed.is_ok()) failed = producer.value()->flush(std::chrono::minutes(5));
  if (!failed.is_ok()) {
    spdlog::error("{}", failed.message());
    return 1;
  }
  if (stop.load()) {
    spdlog::error("interrupted: the topic holds only part of the simulation");
    return 130;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  spdlog::info("produced {} events to {} in {:.2f} s ({:.0f} events/s), all acknowledged", summary.events,
               args.kafka.topic, seconds, summary.events / std::max(seconds, 1e-9));
  fmt::print("{}\n", summary_json(summary).dump());
  return 0;
}

}  // namespace qudao
