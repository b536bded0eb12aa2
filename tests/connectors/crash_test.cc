// Crash safety against the real broker started by tools/kafka.sh. `qudao serve` is killed with
// SIGKILL again and again on one data directory while `qudao simulate` keeps producing, then started
// once more to catch up; a fresh `qudao serve` on a new directory replays the same topic from
// offset 0. The crashed-and-restarted ledger must equal the clean replay partition by partition
// (next offset, outcome counts, digest), and both must show the simulator's expected stock: a
// kill -9 at any instant loses nothing and applies nothing twice. Each test is named after the
// instant it crashes at:
//
//   kill -9 at random instants while ingesting   the test sends SIGKILL 50–700 ms after the start
//   crash_after_batch_before_offset_commit       QUDAO_CRASH_POINT=after_commit_before_offset_commit:<n>
//   crash_mid_batch                              QUDAO_CRASH_POINT=mid_batch:<n>   (engine/crash_point.h)
//   crash_during_outbox_send                     QUDAO_CRASH_POINT=outbox_relay_mid_send:<n>
//
// Every test also checks the outbox: the crashed instance's dispatch topic must hold exactly the
// records of the clean replay's (which sends to a dispatch topic of its own), each exactly once, and
// every dispatch id (the DispatchRequested event id, what warehouses deduplicate on) exactly once.
//
// QUDAO_CRASH_CYCLES (default 10, ~30 s) is the number of random kills; each named crash point gets
// half as many cycles. Every test prints its seed; QUDAO_CRASH_SEED=<seed> replays the same kill
// schedule (the instants, not the broker's timing). The long run, 250 kills (50 of them during an
// outbox send) over ~24 million events, took 38 minutes on 2 cores shared with other builds, more
// than ctest's TIMEOUT of 900 s for this test: README "Longer checks" runs the test binary directly
// for it. On otherwise idle cores, through ctest:
//
//   QUDAO_CRASH_CYCLES=100 ctest --test-dir build -R crash --output-on-failure
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <filesystem>
#include <map>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <tuple>

#include "connectors/kafka.h"
#include "tests/process.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kPartitions = 4;
// The producer partitions by murmur2 of the region name: the first 23 region names reach all 4
// partitions (the first 22 leave partition 1 empty).
constexpr int kRegions = 23;
constexpr std::uint64_t kWorkloadSeed = 7;
constexpr int kFirstDays = 25;   // produced before the first cycle: ~160,000 events
constexpr int kStreamDays = 10;  // then, while the cycles run, one simulate run after another of ~63,000
constexpr int kDaysMax = 3650;   // simulate's --days limit
constexpr int kCyclesDefault = 10;
constexpr int kLifeMsMin = 50, kLifeMsMax = 700;
constexpr int kCrashHitsMin = 2, kCrashHitsMax = 20;
constexpr auto kCrashWait = seconds(60);
constexpr auto kProbeInterval = milliseconds(100);
constexpr int kCommitIntervalMs = 20;  // during crash cycles: many commits, many instants next to one
constexpr std::size_t kLogTailBytes = 6000;

int crash_cycles() {
  const char* v = std::getenv("QUDAO_CRASH_CYCLES");
  if (v == nullptr || *v == '\0') return kCyclesDefault;
  const int n = std::atoi(v);
  REQUIRE_MESSAGE(n > 0, "QUDAO_CRASH_CYCLES must be a positive number, got '" << v << "'");
  return n;
}

// One seed per run, shared by the tests: from QUDAO_CRASH_SEED to replay a run, else random.
std::uint64_t crash_seed() {
  static const std::uint64_t seed = []() -> std::uint64_t {
    const char* v = std::getenv("QUDAO_CRASH_SEED");
    if (v != nullptr && *v != '\0') return std::strtoull(v, nullptr, 10);
    std::random_device rd;
    return (std::uint64_t{rd()} << 32) | rd();
  }();
  return seed;
}

std::string read_file(const std::string& path, std::size_t from = 0) {
  std::ifstream in(path);
  in.seekg(static_cast<std::streamoff>(from));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// One running `qudao serve`. It listens on a port of its own choosing (--http-port 0, so no other
// process can take the port between a test's pick and serve's bind) and logs it; port() reads it
// from this start's part of the log.
class Serve {
 public:
  Serve(std::vector<std::string> argv, std::string log_path, const std::vector<std::string>& env)
      : log_path_(std::move(log_path)),
        log_from_(std::filesystem::exists(log_path_) ? std::filesystem::file_size(log_path_) : 0),
        child_(std::move(argv), log_path_, env) {}

  Child& child() { return child_; }

  std::optional<std::uint16_t> port() {
    if (!port_) {
      const std::string log = read_file(log_path_, log_from_);
      const std::string mark = "serving http://";
      const auto at = log.find(mark);
      if (at == std::string::npos) return std::nullopt;
      const auto colon = log.find(':', at + mark.size());
      port_ = static_cast<std::uint16_t>(std::strtoul(log.c_str() + colon + 1, nullptr, 10));
    }
    return port_;
  }

  json status() {  // null until the HTTP API answers
    if (!port()) return json();
    const HttpReply r = http_get(*port_, "/v1/status");
    return r.status == 200 ? r.json() : json();
  }

  std::uint64_t consumed() {  // committed: serve publishes its stats at each commit
    const json s = status();
    return s.is_null() ? 0 : s["totals"]["consumed"].get<std::uint64_t>();
  }

 private:
  std::string log_path_;
  std::size_t log_from_;
  Child child_;
  std::optional<std::uint16_t> port_;
};

// One topic, one temporary directory; serve instances are named, each with its data directory
// <dir>/<name> and its log <dir>/<name>.log (appended across restarts, with marker lines).
struct Env {
  std::string bin = required_env("QUDAO_BIN");
  std::string brokers = required_env("QUDAO_TEST_BROKERS");
  std::string topic = fmt::format("qudao-crash-{}-{}", getpid(),
                                  std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'007);
  TempDir dir;
  std::string tokens_file = write_tokens_file(dir.path());  // once: serves start while others run

  std::string log_path(const std::string& name) const { return dir.path() + "/" + name + ".log"; }

  void note(const std::string& name, const std::string& line) const {
    std::ofstream(log_path(name), std::ios::app) << "=== " << line << " ===\n";
  }

  std::string log_tail(const std::string& name) const {
    const std::string log = read_file(log_path(name));
    return log.size() <= kLogTailBytes ? log : "…" + log.substr(log.size() - kLogTailBytes);
  }

  // Crash cycles commit every kCommitIntervalMs; catching up uses serve's default interval, so the
  // comparison also shows that state does not depend on where batches and commits fell.
  enum class Commits { frequent, default_interval };
  // Each instance sends its outbox to topics of its own: <topic>.<name>.dispatch and so on.
  std::string dispatch_topic(const std::string& name) const { return topic + "." + name + ".dispatch"; }
  std::unique_ptr<Serve> serve(const std::string& name, Commits commits, const std::vector<std::string>& env = {}) const {
    std::vector<std::string> argv{bin, "serve", "-b", brokers, "-t", topic, "--data", dir.path() + "/" + name,
                                  "--http-port", "0", "--tokens", tokens_file,
                                  "--dispatch-topic", dispatch_topic(name),
                                  "--dead-letter-topic", topic + "." + name + ".dead-letters"};
    if (commits == Commits::frequent) argv.insert(argv.end(), {"--commit-interval-ms", std::to_string(kCommitIntervalMs)});
    return std::make_unique<Serve>(std::move(argv), log_path(name), env);
  }
};

// The events topic, fed by `qudao simulate` runs that continue one seeded channel day after day:
// the first days at once, then, while the crash cycles run, one run of kStreamDays after another
// from a background thread, so that serve always has records arriving. The last run's summary is
// what the ledger must show after everything produced. Thread-safe, except finish(), which the
// test's thread calls once.
class Workload {
 public:
  explicit Workload(const Env& env) : env_(env) {
    std::filesystem::create_directories(dir());
    auto first = simulate(0, kFirstDays);
    REQUIRE_MESSAGE(first.has_value(), "simulate failed: " << error_);
    expected_ = *first;
    next_day_ = kFirstDays;
    runs_ = 1;
    produced_ = expected_["events"].get<std::uint64_t>();
    feeder_ = std::thread([this] { feed(); });
  }
  ~Workload() {  // without finish(), after a failure
    {
      std::lock_guard lock(mutex_);
      finishing_ = true;
    }
    cv_.notify_all();
    if (feeder_.joinable()) feeder_.join();
  }
  Workload(const Workload&) = delete;
  Workload& operator=(const Workload&) = delete;

  void start_streaming() {
    {
      std::lock_guard lock(mutex_);
      streaming_ = true;
    }
    cv_.notify_all();
  }

  // Events of finished simulate runs: all in the topic. A run under way has put some more there.
  std::uint64_t produced() const { return produced_.load(); }

  bool producing() const {  // a simulate run is under way: the topic grows
    std::lock_guard lock(mutex_);
    return running_;
  }

  // Lets the run under way finish and stops; returns the simulator's expected summary.
  const json& finish() {
    {
      std::lock_guard lock(mutex_);
      finishing_ = true;
    }
    cv_.notify_all();
    feeder_.join();
    REQUIRE_MESSAGE(error_.empty(), "simulate failed: " << error_);
    return expected_;
  }

  int runs() const {
    std::lock_guard lock(mutex_);
    return runs_;
  }
  int days() const {  // produced so far
    std::lock_guard lock(mutex_);
    return next_day_;
  }

 private:
  std::string dir() const { return env_.dir.path() + "/simulate"; }

  // Produces days [from_day, days); on failure, records why in error_ and returns nothing.
  std::optional<json> simulate(int from_day, int days) {
    std::string error;
    try {
      auto [rc, out] = run({env_.bin, "simulate", "-b", env_.brokers, "-t", env_.topic, "--partitions",
                            std::to_string(kPartitions), "--seed", std::to_string(kWorkloadSeed), "--regions",
                            std::to_string(kRegions), "--days", std::to_string(days), "--from-day",
                            std::to_string(from_day)},
                           dir());
      if (rc == 0) return json::parse(out);
      error = fmt::format("days [{}, {}) exited with {}; see {}/stderr.log", from_day, days, rc, dir());
    } catch (const std::exception& e) {
      error = fmt::format("days [{}, {}): {}", from_day, days, e.what());
    } catch (...) {
      error = fmt::format("days [{}, {}): could not start simulate", from_day, days);
    }
    std::lock_guard lock(mutex_);
    error_ = error;
    return std::nullopt;
  }

  void feed() {
    std::unique_lock lock(mutex_);
    // The calendar ends at kDaysMax: later cycles find no new events.
    while (next_day_ < kDaysMax) {
      cv_.wait(lock, [&] { return streaming_ || finishing_; });
      if (finishing_) return;
      const int from = next_day_;
      const int to = std::min(kDaysMax, from + kStreamDays);
      running_ = true;
      lock.unlock();
      std::optional<json> out = simulate(from, to);
      lock.lock();
      running_ = false;
      if (!out) return;
      expected_ = *out;
      produced_ += (*out)["events"].get<std::uint64_t>();
      next_day_ = to;
      ++runs_;
    }
  }

  const Env& env_;
  mutable std::mutex mutex_;
  std::condition_variable cv_;
  bool streaming_ = false;
  bool running_ = false;
  bool finishing_ = false;
  json expected_;
  int next_day_ = 0;
  int runs_ = 0;
  std::atomic<std::uint64_t> produced_{0};
  std::string error_;
  std::thread feeder_;
};

// A serve that catches up with the whole topic, then stops cleanly (SIGTERM).
struct CatchUp {
  std::string name;
  std::unique_ptr<Serve> serve;
  json status, regions;  // once caught up

  CatchUp(const Env& env, std::string n) : name(std::move(n)) {
    env.note(name, "catch up");
    serve = env.serve(name, Env::Commits::default_interval);
  }

  void finish(const Env& env, std::uint64_t total) {
    const auto timeout = seconds(60 + total / 20'000);
    REQUIRE_MESSAGE(eventually([&] { return serve->consumed() >= total; }, timeout),
                    name << ": did not consume " << total << " events within " << timeout.count() << " s (reached "
                         << serve->consumed() << "); log tail:\n" << env.log_tail(name));
    // The outbox drained too: a stop before that leaves rows in the store for the next start (not
    // lost), but the dispatch topics are compared below. The rows of the last commit are handed to
    // the relay before its counts show in the status, so none can slip between the two.
    REQUIRE_MESSAGE(eventually([&] { return serve->status()["outbox"]["undelivered"] == 0; }, timeout),
                    name << ": the outbox did not drain within " << timeout.count() << " s; status "
                         << serve->status().dump() << "; log tail:\n" << env.log_tail(name));
    status = serve->status();
    regions = http_get(*serve->port(), "/v1/stock/regions").json();
    serve->child().kill(SIGTERM);
    CHECK_MESSAGE(serve->child().wait() == 0, name << ": did not stop cleanly; log tail:\n" << env.log_tail(name));
  }
};

void check_regions(const std::string& name, const json& got, const json& expected) {
  INFO(name << " /v1/stock/regions");
  REQUIRE(got["regions"].size() == expected["regions"].size());
  for (const json& region : got["regions"]) {
    const std::string region_name = region["region"];
    INFO("region " << region_name);
    REQUIRE(expected["regions"].contains(region_name));
    const json& want = expected["regions"][region_name];
    CHECK(region["on_hand"] == want["on_hand"]);
    CHECK(region["in_transit"] == want["in_transit"]);
    CHECK(region["locations"] == want["locations"]);
  }
}

// What one crash test saw, for its closing message.
struct Tally {
  int kills = 0;
  int producing = 0;  // died while a simulate run was adding to the topic
  int behind = 0;     // its last status showed less committed than finished simulate runs produced
  int unreached = 0;  // died before its HTTP API answered (opening RocksDB, rebuilding, assigning)
  std::uint64_t committed_max = 0;
};

// After a serve died: the last status it answered (null if none) and the events produced then.
// Committed progress may never go back across restarts.
void observe(const Env& env, const json& last, std::uint64_t produced, bool producing, int cycle, Tally& tally) {
  ++tally.kills;
  tally.producing += producing;
  if (last.is_null()) {
    env.note("crashed", fmt::format("cycle {}: died before its HTTP API answered", cycle));
    ++tally.unreached;
    return;
  }
  const auto committed = last["totals"]["consumed"].get<std::uint64_t>();
  env.note("crashed", fmt::format("cycle {}: died; its last status showed {} events committed, {} produced",
                                  cycle, committed, produced));
  CHECK_MESSAGE(committed >= tally.committed_max,
                "cycle " << cycle << ": committed progress went back from " << tally.committed_max << " to " << committed);
  tally.committed_max = std::max(tally.committed_max, committed);
  if (committed < produced) ++tally.behind;
}

// Every record of a dispatch topic as (source partition, outbox seq, bytes), once the relay is done:
// the topic stops growing when the instance has stopped and flushed.
std::vector<std::tuple<std::string, std::string, std::string>> read_dispatches(const Env& env, const std::string& topic) {
  KafkaSettings kafka;
  kafka.brokers = env.brokers;
  auto records = read_topic(kafka, topic, seconds(60));
  REQUIRE_MESSAGE(records.is_ok(), topic << ": " << records.status().message());
  std::vector<std::tuple<std::string, std::string, std::string>> out;
  for (const auto& [p, r] : records.value()) {
    out.emplace_back(r.header("qudao-source-partition"), r.header("qudao-outbox-seq"), r.value);
  }
  return out;
}

// How often each dispatch id (the DispatchRequested event id) occurs among `dispatches`.
std::map<std::pair<std::uint64_t, std::uint64_t>, std::size_t> dispatch_ids(
    const std::vector<std::tuple<std::string, std::string, std::string>>& dispatches) {
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::size_t> out;
  for (const auto& [p, seq, value] : dispatches) {
    const Bytes bytes(value.begin(), value.end());  // heap: aligned for decode()
    const Event e = must_decode(bytes);
    REQUIRE(e.type() == fb::Payload::DispatchRequested);
    ++out[{e.id.hi, e.id.lo}];
  }
  return out;
}

// After the cycles: the crashed directory catches up, a fresh directory replays the topic from
// offset 0, and both must equal each other and the simulator's expectation: nothing lost, nothing
// applied twice, nothing different.
void finish_and_compare(const Env& env, Workload& workload, const Tally& tally, const std::string& what,
                        Clock::time_point started) {
  // Both at once: they share nothing but the broker, and the cores are better used.
  CatchUp restarted(env, "crashed");
  CatchUp clean(env, "clean");
  const json& expected = workload.finish();
  const std::uint64_t produced = workload.produced();
  restarted.finish(env, produced);
  clean.finish(env, produced);

  for (const CatchUp* c : {&restarted, &clean}) {
    INFO(c->name);
    const json& t = c->status["totals"];
    CHECK(t["consumed"] == produced);
    CHECK(t["applied"] == produced);  // none lost; none applied twice (simulate sends no duplicates)
    CHECK(t["duplicates"] == 0);
    CHECK(t["rejected"] == 0);
    check_regions(c->name, c->regions, expected);
  }
  // The crashed instance rebuilt its projection from the ledger at its last start, the clean one
  // projected every posting as it came: they must agree in every field, reserved and available too.
  CHECK(restarted.regions == clean.regions);

  const json& got = restarted.status["partitions"];
  const json& want = clean.status["partitions"];
  REQUIRE(got.size() == static_cast<std::size_t>(kPartitions));
  REQUIRE(want.size() == got.size());
  std::uint64_t next_offsets = 0;
  int digests_equal = 0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("partition " << got[i]["partition"] << ": crashed " << got[i].dump() << " vs clean " << want[i].dump());
    CHECK(got[i]["partition"] == want[i]["partition"]);
    CHECK(got[i]["next_offset"] == want[i]["next_offset"]);
    CHECK(got[i]["digest"] == want[i]["digest"]);
    CHECK(got[i]["applied"] == want[i]["applied"]);
    CHECK(got[i]["anomalies"] == want[i]["anomalies"]);
    CHECK(got[i]["consumed"] == got[i]["next_offset"]);  // one record per event, no transaction markers
    CHECK_MESSAGE(got[i]["applied"].get<std::uint64_t>() > 0, "every partition must take part; see kRegions");
    next_offsets += got[i]["next_offset"].get<std::uint64_t>();
    digests_equal += got[i]["digest"] == want[i]["digest"];
  }
  CHECK(next_offsets == produced);

  // The outbox, exactly once: the same dispatch records (source partition, outbox seq, bytes) in the
  // crashed instance's topic as in the clean replay's, none twice.
  const auto crashed_dispatches = read_dispatches(env, env.dispatch_topic(restarted.name));
  const auto clean_dispatches = read_dispatches(env, env.dispatch_topic(clean.name));
  std::set<std::tuple<std::string, std::string, std::string>> crashed_set(crashed_dispatches.begin(),
                                                                          crashed_dispatches.end());
  CHECK_MESSAGE(crashed_set.size() == crashed_dispatches.size(),
                (crashed_dispatches.size() - crashed_set.size()) << " dispatch requests were sent twice");
  CHECK(crashed_dispatches.size() == clean_dispatches.size());
  CHECK(crashed_set == std::set<std::tuple<std::string, std::string, std::string>>(clean_dispatches.begin(),
                                                                                 clean_dispatches.end()));
  CHECK_MESSAGE(!clean_dispatches.empty(), "the workload pays orders: there must be dispatch requests");
  // And by what warehouses deduplicate on, the dispatch id (the DispatchRequested event id): every id
  // of the clean replay exactly once in the crashed instance's topic.
  const auto crashed_ids = dispatch_ids(crashed_dispatches);
  const auto clean_ids = dispatch_ids(clean_dispatches);
  std::size_t ids_twice = 0;
  for (const auto& [id, n] : crashed_ids) ids_twice += n - 1;
  CHECK_MESSAGE(ids_twice == 0, ids_twice << " dispatch ids appear more than once");
  CHECK(crashed_ids.size() == clean_ids.size());
  CHECK(std::equal(crashed_ids.begin(), crashed_ids.end(), clean_ids.begin(), clean_ids.end(),
                   [](const auto& a, const auto& b) { return a.first == b.first; }));

  const auto applied = restarted.status["totals"]["applied"].get<std::uint64_t>();
  const double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
  MESSAGE(fmt::format("{}: {} kills ({} while simulate was producing, {} behind the finished runs, {} before the "
                      "HTTP API answered); {} events from {} simulate runs ({} days); restarted vs clean replay: {} "
                      "of {} digests equal, {} lost, {} applied beyond the topic; dispatch requests: {} sent, {} "
                      "distinct, {} expected; dispatch ids: {} distinct, {} more than once, {} expected; {:.1f} s",
                      what, tally.kills, tally.producing, tally.behind, tally.unreached, produced, workload.runs(),
                      workload.days(),
                      digests_equal, got.size(), produced - std::min(produced, applied),
                      applied - std::min(produced, applied), crashed_dispatches.size(), crashed_set.size(),
                      clean_dispatches.size(), crashed_ids.size(), ids_twice, clean_ids.size(), elapsed));
}

// Each cycle starts serve on the crashed directory with QUDAO_CRASH_POINT=<point>:<n> and waits for
// it to kill itself there.
void crash_at(const std::string& point, const std::string& what, std::uint64_t salt) {
  const auto started = Clock::now();
  const int cycles = (crash_cycles() + 1) / 2;
  const std::uint64_t seed = crash_seed();
  MESSAGE(what << ": " << cycles << " cycles, seed " << seed << " (replay: QUDAO_CRASH_SEED=" << seed
               << " QUDAO_CRASH_CYCLES=" << crash_cycles() << ")");
  INFO("seed " << seed);
  Env env;
  Workload workload(env);
  std::mt19937_64 rng(seed + salt);
  std::uniform_int_distribution<int> hits(kCrashHitsMin, kCrashHitsMax);
  Tally tally;
  workload.start_streaming();
  for (int cycle = 1; cycle <= cycles; ++cycle) {
    const int n = hits(rng);
    const std::string crash = fmt::format("{}:{}", point, n);
    env.note("crashed", fmt::format("cycle {}: QUDAO_CRASH_POINT={}", cycle, crash));
    auto serve = env.serve("crashed", Env::Commits::frequent, {"QUDAO_CRASH_POINT=" + crash});
    // mid_batch is passed only by polls that bring records: the streaming workload brings them.
    json last;
    std::uint64_t produced_then = 0;
    bool producing_then = false;
    std::optional<int> rc;
    for (const auto deadline = Clock::now() + kCrashWait; !rc && Clock::now() < deadline;) {
      const std::uint64_t produced = workload.produced();
      const bool producing = workload.producing();
      if (json s = serve->status(); !s.is_null()) last = std::move(s), produced_then = produced;
      producing_then = producing;
      rc = serve->child().wait_for(kProbeInterval);
    }
    REQUIRE_MESSAGE(rc.has_value(), "cycle " << cycle << ": serve did not reach " << crash << " within "
                                             << kCrashWait.count() << " s (simulated days: " << workload.days()
                                             << " of " << kDaysMax << "); log tail:\n" << env.log_tail("crashed"));
    REQUIRE_MESSAGE(*rc == 128 + SIGKILL, "cycle " << cycle << ": serve with " << crash << " exited with " << *rc
                                                   << " instead of dying by SIGKILL; log tail:\n"
                                                   << env.log_tail("crashed"));
    observe(env, last, produced_then, producing_then, cycle, tally);
  }
  finish_and_compare(env, workload, tally, what, started);
}

}  // namespace

TEST_CASE("crash: kill -9 at random instants while ingesting") {
  const auto started = Clock::now();
  const int cycles = crash_cycles();
  const std::uint64_t seed = crash_seed();
  MESSAGE("random kills: " << cycles << " cycles, seed " << seed << " (replay: QUDAO_CRASH_SEED=" << seed
                           << " QUDAO_CRASH_CYCLES=" << cycles << ")");
  INFO("seed " << seed);
  Env env;
  Workload workload(env);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> life_ms(kLifeMsMin, kLifeMsMax);
  Tally tally;
  workload.start_streaming();
  for (int cycle = 1; cycle <= cycles; ++cycle) {
    const int life = life_ms(rng);
    env.note("crashed", fmt::format("cycle {}: kill -9 after {} ms", cycle, life));
    auto serve = env.serve("crashed", Env::Commits::frequent);
    std::this_thread::sleep_for(milliseconds(life));
    const std::uint64_t produced = workload.produced();
    const bool producing = workload.producing();
    const json last = serve->status();  // what it has committed at the instant of the kill
    serve->child().kill(SIGKILL);
    const int rc = serve->child().wait();
    REQUIRE_MESSAGE(rc == 128 + SIGKILL, "cycle " << cycle << ": serve exited with " << rc
                                                  << " before the kill; log tail:\n" << env.log_tail("crashed"));
    observe(env, last, produced, producing, cycle, tally);
  }
  finish_and_compare(env, workload, tally, "random kills", started);
}

TEST_CASE("crash: crash_after_batch_before_offset_commit") {
  crash_at("after_commit_before_offset_commit", "crash_after_batch_before_offset_commit", 1);
}

TEST_CASE("crash: crash_mid_batch") { crash_at("mid_batch", "crash_mid_batch", 2); }

TEST_CASE("crash: crash_during_outbox_send") { crash_at("outbox_relay_mid_send", "crash_during_outbox_send", 3); }

}  // namespace qudao
