// Broker faults against the real broker started by tools/kafka.sh: while `qudao serve` ingests, the
// broker is stopped and started again, several times. serve must ride it out by itself: every
// record applied once (the same per-partition digests as a clean replay after the broker is back),
// and every dispatch request on the dispatch topic exactly once.
//
// The test stops the broker of the `kafka` fixture and starts it again on the same port and state
// directory; ctest runs the broker tests one after another, so no other test sees it down.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <set>
#include <tuple>

#include "connectors/kafka.h"
#include "tests/process.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;
using std::chrono::seconds;

namespace {

constexpr int kRestarts = 3;

std::multiset<std::tuple<std::string, std::string, std::string>> read_dispatches(const KafkaSettings& kafka,
                                                                               const std::string& topic) {
  auto records = read_topic(kafka, topic, seconds(120));
  REQUIRE_MESSAGE(records.is_ok(), topic << ": " << records.status().message());
  std::multiset<std::tuple<std::string, std::string, std::string>> out;
  for (const auto& [p, r] : records.value()) {
    out.emplace(r.header("qudao-source-partition"), r.header("qudao-outbox-seq"), r.value);
  }
  return out;
}

}  // namespace

TEST_CASE("broker faults: serve rides out the broker stopping and starting during ingest; nothing lost, nothing twice") {
  const std::string bin = required_env("QUDAO_BIN");
  const std::string kafka_sh = required_env("QUDAO_KAFKA_SH");
  KafkaSettings kafka;
  kafka.brokers = required_env("QUDAO_TEST_BROKERS");
  const std::string port = kafka.brokers.substr(kafka.brokers.rfind(':') + 1);
  const std::string topic = fmt::format("qudao-faults-{}-{}", getpid(),
                                        std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'007);
  TempDir dir;
  const std::string tokens = write_tokens_file(dir.path());
  auto broker = [&](const char* action) {
    auto [rc, out] = run({"/bin/bash", kafka_sh, action, "--port", port}, dir.path());
    REQUIRE_MESSAGE(rc == 0, "kafka.sh " << action << " failed; see " << dir.path() << "/stderr.log");
  };

  auto [rc, out] = run({bin, "simulate", "-b", kafka.brokers, "-t", topic, "--partitions", "4", "--seed", "5",
                        "--regions", "8", "--days", "60"},
                       dir.path());
  REQUIRE_MESSAGE(rc == 0, "simulate failed, see " << dir.path() << "/stderr.log");
  const auto produced = json::parse(out)["events"].get<std::uint64_t>();

  auto serve = [&](const std::string& name, const std::vector<std::string>& extra = {}) {
    const std::uint16_t http_port = free_port();
    std::vector<std::string> argv{bin, "serve", "-b", kafka.brokers, "-t", topic, "--data", dir.path() + "/" + name,
                                  "--http-port", std::to_string(http_port), "--tokens", tokens,
                                  "--dispatch-topic", topic + "." + name + ".dispatch",
                                  "--dead-letter-topic", topic + "." + name + ".dead-letters"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return std::pair{std::make_unique<Child>(argv, dir.path() + "/" + name + ".log"), http_port};
  };
  auto status = [](std::uint16_t p) {
    const HttpReply r = http_get(p, "/v1/status");
    return r.status == 200 ? r.json() : json();
  };
  auto consumed = [&](std::uint16_t p) {
    const json s = status(p);
    return s.is_null() ? std::uint64_t{0} : s["totals"]["consumed"].get<std::uint64_t>();
  };

  // First a clean run, on topics of its own: what the faulty one must reach.
  auto [clean, clean_port] = serve("clean");
  REQUIRE(eventually([&, p = clean_port] { return consumed(p) >= produced; }, seconds(180)));
  std::uint64_t clean_sent = 0;
  REQUIRE(eventually(
      [&, p = clean_port] {
        const json s = status(p);
        if (s.is_null() || !s.contains("outbox")) return false;
        clean_sent = s["outbox"]["delivered"].get<std::uint64_t>();
        return clean_sent > 0 && s["outbox"]["delivered"] == s["outbox"]["sent"];
      },
      seconds(60)));
  const json clean_status = status(clean_port);
  clean->kill(SIGTERM);
  CHECK(clean->wait() == 0);

  // Commits every 20 ms: the restarts fall in the middle of ingest and of the relay's sends.
  auto [faulty, faulty_port] = serve("faulty", {"--commit-interval-ms", "20"});
  int restarts_mid_ingest = 0;
  for (int i = 0; i < kRestarts; ++i) {
    REQUIRE(eventually([&, p = faulty_port] { return consumed(p) > 0 || i > 0; }, seconds(60)));
    restarts_mid_ingest += consumed(faulty_port) < produced;
    broker("stop");
    std::this_thread::sleep_for(std::chrono::seconds(2));
    broker("start");
  }
  REQUIRE_MESSAGE(eventually([&, p = faulty_port] { return consumed(p) >= produced; }, seconds(180)),
                  "serve did not catch up after the broker restarts; see " << dir.path() << "/faulty.log");
  // The relay resumes by itself once the broker is back: every dispatch request gets out.
  CHECK_MESSAGE(eventually(
                    [&, p = faulty_port] {
                      const json s = status(p);
                      return !s.is_null() && s.contains("outbox") &&
                             s["outbox"]["delivered"].get<std::uint64_t>() + s["outbox"]["found_sent"].get<std::uint64_t>() >=
                                 clean_sent;
                    },
                    seconds(120)),
                "the relay did not deliver " << clean_sent << " dispatch requests after the broker came back; see "
                                             << dir.path() << "/faulty.log");
  const json faulty_status = status(faulty_port);
  faulty->kill(SIGTERM);
  CHECK(faulty->wait() == 0);

  CHECK(faulty_status["totals"]["consumed"] == produced);
  CHECK(faulty_status["totals"]["applied"] == produced);
  CHECK(faulty_status["partitions"] == clean_status["partitions"]);  // offsets, counts, digests

  const auto faulty_dispatches = read_dispatches(kafka, topic + ".faulty.dispatch");
  const auto clean_dispatches = read_dispatches(kafka, topic + ".clean.dispatch");
  const std::set<std::tuple<std::string, std::string, std::string>> distinct(faulty_dispatches.begin(),
                                                                             faulty_dispatches.end());
  CHECK_MESSAGE(distinct.size() == faulty_dispatches.size(), "dispatch requests sent twice");
  CHECK(faulty_dispatches == clean_dispatches);
  CHECK(!clean_dispatches.empty());
  MESSAGE(fmt::format("{} broker restarts ({} while serve was still ingesting); {} events applied once; {} dispatch "
                      "requests, {} distinct, {} in the clean run",
                      kRestarts, restarts_mid_ingest, faulty_status["totals"]["applied"].get<std::uint64_t>(),
                      faulty_dispatches.size(), distinct.size(), clean_dispatches.size()));
}

}  // namespace qudao
