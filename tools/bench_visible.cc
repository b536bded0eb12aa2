#include "tools/bench_visible.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "events/encode.h"
#include "tools/bench_serve.h"
#include "tools/service.h"

namespace qudao {
namespace {

using Clock = std::chrono::steady_clock;
using nlohmann::json;
namespace fs = std::filesystem;

constexpr const char* kHqToken = "qudao-bench-visible-hq-token-0123";
constexpr const char* kIngestToken = "qudao-bench-visible-ingest-token-0123";
constexpr std::uint64_t kStore = 1;
constexpr std::uint64_t kVisibleSku = 1, kPostSku = 2;
constexpr const char* kRegion = "East";
constexpr std::chrono::milliseconds kPollPeriod{1};
// Event ids are {nonce + one of these, n}: the visible row's, the post row's and the store's own.
constexpr std::uint64_t kVisibleIds = 0, kPostIds = 1, kSetupIds = 2;
// After the last event is produced, how long the engine may take to show it before the run fails.
constexpr std::chrono::seconds kCatchUpMax{120};

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

// A fresh topic and data directory with an engine serving them in this process, and one store of
// region East defined.
class Bench {
 public:
  static Result<std::unique_ptr<Bench>> start(const KafkaSettings& kafka, const char* what) {
    std::unique_ptr<Bench> b(new Bench());
    std::string tmpl = (fs::temp_directory_path() / fmt::format("qudao-bench-{}-XXXXXX", what)).string();
    if (mkdtemp(tmpl.data()) == nullptr) return Status::error("cannot create a temporary directory");
    b->dir_ = tmpl;
    b->kafka_ = kafka;
    b->topic_ = fmt::format("qudao-bench-{}-{}-{}", what, getpid(), Clock::now().time_since_epoch().count() % 1'000'000);
    if (Status s = ensure_topic(kafka, b->topic_, 8, std::chrono::seconds(30)); !s.is_ok()) return s;
    auto tokens = AccessTokens::parse(json{{"tokens",
                                            {{{"name", "hq"}, {"role", "hq"}, {"token", kHqToken}},
                                             {{"name", "ingest"}, {"role", "ingest"}, {"token", kIngestToken}}}}}
                                          .dump(),
                                      "bench tokens");
    if (!tokens.is_ok()) return tokens.status();
    ServiceOptions o;
    o.kafka = kafka;
    o.topic = b->topic_;
    o.data_dir = b->dir_ + "/data";
    o.tokens = tokens.take();
    o.http.port = 0;
    auto service = Service::open(o);
    if (!service.is_ok()) return service.status();
    b->service_ = service.take();
    b->runner_ = std::thread([raw = b.get()] {
      if (Status s = raw->service_->run(raw->stop_); !s.is_ok()) spdlog::error("bench: serve stopped: {}", s.message());
    });
    // The store, produced as any producer would, and visible before the clock starts; the producer
    // stays for the timed run, warm (its idempotence id and metadata fetched).
    auto producer = KafkaProducer::open(kafka);
    if (!producer.is_ok()) return producer.status();
    b->producer_ = producer.take();
    EventWriter w;
    const auto defined = w.location_defined(b->header(kSetupIds, 0), LocationId{kStore}, fb::LocationKind::Store,
                                            "bench store", "Hangzhou", kRegion);
    if (Status s = b->producer_->produce(b->topic_, b->key(), defined); !s.is_ok()) return s;
    if (Status s = b->producer_->flush(std::chrono::seconds(30)); !s.is_ok()) return s;
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    while (b->on_hand(kVisibleSku) == std::nullopt) {
      if (Clock::now() > deadline) return Status::error("bench: the store was not visible within 30 s");
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return b;
  }

  ~Bench() {
    stop_.store(true);
    if (runner_.joinable()) runner_.join();
    service_.reset();
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }

  KafkaProducer& producer() { return *producer_; }
  std::span<const std::uint8_t> key() const { return {reinterpret_cast<const std::uint8_t*>(kRegion), 4}; }
  Header header(std::uint64_t hi, std::uint64_t lo) const {
    return Header{EventId{nonce_ + hi, lo + 1}, TimeMs{epoch_ms_ + static_cast<std::int64_t>(lo / 1000)}, "bench"};
  }
  std::uint16_t port() const { return service_->http_port(); }
  std::chrono::microseconds last_commit_latency() const { return service_->pipeline().stats().last_commit_latency; }
  const std::string& topic() const { return topic_; }

  // The store's on_hand of `sku` as a query shows it; nothing while the store is not visible.
  std::optional<std::int64_t> on_hand(std::uint64_t sku) {
    if (!client_) client_ = std::make_unique<BenchClient>(port(), kHqToken);
    auto [status, body] = client_->request(boost::beast::http::verb::get,
                                           fmt::format("/v1/stock?location={}&sku={}", kStore, sku), "");
    if (status != 200) return std::nullopt;
    const json j = json::parse(body);
    return j["skus"].empty() ? 0 : j["skus"][0]["on_hand"].get<std::int64_t>();
  }

 private:
  Bench() = default;
  std::string dir_, topic_;
  KafkaSettings kafka_;
  std::unique_ptr<Service> service_;
  std::unique_ptr<KafkaProducer> producer_;
  std::atomic<bool> stop_{false};
  std::thread runner_;
  std::unique_ptr<BenchClient> client_;
  // Ids unique per run, so that a rerun against the same broker is never a duplicate.
  std::uint64_t nonce_ = static_cast<std::uint64_t>(Clock::now().time_since_epoch().count());
  std::int64_t epoch_ms_ =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
};

}  // namespace

Latencies percentiles(std::vector<double>& ms) {
  std::sort(ms.begin(), ms.end());
  auto at = [&](double q) {
    return ms.empty() ? 0 : ms[std::min(ms.size() - 1, static_cast<std::size_t>(q * static_cast<double>(ms.size())))];
  };
  return Latencies{at(0.5), at(0.99), at(0.999), ms.empty() ? 0 : ms.back()};
}


Status produce_paced(const PacedSchedule& schedule, std::uint64_t count, const std::atomic<bool>& stop,
                     const std::function<Status(std::uint64_t)>& produce_one) {
  std::uint64_t i = 0;
  while (i < count && !stop.load(std::memory_order_relaxed)) {
    const auto now = Clock::now();
    // Every record whose slot has come, at once: a producer that fell behind catches up, and the
    // latency of each still counts from its slot.
    while (i < count && schedule.due(i) <= now) {
      if (Status s = produce_one(i); !s.is_ok()) return s;
      ++i;
    }
    if (i < count) std::this_thread::sleep_until(std::min(schedule.due(i), now + kPacedSleepMax));
  }
  return Status::ok();
}

Result<VisibleResult> bench_visible(const KafkaSettings& kafka, const VisibleOptions& options,
                                    const std::atomic<bool>& stop) {
  auto started = Bench::start(kafka, "visible");
  if (!started.is_ok()) return started.status();
  Bench& b = *started.value();
  const auto events = static_cast<std::uint64_t>(options.rate_events_per_s * static_cast<double>(options.duration.count()));
  const PacedSchedule schedule{Clock::now() + std::chrono::milliseconds(100), options.rate_events_per_s};
  const auto t0 = schedule.start;
  auto due = [&](std::uint64_t i) { return schedule.due(i); };
  const double period_s = 1.0 / options.rate_events_per_s;

  KafkaProducer& producer = b.producer();
  Status produce_status = Status::ok();
  double produce_seconds = 0;
  const double cpu0 = cpu_seconds();
  std::thread produce([&] {
    EventWriter w;
    produce_status = produce_paced(schedule, events, stop, [&](std::uint64_t i) {
      const auto bytes = w.scan_out(b.header(kVisibleIds, i), LocationId{kStore}, SkuId{kVisibleSku}, Quantity{1}, "");
      return producer.produce(b.topic(), b.key(), bytes);
    });
    produce_seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    if (produce_status.is_ok()) produce_status = producer.flush(std::chrono::seconds(60));
  });

  std::vector<double> latency_ms;
  latency_ms.reserve(events);
  std::vector<double> worst_per_second_ms;  // by the second in which the event was due
  // Where the events not yet visible were, at each poll, in milliseconds of the schedule: due but
  // not yet acknowledged by the broker (the producer's and the broker's part), or acknowledged but
  // not yet visible (the consumer's fetch and the engine's part); the most in each second of the run.
  const std::uint64_t acked_before = producer.delivered();  // the store's definition
  std::vector<double> unacked_per_second_ms, unseen_per_second_ms;
  std::chrono::microseconds worst_commit{0};  // of the RocksDB commits seen by the polls
  std::uint64_t seen = 0;
  Status poll_status = Status::ok();
  const auto give_up = due(events) + kCatchUpMax;
  try {
    for (auto next = t0; seen < events && !stop.load(std::memory_order_relaxed); next += kPollPeriod) {
      std::this_thread::sleep_until(next);
      const auto visible = b.on_hand(kVisibleSku);
      const auto now = Clock::now();
      if (!visible) {
        poll_status = Status::error("bench: the store's stock query failed");
        break;
      }
      worst_commit = std::max(worst_commit, b.last_commit_latency());
      const auto shown = static_cast<std::uint64_t>(std::max<std::int64_t>(0, -*visible));
      {
        const double since_s = std::chrono::duration<double>(now - t0).count();
        const auto due_now = static_cast<std::uint64_t>(
            std::clamp(since_s * options.rate_events_per_s, 0.0, static_cast<double>(events)));
        const std::uint64_t acked = producer.delivered() - acked_before;
        const auto second = static_cast<std::size_t>(std::max(0.0, since_s));
        if (second >= unacked_per_second_ms.size()) {
          unacked_per_second_ms.resize(second + 1);
          unseen_per_second_ms.resize(second + 1);
        }
        const double ms_per_event = 1e3 / options.rate_events_per_s;
        unacked_per_second_ms[second] = std::max(
            unacked_per_second_ms[second], static_cast<double>(due_now > acked ? due_now - acked : 0) * ms_per_event);
        unseen_per_second_ms[second] = std::max(
            unseen_per_second_ms[second], static_cast<double>(acked > shown ? acked - shown : 0) * ms_per_event);
      }
      for (; seen < std::min(shown, events); ++seen) {
        const double ms = std::chrono::duration<double, std::milli>(now - due(seen)).count();
        latency_ms.push_back(ms);
        const auto second = static_cast<std::size_t>(static_cast<double>(seen) * period_s);
        if (second >= worst_per_second_ms.size()) worst_per_second_ms.resize(second + 1);
        worst_per_second_ms[second] = std::max(worst_per_second_ms[second], ms);
      }
      if (now > give_up) {
        poll_status = Status::error(fmt::format("bench: only {} of {} events visible {} s after the last was due", seen,
                                                events, kCatchUpMax.count()));
        break;
      }
      next = std::max(next, now - kPollPeriod);  // a slow query delays the next poll, never bunches them
    }
  } catch (const std::exception& e) {
    poll_status = Status::error(fmt::format("bench: stock query: {}", e.what()));
  }
  produce.join();
  if (!produce_status.is_ok()) return produce_status;
  if (!poll_status.is_ok()) return poll_status;
  std::string worst, backlog;
  for (double ms : worst_per_second_ms) worst += fmt::format(" {:.0f}", ms);
  for (std::size_t i = 0; i < unacked_per_second_ms.size(); ++i) {
    backlog += fmt::format(" {:.0f}/{:.0f}", unacked_per_second_ms[i], unseen_per_second_ms[i]);
  }
  spdlog::info("bench: visible: worst latency of the events due in each second, ms:{}; slowest commit seen {:.0f} ms",
               worst, static_cast<double>(worst_commit.count()) / 1e3);
  spdlog::info("bench: visible: the most events in each second not yet acknowledged by the broker / acknowledged but "
               "not yet visible, in ms of the schedule:{}", backlog);
  VisibleResult r;
  r.events = seen;
  r.seconds = produce_seconds;
  r.cpu_seconds = cpu_seconds() - cpu0;
  r.latency = percentiles(latency_ms);
  r.worst_commit_ms = static_cast<double>(worst_commit.count()) / 1e3;
  for (double ms : unacked_per_second_ms) r.unacked_max_ms = std::max(r.unacked_max_ms, ms);
  for (double ms : unseen_per_second_ms) r.unseen_max_ms = std::max(r.unseen_max_ms, ms);
  return r;
}

Result<PostResult> bench_post(const KafkaSettings& kafka, const VisibleOptions& options, const std::atomic<bool>& stop) {
  auto started = Bench::start(kafka, "post");
  if (!started.is_ok()) return started.status();
  Bench& b = *started.value();
  std::atomic<std::uint64_t> next_batch{0}, accepted{0}, requests{0};
  std::mutex mutex;  // guards latency_ms and failure
  std::vector<double> latency_ms;
  std::string failure;
  const double cpu0 = cpu_seconds();
  const auto start = Clock::now();
  const auto end = start + options.post_duration;
  std::vector<std::thread> clients;
  for (int c = 0; c < options.post_clients; ++c) {
    clients.emplace_back([&] {
      try {
        BenchClient client(b.port(), kIngestToken);
        std::vector<double> mine;
        std::string body;
        while (Clock::now() < end && !stop.load(std::memory_order_relaxed)) {
          const std::uint64_t batch = next_batch.fetch_add(1);
          body = "[";
          for (std::size_t e = 0; e < kPostBatchEvents; ++e) {
            const Header h = b.header(kPostIds, batch * kPostBatchEvents + e);
            body += fmt::format(R"({}{{"event_id":{{"hi":{},"lo":{}}},"occurred_at_ms":{},"source":"bench","schema_version":1,)"
                                R"("payload_type":"ScanOut","payload":{{"store":{},"sku":{},"qty":1}}}})",
                                e == 0 ? "" : ",", h.id.hi, h.id.lo, h.occurred_at.value, kStore, kPostSku);
          }
          body += "]";
          const auto sent = Clock::now();
          auto [status, answer] = client.request(boost::beast::http::verb::post, "/v1/events", std::move(body));
          mine.push_back(std::chrono::duration<double, std::milli>(Clock::now() - sent).count());
          requests.fetch_add(1);
          if (status != 202) throw std::runtime_error(fmt::format("POST /v1/events: {} {}", status, answer));
          accepted.fetch_add(kPostBatchEvents);
        }
        std::lock_guard lock(mutex);
        latency_ms.insert(latency_ms.end(), mine.begin(), mine.end());
      } catch (const std::exception& e) {
        std::lock_guard lock(mutex);
        failure = e.what();
      }
    });
  }
  for (std::thread& t : clients) t.join();
  if (!failure.empty()) return Status::error(fmt::format("bench: {}", failure));
  PostResult r;
  r.events = accepted.load();
  r.requests = requests.load();
  r.seconds = std::chrono::duration<double>(Clock::now() - start).count();
  r.cpu_seconds = cpu_seconds() - cpu0;
  r.latency = percentiles(latency_ms);
  return r;
}

}  // namespace qudao
