// What the broker-fault tests share (broker_restart_test.cc, relay_stop_test.cc): one topic of their
// own on the `kafka` fixture's broker, which they stop and start again themselves (tools/kafka.sh,
// same port and state directory; ctest runs the broker tests one after another, so no other test
// sees it down), `qudao serve` instances on that topic, each sending its outbox to topics of its
// own (<topic>.<name>.dispatch ...), and what they read back.
#pragma once

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <memory>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "connectors/kafka.h"
#include "tests/process.h"
#include "tests/support.h"

namespace qudao::test {

// (source partition, outbox seq, bytes) of one dispatch request on a dispatch topic.
using DispatchRecords = std::multiset<std::tuple<std::string, std::string, std::string>>;

struct BrokerFaults {
  std::string bin = required_env("QUDAO_BIN");
  std::string kafka_sh = required_env("QUDAO_KAFKA_SH");
  KafkaSettings kafka{required_env("QUDAO_TEST_BROKERS"), {}};
  std::string port = kafka.brokers.substr(kafka.brokers.rfind(':') + 1);
  std::string topic;
  TempDir dir;
  std::string tokens = write_tokens_file(dir.path());

  explicit BrokerFaults(const std::string& name)
      : topic(fmt::format("qudao-{}-{}-{}", name, getpid(),
                          std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'007)) {}

  // tools/kafka.sh start | stop, on the fixture's port.
  void broker(const char* action) const {
    auto [rc, out] = run({"/bin/bash", kafka_sh, action, "--port", port}, dir.path());
    REQUIRE_MESSAGE(rc == 0, "kafka.sh " << action << " failed; see " << dir.path() << "/stderr.log");
  }

  // `qudao simulate` arguments for this topic: 4 partitions, `regions` regions, days [from_day, days).
  std::vector<std::string> simulate_argv(int regions, int from_day, int days, std::uint64_t seed) const {
    return {bin, "simulate", "-b", kafka.brokers, "-t", topic, "--partitions", "4", "--seed", std::to_string(seed),
            "--regions", std::to_string(regions), "--days", std::to_string(days), "--from-day",
            std::to_string(from_day)};
  }

  // Runs simulate to completion; the number of events it produced.
  std::uint64_t simulate(int regions, int from_day, int days, std::uint64_t seed) const {
    auto [rc, out] = run(simulate_argv(regions, from_day, days, seed), dir.path());
    REQUIRE_MESSAGE(rc == 0, "simulate failed, see " << dir.path() << "/stderr.log");
    return nlohmann::json::parse(out)["events"].get<std::uint64_t>();
  }

  struct Serve {
    std::unique_ptr<Child> child;
    std::uint16_t http_port;
  };
  // `qudao serve` on data directory <dir>/<name>, logging to <dir>/<name>.log.
  Serve serve(const std::string& name, const std::vector<std::string>& extra = {},
              const std::vector<std::string>& env = {}) const {
    const std::uint16_t http_port = free_port();
    std::vector<std::string> argv{bin, "serve", "-b", kafka.brokers, "-t", topic, "--data", dir.path() + "/" + name,
                                  "--http-port", std::to_string(http_port), "--tokens", tokens,
                                  "--dispatch-topic", dispatch_topic(name),
                                  "--dead-letter-topic", topic + "." + name + ".dead-letters"};
    argv.insert(argv.end(), extra.begin(), extra.end());
    return {std::make_unique<Child>(argv, log_path(name), env), http_port};
  }
  std::string dispatch_topic(const std::string& name) const { return topic + "." + name + ".dispatch"; }
  std::string log_path(const std::string& name) const { return dir.path() + "/" + name + ".log"; }

  static nlohmann::json status(std::uint16_t http_port) {  // null until the HTTP API answers
    const HttpReply r = http_get(http_port, "/v1/status");
    return r.status == 200 ? r.json() : nlohmann::json();
  }
  static std::uint64_t consumed(std::uint16_t http_port) {  // committed
    const nlohmann::json s = status(http_port);
    return s.is_null() ? 0 : s["totals"]["consumed"].get<std::uint64_t>();
  }
  // Dispatch requests delivered or found already on the broker by this start's relay.
  static std::uint64_t relayed(std::uint16_t http_port) {
    const nlohmann::json s = status(http_port);
    if (s.is_null() || !s.contains("outbox")) return 0;
    return s["outbox"]["delivered"].get<std::uint64_t>() + s["outbox"]["found_sent"].get<std::uint64_t>();
  }

  // Runs a clean serve over the whole topic (`produced` events) until its relay has delivered every
  // outbox row; its last status. Stops it (SIGTERM).
  nlohmann::json clean_run(const std::string& name, std::uint64_t produced) const {
    auto [clean, port] = serve(name);
    REQUIRE(eventually([&, p = port] { return consumed(p) >= produced; }, std::chrono::seconds(180)));
    REQUIRE(eventually(
        [&, p = port] {
          const nlohmann::json s = status(p);
          return !s.is_null() && s.contains("outbox") && s["outbox"]["delivered"].get<std::uint64_t>() > 0 &&
                 s["outbox"]["delivered"] == s["outbox"]["sent"];
        },
        std::chrono::seconds(60)));
    const nlohmann::json last = status(port);
    clean->kill(SIGTERM);
    CHECK(clean->wait() == 0);
    return last;
  }

  DispatchRecords read_dispatches(const std::string& name) const {
    auto records = read_topic(kafka, dispatch_topic(name), std::chrono::seconds(120));
    REQUIRE_MESSAGE(records.is_ok(), dispatch_topic(name) << ": " << records.status().message());
    DispatchRecords out;
    for (const auto& [p, r] : records.value()) {
      out.emplace(r.header("qudao-source-partition"), r.header("qudao-outbox-seq"), r.value);
    }
    return out;
  }
};

// How many records of `records` are there more than once.
inline std::size_t repeats(const DispatchRecords& records) {
  return records.size() - std::set(records.begin(), records.end()).size();
}

}  // namespace qudao::test
