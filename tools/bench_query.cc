#include "tools/bench_query.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <thread>

#include "connectors/kafka.h"
#include "engine/thread_priority.h"
#include "tools/bench_serve.h"

namespace qudao {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace fs = std::filesystem;
namespace http = boost::beast::http;

constexpr int kPartitions = 8;
constexpr std::chrono::seconds kServeStartMax{30};
constexpr int kClientThreadNice = -10;

// serve's /v1/status: whether it has its partitions, and the records it has consumed.
struct ServeProgress {
  bool assigned = false;
  std::uint64_t consumed = 0;
};

Result<ServeProgress> progress(BenchClient& client) {
  auto [status, body] = client.request(http::verb::get, "/v1/status", "");
  if (status != 200) return Status::error(fmt::format("GET /v1/status: {}", status));
  const json j = json::parse(body, nullptr, false);
  if (j.is_discarded()) return Status::error("GET /v1/status: not JSON");
  return ServeProgress{j.value("assigned", false), j["totals"].value("consumed", std::uint64_t{0})};
}

// Removes the data directory when the row ends, however it ends (after serve has stopped).
struct TempDir {
  std::string path;
  ~TempDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

}  // namespace

Result<QueryUnderIngestResult> bench_query_under_ingest(const std::string& qudao_binary, const KafkaArgs& kafka_args,
                                                        std::span<const RecordRef> records,
                                                        const QueryUnderIngestOptions& options,
                                                        const std::atomic<bool>& stop) {
  auto kafka = kafka_args.to_settings();
  if (!kafka.is_ok()) return kafka.status();
  const std::string topic =
      fmt::format("qudao-bench-query70-{}-{}", getpid(), Clock::now().time_since_epoch().count() % 1'000'000);
  if (Status s = ensure_topic(kafka.value(), topic, kPartitions, std::chrono::seconds(30)); !s.is_ok()) return s;
  TempDir dir;
  dir.path = (fs::temp_directory_path() / "qudao-bench-query70-XXXXXX").string();
  if (mkdtemp(dir.path.data()) == nullptr) return Status::error("cannot create a temporary directory");
  auto tokens = write_tokens_file(dir.path);
  if (!tokens.is_ok()) return tokens.status();
  const std::uint16_t port = free_port();
  auto serve = ServeProcess::start(qudao_binary, kafka_args, topic, dir.path + "/data", port, tokens.value());
  if (!serve.is_ok()) return serve.status();
  spdlog::info("bench: query70: serve is pid {}, topic {}", serve.value().pid(), topic);

  QueryUnderIngestResult r;
  try {
    // Listening, and its consumer holding the partitions, before the clock starts.
    BenchClient status_client(port, kBenchToken, kServeStartMax);
    for (const auto deadline = Clock::now() + kServeStartMax;;) {
      auto p = progress(status_client);
      if (!p.is_ok()) return p.status();
      if (p.value().assigned) break;
      if (Clock::now() > deadline) return Status::error("bench: serve was not assigned its partitions within 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    auto producer = KafkaProducer::open(kafka.value());
    if (!producer.is_ok()) return producer.status();
    BenchClient query_client(port, kBenchToken);

    const double rate = options.ingest_rate_events_per_s;
    const auto count = static_cast<std::uint64_t>(
        std::min(static_cast<double>(records.size()), rate * static_cast<double>(options.duration_max.count())));
    if (count == 0) return Status::error("bench: no events to produce");
    const PacedSchedule schedule{Clock::now() + std::chrono::milliseconds(200), rate};
    const auto last_slot = schedule.due(count - 1);
    r.produced = count;
    r.window_seconds = std::chrono::duration<double>(last_slot - schedule.start).count();

    Status produce_status = Status::ok();
    std::thread produce([&] {
      produce_status = produce_paced(schedule, count, stop, [&](std::uint64_t i) {
        return producer.value()->produce(topic, records[i].key, records[i].value);
      });
      r.producer_done_seconds = std::chrono::duration<double>(Clock::now() - schedule.start).count();
      if (produce_status.is_ok()) produce_status = producer.value()->flush(std::chrono::seconds(60));
    });

    constexpr std::size_t kTargets = std::size(kQueryTargets);
    std::vector<double> samples_ms[kTargets];
    std::uint64_t not_found[kTargets] = {};
    std::string query_failure;
    std::vector<double> worst_per_second_ms;  // by the second in which the request was due
    std::thread queries([&] {
      // The measuring client at a fixed higher priority (best effort, whatever serve's settings), so
      // that its own waits for a core are not charged to serve.
      set_this_thread_nice(kClientThreadNice);
      try {
        std::uint64_t n = 0;
        for (auto due = schedule.start; due <= last_slot && !stop.load(std::memory_order_relaxed);
             due += options.request_interval, ++n) {
          std::this_thread::sleep_until(due);
          const std::size_t k = n % kTargets;
          const auto [status, body] = query_client.request(http::verb::get, kQueryTargets[k].target, "");
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - due).count();
          samples_ms[k].push_back(ms);
          const auto second = static_cast<std::size_t>(std::chrono::duration<double>(due - schedule.start).count());
          if (second >= worst_per_second_ms.size()) worst_per_second_ms.resize(second + 1);
          worst_per_second_ms[second] = std::max(worst_per_second_ms[second], ms);
          if (status == 404) ++not_found[k];
          if (status != 200 && status != 404) {
            query_failure = fmt::format("GET {}: {} {}", kQueryTargets[k].target, status, body);
            return;
          }
        }
      } catch (const std::exception& e) {
        query_failure = e.what();
      }
    });

    // The status poller, on this thread.
    std::this_thread::sleep_until(schedule.start);
    const double cpu0 = serve.value().cpu_seconds();
    Status poll_status = Status::ok();
    bool window_closed = false;
    std::vector<std::uint64_t> lag_per_second;  // the most at a poll in each second of the window
    for (auto next = schedule.start; !stop.load(std::memory_order_relaxed); next += kStatusPollPeriod) {
      std::this_thread::sleep_until(next);
      const auto asked = Clock::now();
      auto p = progress(status_client);
      if (!p.is_ok()) {
        poll_status = p.status();
        break;
      }
      const std::uint64_t consumed = p.value().consumed;
      const double since_start_s = std::chrono::duration<double>(asked - schedule.start).count();
      const auto due_so_far = std::min(count, static_cast<std::uint64_t>(std::floor(since_start_s * rate)) + 1);
      const std::uint64_t lag = due_so_far > consumed ? due_so_far - consumed : 0;
      if (!window_closed) {
        r.lag_max_events = std::max(r.lag_max_events, lag);
        const auto second = static_cast<std::size_t>(since_start_s);
        if (second >= lag_per_second.size()) lag_per_second.resize(second + 1);
        lag_per_second[second] = std::max(lag_per_second[second], lag);
      }
      if (!window_closed && asked >= last_slot) {
        window_closed = true;
        r.serve_cpu_seconds = serve.value().cpu_seconds() - cpu0;
        r.consumed_in_window = consumed;
        r.lag_end_events = lag;
      }
      if (consumed >= count) {
        r.catch_up_ms = std::max(0.0, std::chrono::duration<double, std::milli>(asked - last_slot).count());
        break;
      }
      if (asked > last_slot + kQueryCatchUpMax) {
        poll_status = Status::error(fmt::format("bench: serve consumed only {} of {} events {} s after the last was due",
                                                consumed, count, kQueryCatchUpMax.count()));
        break;
      }
      next = std::max(next, asked - kStatusPollPeriod);
    }
    produce.join();
    queries.join();
    std::string worst, lags;
    for (double ms : worst_per_second_ms) worst += fmt::format(" {:.0f}", ms);
    for (std::uint64_t n : lag_per_second) lags += fmt::format(" {}", n);
    spdlog::info("bench: query70: worst latency of the requests due in each second, ms:{}", worst);
    spdlog::info("bench: query70: serve's largest lag in each second, events:{}", lags);
    if (!produce_status.is_ok()) return produce_status;
    if (!query_failure.empty()) return Status::error(fmt::format("bench: query: {}", query_failure));
    if (!poll_status.is_ok()) return poll_status;
    for (std::size_t k = 0; k < kTargets; ++k) {
      r.endpoints.push_back(EndpointLatency{kQueryTargets[k].name, kQueryTargets[k].target, samples_ms[k].size(),
                                            not_found[k], percentiles(samples_ms[k])});
    }
  } catch (const std::exception& e) {
    return Status::error(fmt::format("bench: serve's HTTP: {}", e.what()));
  }
  serve.value().stop(SIGTERM);
  return r;
}

}  // namespace qudao
