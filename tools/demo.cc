// qudao demo: the whole path on one machine with nothing installed but qudao. An embedded broker
// (librdkafka's in-process mock cluster) on a loopback port, a simulated channel produced into it,
// the real engine consuming it into RocksDB, and the HTTP API on 127.0.0.1.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "tools/commands.h"

namespace qudao {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::uint64_t kLeadEventsMax = 50'000;

// Fixed, so that the README's curl commands work as printed. The demo listens on 127.0.0.1 only;
// anything reachable from elsewhere takes `qudao serve --tokens FILE` with secrets of its own.
constexpr std::string_view kDemoHqToken = "qudao-demo-hq-token";
constexpr std::string_view kDemoEastToken = "qudao-demo-east-token";
constexpr std::string_view kDemoMetricsToken = "qudao-demo-metrics-token";
constexpr std::string_view kDemoIngestToken = "qudao-demo-ingest-token";  // POST /v1/events

Result<AccessTokens> demo_tokens() {
  const std::string text = fmt::format(R"({{"tokens": [
      {{"name": "demo-hq", "role": "hq", "token": "{}"}},
      {{"name": "demo-east", "role": "regional", "regions": ["East"], "token": "{}"}},
      {{"name": "demo-metrics", "role": "metrics", "token": "{}"}},
      {{"name": "demo-ingest", "role": "ingest", "token": "{}"}}]}})",
                                       kDemoHqToken, kDemoEastToken, kDemoMetricsToken, kDemoIngestToken);
  return AccessTokens::parse(text, "demo tokens");
}

void print_region_summary(const StockProjection& stock) {
  fmt::print("\n  {:<12} {:>9} {:>12} {:>12}\n", "region", "locations", "on hand", "in transit");
  std::int64_t on_hand = 0, in_transit = 0;
  for (const RegionTotals& r : stock.region_totals(RegionScope::all())) {
    fmt::print("  {:<12} {:>9} {:>12} {:>12}\n", r.region, r.locations, r.levels.on_hand.value, r.levels.in_transit.value);
    on_hand += r.levels.on_hand.value;
    in_transit += r.levels.in_transit.value;
  }
  fmt::print("  {:<12} {:>9} {:>12} {:>12}\n\n", "nation", "", on_hand, in_transit);
}

}  // namespace

int run_demo(const DemoArgs& args, const std::atomic<bool>& stop) {
  auto broker = EmbeddedBroker::start();
  if (!broker.is_ok()) {
    spdlog::error("{}", broker.status().message());
    return 1;
  }
  // The events topic, and the outbox's dispatch and dead-letter topics (the mock cluster does not
  // create topics through the admin API, so the relay finds them made).
  for (const std::string& topic : {std::string(kDefaultTopic), std::string(kDefaultTopic) + ".dispatch",
                                  std::string(kDefaultTopic) + ".dead-letters"}) {
    if (Status s = broker.value()->create_topic(topic, args.partitions); !s.is_ok()) {
      spdlog::error("{}", s.message());
      return 1;
    }
  }

  const bool temporary_data = args.data_dir.empty();
  std::string data_dir = args.data_dir;
  if (temporary_data) {
    std::string tmpl = (std::filesystem::temp_directory_path() / "qudao-demo-XXXXXX").string();
    if (mkdtemp(tmpl.data()) == nullptr) {
      spdlog::error("cannot create a temporary data directory: {}", std::strerror(errno));
      return 1;
    }
    data_dir = tmpl;
  }

  auto tokens = args.tokens_file.empty() ? demo_tokens() : AccessTokens::load_file(args.tokens_file);
  if (!tokens.is_ok()) {
    spdlog::error("{}", tokens.status().message());
    return 1;
  }

  ServiceOptions o;
  o.tokens = tokens.take();
  o.kafka.brokers = broker.value()->bootstrap();
  o.data_dir = data_dir;
  o.http.port = args.http_port;
  auto service = Service::open(o);
  if (!service.is_ok()) {
    spdlog::error("{}", service.status().message());
    return 1;
  }
  Service& svc = *service.value();
  const std::string url = fmt::format("http://127.0.0.1:{}", svc.http_port());
  fmt::print("\nqudao demo\n"
             "  embedded Kafka broker  {}  (librdkafka mock cluster, in memory)\n"
             "  events topic           {} ({} partitions)\n"
             "  ledger (RocksDB)       {}{}\n"
             "  HTTP API               {}\n",
             broker.value()->bootstrap(), kDefaultTopic, args.partitions, data_dir,
             temporary_data ? " (temporary)" : "", url);
  if (args.tokens_file.empty()) {
    fmt::print("  bearer tokens (demo)   HQ {}   East region {}   metrics {}   ingest {}\n"
               "  try:  curl -H 'Authorization: Bearer {}' '{}/v1/stock/regions'\n"
               "        curl -H 'Authorization: Bearer {}' '{}/v1/stock?location=2'\n\n",
               kDemoHqToken, kDemoEastToken, kDemoMetricsToken, kDemoIngestToken, kDemoHqToken, url, kDemoEastToken,
               url);
  } else {
    fmt::print("  bearer tokens          {} from {}\n\n", o.tokens.size(), args.tokens_file);
  }
  std::fflush(stdout);

  // Producer: the simulated channel, as fast as the embedded broker takes it.
  std::atomic<std::uint64_t> produced_total{0};
  std::atomic<bool> produced_all{false};
  std::thread producer_thread([&] {
    auto producer = KafkaProducer::open(o.kafka);
    if (!producer.is_ok()) {
      spdlog::error("{}", producer.status().message());
      return;
    }
    Status failed = Status::ok();
    std::uint64_t produced = 0;
    const SimulationSummary summary = simulate(args.simulation, [&](std::string_view key, std::span<const std::uint8_t> v) {
      if (!failed.is_ok() || stop.load(std::memory_order_relaxed)) return;
      // A live channel, not a bulk load: stay at most kLeadEventsMax ahead of the engine, because
      // the embedded broker keeps only the newest few MB of each partition.
      if (++produced % 1000 == 0) {
        while (produced > svc.pipeline().stats().totals.consumed + kLeadEventsMax && !stop.load()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        }
      }
      failed = producer.value()->produce(kDefaultTopic, {reinterpret_cast<const std::uint8_t*>(key.data()), key.size()}, v);
    });
    if (failed.is_ok()) failed = producer.value()->flush(std::chrono::minutes(2));
    if (!failed.is_ok()) {
      spdlog::error("simulator: {}", failed.message());
      return;
    }
    produced_total.store(summary.events);
    produced_all.store(true);
  });

  std::atomic<bool> pipeline_stop{false};
  Status pipeline_status = Status::ok();
  std::thread pipeline_thread([&] { pipeline_status = svc.run(pipeline_stop); });

  const auto start = Clock::now();
  auto last_report = start;
  std::uint64_t last_consumed = 0;
  bool caught_up = false;
  while (!stop.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    const auto now = Clock::now();
    const double elapsed = std::chrono::duration<double>(now - start).count();
    if (args.duration_s > 0 && elapsed >= args.duration_s) break;
    const OutcomeCounts c = svc.pipeline().stats().totals;
    if (!caught_up && produced_all.load() && c.consumed >= produced_total.load()) {
      caught_up = true;
      fmt::print("caught up: {} events consumed in {:.1f} s ({:.0f} events/s including the simulator's time): "
                 "{} applied, {} rejected, {} anomalies\n",
                 c.consumed, elapsed, c.consumed / elapsed, c.applied, c.rejected, c.anomalies);
      print_region_summary(svc.stock());
      fmt::print("serving {} {}\n", url, args.duration_s > 0 ? fmt::format("for {} s in all", args.duration_s) : "until Ctrl-C");
      std::fflush(stdout);
    } else if (!caught_up && now - last_report >= std::chrono::seconds(1)) {
      const double dt = std::chrono::duration<double>(now - last_report).count();
      fmt::print("  {:>6.1f} s  {:>9} events applied  {:>9.0f} events/s\n", elapsed, c.applied,
                 (c.consumed - last_consumed) / dt);
      std::fflush(stdout);
      last_report = now;
      last_consumed = c.consumed;
    }
  }

  pipeline_stop.store(true);
  pipeline_thread.join();
  producer_thread.join();
  const OutcomeCounts c = svc.pipeline().stats().totals;
  if (!caught_up) print_region_summary(svc.stock());
  fmt::print("stopped: {} events consumed, {} applied, {} rejected\n", c.consumed, c.applied, c.rejected);
  service.value().reset();
  if (temporary_data) std::filesystem::remove_all(data_dir);
  if (!pipeline_status.is_ok()) {
    spdlog::error("pipeline: {}", pipeline_status.message());
    return 1;
  }
  return 0;
}

}  // namespace qudao
