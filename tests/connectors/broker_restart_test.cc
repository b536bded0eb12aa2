// Broker faults against the real broker started by tools/kafka.sh: while `qudao serve` ingests, the
// broker is stopped and started again, several times. serve must ride it out by itself: every
// record applied once (the same per-partition digests as a clean replay after the broker is back),
// and every dispatch request on the dispatch topic exactly once.
//
// Every restart falls in the middle of ingest. The simulated workload is produced by the test in
// kRestarts + 1 slices at a steady kPaceEventsPerSecond, each slice only once the engine has caught
// up with the one before; the broker is stopped as soon as the engine has committed records of the
// slice under way, so that records are still being produced (and queued by the producer while the
// broker is down) when it goes away. The test asserts it: at each stop the engine has committed
// more than the slices before and less than the whole workload, and the slice is not all produced.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "events/event_file.h"
#include "tests/connectors/broker_faults.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;
using std::chrono::seconds;

namespace {

constexpr int kRestarts = 3;
constexpr int kRegions = 8, kDays = 60;  // ~132,000 events
constexpr std::uint64_t kPaceEventsPerSecond = 10'000;  // a slice of ~33,000 takes ~3 s
constexpr std::uint64_t kPaceStepEvents = 100;
constexpr auto kBrokerDown = seconds(2);

// Produces `records` from its own thread in `slices` equal slices, each at kPaceEventsPerSecond and
// only once release() lets it; waits for room in the producer's queue while the broker is down.
class PacedProducer {
 public:
  PacedProducer(const KafkaSettings& kafka, std::string topic, std::vector<std::pair<std::string, std::string>> records,
                int slices)
      : topic_(std::move(topic)), records_(std::move(records)), slices_(slices) {
    auto p = KafkaProducer::open(kafka);
    REQUIRE_MESSAGE(p.is_ok(), p.status().message());
    producer_ = p.take();
    thread_ = std::thread([this] { run(); });
  }
  ~PacedProducer() {
    abandon_ = true;
    {
      std::lock_guard lock(mutex_);
      released_ = slices_;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
  }
  PacedProducer(const PacedProducer&) = delete;
  PacedProducer& operator=(const PacedProducer&) = delete;

  void release(int slice) {
    {
      std::lock_guard lock(mutex_);
      released_ = std::max(released_, slice + 1);
    }
    cv_.notify_all();
  }
  std::uint64_t slice_begin(int slice) const { return slice == 0 ? 0 : slice_end(slice - 1); }
  std::uint64_t slice_end(int slice) const { return records_.size() * static_cast<std::size_t>(slice + 1) / slices_; }
  std::uint64_t queued() const { return queued_.load(); }  // handed to the producer so far

  // After the last slice is released: waits until every record is acknowledged.
  Status finish() {
    thread_.join();
    if (!error_.is_ok()) return error_;
    return producer_->flush(std::chrono::minutes(2));
  }

 private:
  void run() {
    for (int slice = 0; slice < slices_; ++slice) {
      {
        std::unique_lock lock(mutex_);
        cv_.wait(lock, [&] { return released_ > slice; });
      }
      const auto started = std::chrono::steady_clock::now();
      const std::uint64_t begin = slice_begin(slice);
      for (std::uint64_t i = begin; i < slice_end(slice) && !abandon_.load(); ++i) {
        const auto& [key, value] = records_[i];
        Status s = producer_->produce(topic_, {reinterpret_cast<const std::uint8_t*>(key.data()), key.size()},
                                      {reinterpret_cast<const std::uint8_t*>(value.data()), value.size()});
        if (!s.is_ok()) {
          error_ = s;
          return;
        }
        ++queued_;
        if (const std::uint64_t done = i + 1 - begin; done % kPaceStepEvents == 0) {
          std::this_thread::sleep_until(started + std::chrono::microseconds(done * 1'000'000 / kPaceEventsPerSecond));
        }
      }
    }
  }

  std::string topic_;
  std::vector<std::pair<std::string, std::string>> records_;
  int slices_;
  std::unique_ptr<KafkaProducer> producer_;
  std::mutex mutex_;
  std::condition_variable cv_;
  int released_ = 0;
  std::atomic<bool> abandon_{false};  // the test failed: stop producing
  std::atomic<std::uint64_t> queued_{0};
  Status error_ = Status::ok();
  std::thread thread_;
};

std::vector<std::pair<std::string, std::string>> read_event_file(const std::string& path) {
  auto reader = EventFileReader::open(path);
  REQUIRE_MESSAGE(reader.is_ok(), reader.status().message());
  std::vector<std::pair<std::string, std::string>> out;
  for (;;) {
    auto r = reader.value()->next();
    REQUIRE_MESSAGE(r.is_ok(), r.status().message());
    if (!r.value()) return out;
    out.emplace_back(std::string(r.value()->key),
                     std::string(reinterpret_cast<const char*>(r.value()->value.data()), r.value()->value.size()));
  }
}

// What the engine and the producer had done when the broker was stopped.
struct Stop {
  std::uint64_t committed;       // serve's committed consumed count
  std::uint64_t queued;          // records handed to the producer
  std::uint64_t slice_begin, slice_end;
};

}  // namespace

TEST_CASE("broker faults: serve rides out the broker stopping and starting during ingest; nothing lost, nothing twice") {
  BrokerFaults env("faults");
  const std::string file = env.dir.path() + "/workload.events";
  {
    auto [rc, out] = run({env.bin, "simulate", "--out", file, "--partitions", "4", "--seed", "5", "--regions",
                          std::to_string(kRegions), "--days", std::to_string(kDays)},
                         env.dir.path());
    REQUIRE_MESSAGE(rc == 0, "simulate failed, see " << env.dir.path() << "/stderr.log");
  }
  auto records = read_event_file(file);
  const std::uint64_t produced = records.size();
  REQUIRE(ensure_topic(env.kafka, env.topic, 4, seconds(30)).is_ok());

  // Commits every 20 ms: the restarts fall in the middle of ingest and of the relay's sends.
  auto [faulty, faulty_port] = env.serve("faulty", {"--commit-interval-ms", "20"});
  PacedProducer producer(env.kafka, env.topic, std::move(records), kRestarts + 1);
  std::vector<Stop> stops;
  for (int i = 0; i < kRestarts; ++i) {
    const std::uint64_t begin = producer.slice_begin(i);
    producer.release(i);
    // The engine has committed records of this slice: it is ingesting it.
    REQUIRE_MESSAGE(eventually([&, p = faulty_port] { return BrokerFaults::consumed(p) > begin; }, seconds(120)),
                    "restart " << i << ": serve did not ingest past " << begin << "; see " << env.log_path("faulty"));
    stops.push_back({BrokerFaults::consumed(faulty_port), producer.queued(), begin, producer.slice_end(i)});
    env.broker("stop");
    std::this_thread::sleep_for(kBrokerDown);
    env.broker("start");
    // The slice ends, and the engine catches up with it before the next begins.
    REQUIRE_MESSAGE(eventually([&, p = faulty_port, end = producer.slice_end(i)] { return BrokerFaults::consumed(p) >= end; },
                               seconds(120)),
                    "restart " << i << ": serve did not catch up after the broker came back; see "
                               << env.log_path("faulty"));
  }
  producer.release(kRestarts);
  const Status flushed = producer.finish();
  REQUIRE_MESSAGE(flushed.is_ok(), flushed.message());
  REQUIRE_MESSAGE(eventually([&, p = faulty_port] { return BrokerFaults::consumed(p) >= produced; }, seconds(180)),
                  "serve did not catch up after the broker restarts; see " << env.log_path("faulty"));

  // Every restart fell during ingest: records of the slice under way were committed before the
  // stop and records of it were still to be committed (whether or not the producer had sent them
  // all yet: how far the paced producer got depends on the machine's load, so it is reported only).
  int restarts_mid_ingest = 0, while_producing = 0;
  for (std::size_t i = 0; i < stops.size(); ++i) {
    const Stop& s = stops[i];
    INFO("restart " << i << ": committed " << s.committed << ", queued " << s.queued << ", slice [" << s.slice_begin
                    << ", " << s.slice_end << "), workload " << produced);
    CHECK(s.committed > s.slice_begin);
    CHECK(s.committed > 0);
    CHECK(s.committed < produced);
    CHECK(s.committed < s.slice_end);
    restarts_mid_ingest += s.committed > s.slice_begin && s.committed < s.slice_end;
    while_producing += s.queued < s.slice_end;
  }

  // A clean run on topics of its own: what the faulty one must have reached.
  const json clean_status = env.clean_run("clean", produced);
  const std::uint64_t clean_sent = clean_status["outbox"]["delivered"].get<std::uint64_t>();
  // The relay resumes by itself once the broker is back: every dispatch request gets out.
  CHECK_MESSAGE(eventually([&, p = faulty_port] { return BrokerFaults::relayed(p) >= clean_sent; }, seconds(120)),
                "the relay did not deliver " << clean_sent << " dispatch requests after the broker came back; see "
                                             << env.log_path("faulty"));
  const json faulty_status = BrokerFaults::status(faulty_port);
  faulty->kill(SIGTERM);
  CHECK(faulty->wait() == 0);

  CHECK(faulty_status["totals"]["consumed"] == produced);
  CHECK(faulty_status["totals"]["applied"] == produced);
  CHECK(faulty_status["partitions"] == clean_status["partitions"]);  // offsets, counts, digests

  const DispatchRecords faulty_dispatches = env.read_dispatches("faulty");
  const DispatchRecords clean_dispatches = env.read_dispatches("clean");
  CHECK_MESSAGE(repeats(faulty_dispatches) == 0, "dispatch requests sent twice");
  CHECK(faulty_dispatches == clean_dispatches);
  CHECK(!clean_dispatches.empty());
  std::string at;
  for (const Stop& s : stops) at += fmt::format(" {}/{}", s.committed, produced);
  MESSAGE(fmt::format("{} broker restarts ({} while serve was ingesting, {} while the producer was too; committed "
                      "at each stop:{}); {} events applied once; {} dispatch requests, {} repeated, {} in the clean run",
                      kRestarts, restarts_mid_ingest, while_producing, at, faulty_status["totals"]["applied"].get<std::uint64_t>(),
                      faulty_dispatches.size(), repeats(faulty_dispatches), clean_dispatches.size()));
}

}  // namespace qudao
