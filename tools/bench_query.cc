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
constexpr int kClientThreadRtPriority = 1;
// The warm-up ends once serve is within this much of the schedule, or kWarmupExtraMax after
// options.warmup regardless (a rate serve cannot keep up with shows as lag in the window), and in
// any case while at least kWindowMin of the workload is left to produce: a fast machine spends the
// medium preset in ~20 s, and a serve still behind then must be measured, not abandoned.
constexpr double kCaughtUpSeconds = 0.25;
constexpr std::chrono::seconds kWarmupExtraMax{20};
constexpr std::chrono::seconds kWindowMin{8};

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
  const bool live = options.pre_produced_topic.empty();
  const double rate = options.ingest_rate_events_per_s;
  const std::string topic =
      live ? fmt::format("qudao-bench-query70-{}-{}", getpid(), Clock::now().time_since_epoch().count() % 1'000'000)
           : options.pre_produced_topic;
  if (live) {
    if (Status s = ensure_topic(kafka.value(), topic, kPartitions, std::chrono::seconds(30)); !s.is_ok()) return s;
  }
  TempDir dir;
  dir.path = (fs::temp_directory_path() / "qudao-bench-query70-XXXXXX").string();
  if (mkdtemp(dir.path.data()) == nullptr) return Status::error("cannot create a temporary directory");
  auto tokens = write_tokens_file(dir.path);
  if (!tokens.is_ok()) return tokens.status();
  const std::uint16_t port = free_port();
  std::vector<std::string> limit;
  if (!live) limit = {"--max-events-per-s", fmt::format("{:.0f}", rate)};
  auto serve = ServeProcess::start(qudao_binary, kafka_args, topic, dir.path + "/data", port, tokens.value(), limit);
  if (!serve.is_ok()) return serve.status();
  spdlog::info("bench: query70{}: serve is pid {}, topic {}{}",
               options.client == QueryClient::on ? "" : " baseline (no queries)", serve.value().pid(), topic,
               live ? " (produced live)" : fmt::format(" (pre-produced, read at most {:.0f} events/s)", rate));

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
    std::unique_ptr<KafkaProducer> producer;
    if (live) {
      auto opened = KafkaProducer::open(kafka.value());
      if (!opened.is_ok()) return opened.status();
      producer = opened.take();
    }

    // Pre-produced: serve's limit starts at its first poll, right after the assignment just seen.
    const PacedSchedule schedule{Clock::now() + (live ? std::chrono::milliseconds(200) : std::chrono::milliseconds(0)),
                                 rate};
    auto due_by = [&](Clock::time_point t) {
      const double s = std::chrono::duration<double>(t - schedule.start).count();
      return s < 0 ? 0 : static_cast<std::uint64_t>(std::floor(s * rate)) + 1;
    };
    // Set by this thread (the status poller): the window's start (steady_clock ticks, 0
    // until it starts) and its end, which also stops the producer.
    std::atomic<std::int64_t> window_start_ns{0};
    std::atomic<bool> window_over{false};
    std::atomic<std::uint64_t> queued{live ? 0 : records.size()};
    std::atomic<bool> produced_all{false};

    Status produce_status = Status::ok();
    std::thread produce([&] {
      if (!live) return;
      produce_status = produce_paced(schedule, records.size(), window_over, [&](std::uint64_t i) {
        queued.store(i + 1, std::memory_order_relaxed);
        return producer->produce(topic, records[i].key, records[i].value);
      });
      const std::int64_t started = window_start_ns.load();
      if (started != 0) r.producer_done_seconds = static_cast<double>(Clock::now().time_since_epoch().count() - started) / 1e9;
      if (produce_status.is_ok()) produce_status = producer->flush(std::chrono::seconds(60));
      produced_all.store(true);
    });
    // The workload runs out: live, the producer has written it all; pre-produced, the schedule
    // reaches the topic's end within two polls (serve may not run dry inside a window).
    auto running_out = [&](Clock::time_point t) {
      return live ? produced_all.load() : due_by(t + 2 * kStatusPollPeriod) >= records.size();
    };

    constexpr std::size_t kTargets = std::size(kQueryTargets);
    std::vector<double> samples_ms[kTargets];
    std::uint64_t not_found[kTargets] = {};
    std::string query_failure;
    std::vector<double> worst_per_second_ms;  // by the second in which the request was due
    const char* const label = options.client == QueryClient::on ? "query70" : "query70 baseline (no queries)";
    std::thread queries([&] {
      if (options.client == QueryClient::off) return;
      // The measuring client at a fixed higher priority (best effort, whatever serve's settings), so
      // that its own waits for a core are not charged to serve: real-time like serve's HTTP thread
      // where the kernel allows it (a nice value weighs only within the bench's own session), else
      // nice -10.
      if (!set_this_thread_realtime(kClientThreadRtPriority)) set_this_thread_nice(kClientThreadNice);
      while (window_start_ns.load() == 0 && !window_over.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      const Clock::time_point start{Clock::duration{window_start_ns.load()}};
      try {
        // Connected now, not before the warm-up: serve closes a keep-alive connection idle for its
        // read timeout (10 s), which a long warm-up would exceed.
        BenchClient query_client(port, kBenchToken);
        std::uint64_t n = 0;
        for (auto due = start; !window_over.load(std::memory_order_relaxed); due += options.request_interval, ++n) {
          std::this_thread::sleep_until(due);
          const std::size_t k = n % kTargets;
          const auto [status, body] = query_client.request(http::verb::get, kQueryTargets[k].target, "");
          const double ms = std::chrono::duration<double, std::milli>(Clock::now() - due).count();
          samples_ms[k].push_back(ms);
          const auto second = static_cast<std::size_t>(std::chrono::duration<double>(due - start).count());
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

    // The status poller, on this thread: the warm-up ends once it has lasted options.warmup and
    // serve has caught up (or at warmup_cap regardless); the window lasts options.duration_max
    // (less if the workload runs out); then serve must consume the rest.
    const std::uint64_t caught_up_lag = static_cast<std::uint64_t>(rate * kCaughtUpSeconds);
    const auto workload_span = std::chrono::duration<double>(static_cast<double>(records.size()) / rate);
    const auto warmup_cap = std::max<Clock::duration>(
        std::chrono::duration_cast<Clock::duration>(options.warmup),
        std::min<Clock::duration>(std::chrono::duration_cast<Clock::duration>(options.warmup + kWarmupExtraMax),
                                  std::chrono::duration_cast<Clock::duration>(workload_span - kWindowMin)));
    double cpu0 = 0;
    std::uint64_t consumed_before_window = 0, due_before_window = 0;
    Clock::time_point window_start{}, window_end{};
    Status poll_status = Status::ok();
    std::vector<std::uint64_t> lag_per_second;  // the most at a poll in each second of the window
    // Of that lag, the events the broker had not yet acknowledged to the producer: the part that is
    // the producer's or the broker's, not serve's.
    std::vector<std::uint64_t> unacked_per_second;
    for (auto next = schedule.start;; next += kStatusPollPeriod) {
      if (stop.load(std::memory_order_relaxed)) {
        poll_status = Status::error("bench: stopped");
        break;
      }
      std::this_thread::sleep_until(next);
      const auto asked = Clock::now();
      auto p = progress(status_client);
      if (!p.is_ok()) {
        poll_status = p.status();
        break;
      }
      next = std::max(next, asked - kStatusPollPeriod);  // a slow answer delays the next poll, never bunches them
      const std::uint64_t consumed = p.value().consumed;
      const bool over = window_over.load();
      const std::uint64_t due_so_far = live && (over || produced_all.load())
                                           ? queued.load()
                                           : std::min<std::uint64_t>(due_by(asked), records.size());
      const std::uint64_t lag = due_so_far > consumed ? due_so_far - consumed : 0;
      if (window_start_ns.load() == 0) {
        const auto warm = asked - schedule.start;
        if (running_out(asked)) {
          poll_status = Status::error("bench: the workload ran out during the warm-up");
          break;
        }
        // A window that started behind the schedule would consume the backlog on top of the
        // schedule: with window_at too, it starts only once serve has caught up (or at the cap).
        const Clock::duration earliest = std::max<Clock::duration>(
            std::chrono::duration_cast<Clock::duration>(options.warmup),
            options.window_at ? std::chrono::duration_cast<Clock::duration>(*options.window_at) : Clock::duration{0});
        const bool start_now = (warm >= earliest && lag <= caught_up_lag) || warm >= std::max(warmup_cap, earliest);
        if (start_now) {
          window_start = asked;
          window_start_ns.store(asked.time_since_epoch().count());
          cpu0 = serve.value().cpu_seconds();
          consumed_before_window = consumed;
          due_before_window = due_so_far;
          r.warmup_seconds = std::chrono::duration<double>(warm).count();
          r.lag_start_events = lag;
        }
        continue;
      }
      if (!over) {
        r.lag_max_events = std::max(r.lag_max_events, lag);
        const auto second = static_cast<std::size_t>(std::chrono::duration<double>(asked - window_start).count());
        if (second >= lag_per_second.size()) lag_per_second.resize(second + 1);
        lag_per_second[second] = std::max(lag_per_second[second], lag);
        const std::uint64_t acked = live ? producer->delivered() : due_so_far;
        if (second >= unacked_per_second.size()) unacked_per_second.resize(second + 1);
        unacked_per_second[second] = std::max(unacked_per_second[second], due_so_far > acked ? due_so_far - acked : 0);
        if (asked - window_start >= options.duration_max || running_out(asked)) {
          window_end = asked;
          window_over.store(true);
          r.window_seconds = std::chrono::duration<double>(asked - window_start).count();
          r.serve_cpu_seconds = serve.value().cpu_seconds() - cpu0;
          r.produced = due_so_far - due_before_window;
          r.consumed_in_window = consumed - consumed_before_window;
          r.lag_end_events = lag;
        }
        continue;
      }
      if (!live) break;  // nothing more to wait for: the topic holds more than the window
      if (produced_all.load() && consumed >= queued.load()) {
        r.catch_up_ms = std::chrono::duration<double, std::milli>(asked - window_end).count();
        break;
      }
      if (asked > window_end + kQueryCatchUpMax) {
        poll_status = Status::error(fmt::format("bench: serve consumed only {} of {} events {} s after the window",
                                                consumed, queued.load(), kQueryCatchUpMax.count()));
        break;
      }
    }
    window_over.store(true);  // whatever ended the loop: the producer and the client stop
    produce.join();
    queries.join();
    std::string worst, lags;
    for (double ms : worst_per_second_ms) worst += fmt::format(" {:.0f}", ms);
    for (std::size_t i = 0; i < lag_per_second.size(); ++i) {
      lags += fmt::format(" {}", lag_per_second[i]);
      if (live && i < unacked_per_second.size()) lags += fmt::format(" ({} unacked)", unacked_per_second[i]);
    }
    if (options.client == QueryClient::on) {
      spdlog::info("bench: query70: worst latency of the requests due in each second, ms:{}", worst);
    }
    spdlog::info("bench: {}: serve's largest lag in each second, events:{}", label, lags);
    if (!produce_status.is_ok()) return produce_status;
    if (!query_failure.empty()) return Status::error(fmt::format("bench: query: {}", query_failure));
    if (!poll_status.is_ok()) return poll_status;
    for (std::size_t k = 0; k < kTargets && options.client == QueryClient::on; ++k) {
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
