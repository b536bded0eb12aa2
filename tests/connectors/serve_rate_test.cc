// Integration: `qudao serve --max-events-per-s N` on a topic produced before it starts (the real
// broker of tools/kafka.sh, RocksDB on disk) consumes at about N events per second, never faster
// than the limit allows, and still applies everything: consumed = applied + duplicates + rejected,
// each as the simulator says, and the stock it serves is the simulator's.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <vector>

#include "tests/process.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {
// The limited run is made to last this long, whatever the simulator's event count.
constexpr double kLimitedRunSeconds = 6;
constexpr auto kStatusPollPeriod = std::chrono::milliseconds(20);
}  // namespace

TEST_CASE("serve --max-events-per-s: a pre-produced topic is consumed at about that rate, and all of it applied") {
  const std::string bin = required_env("QUDAO_BIN");
  const std::string brokers = required_env("QUDAO_TEST_BROKERS");
  const std::string topic = fmt::format("qudao-rate-{}-{}", getpid(),
                                        std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'007);
  TempDir dir;
  const std::string tokens = write_tokens_file(dir.path());
  auto [rc, out] = run({bin, "simulate", "-b", brokers, "-t", topic, "--partitions", "4", "--seed", "5", "--regions",
                        "5", "--days", "30", "--malformed-rate", "0.01", "--duplicate-rate", "0.01"},
                       dir.path());
  REQUIRE_MESSAGE(rc == 0, "simulate failed, see " << dir.path() << "/stderr.log");
  const json summary = json::parse(out);
  const auto produced = summary["events"].get<std::uint64_t>();
  REQUIRE(produced > 10'000);
  REQUIRE(summary["malformed"].get<std::uint64_t>() > 0);
  REQUIRE(summary["duplicates"].get<std::uint64_t>() > 0);
  const double rate = static_cast<double>(produced) / kLimitedRunSeconds;

  const std::uint16_t port = free_port();
  Child serve({bin, "serve", "-b", brokers, "-t", topic, "--data", dir.path() + "/data", "--http-port",
               std::to_string(port), "--tokens", tokens, "--commit-interval-ms", "20", "--max-events-per-s",
               fmt::format("{:.0f}", rate)},
              dir.path() + "/serve.log");

  // Samples of serve's consumed count from when it holds its partitions (its limit starts at the
  // first poll, right after) until it has every record.
  struct Sample {
    double seconds;
    std::uint64_t consumed;
  };
  std::vector<Sample> samples;
  json totals;
  Clock::time_point assigned_at{};
  const auto deadline = Clock::now() + std::chrono::seconds(120);
  while (Clock::now() < deadline) {
    const HttpReply r = http_get(port, "/v1/status");
    const auto now = Clock::now();
    if (r.status == 200 && r.json()["assigned"].get<bool>()) {
      if (assigned_at == Clock::time_point{}) assigned_at = now;
      totals = r.json()["totals"];
      samples.push_back({std::chrono::duration<double>(now - assigned_at).count(), totals["consumed"].get<std::uint64_t>()});
      if (samples.back().consumed >= produced) break;
    }
    std::this_thread::sleep_for(kStatusPollPeriod);
  }
  REQUIRE_MESSAGE((!samples.empty() && samples.back().consumed >= produced),
                  "serve did not consume " << produced << " records; log:\n" << serve.log());

  // Never faster than the limit: the bucket starts empty at the first poll, which the first sample
  // saw at most one status poll (and the answer's time) later.
  const double slack_s = 0.25;
  for (const Sample& s : samples) {
    INFO("at " << s.seconds << " s: " << s.consumed << " consumed");
    CHECK(static_cast<double>(s.consumed) <= rate * (s.seconds + slack_s));
  }
  const double total_s = samples.back().seconds;
  MESSAGE(fmt::format("{} records at --max-events-per-s {:.0f}: {:.2f} s, {:.0f}/s", produced, rate, total_s,
                      static_cast<double>(produced) / total_s));
  CHECK(total_s >= kLimitedRunSeconds - slack_s);
  // About the limit in the middle of the run (away from the first fetches and the topic's end).
  auto first_at = [&](double share) {
    return *std::find_if(samples.begin(), samples.end(), [&](const Sample& s) {
      return static_cast<double>(s.consumed) >= share * static_cast<double>(produced);
    });
  };
  const Sample a = first_at(0.2), b = first_at(0.8);
  REQUIRE(b.seconds > a.seconds);
  const double middle_rate = static_cast<double>(b.consumed - a.consumed) / (b.seconds - a.seconds);
  CHECK(middle_rate >= 0.8 * rate);
  CHECK(middle_rate <= 1.15 * rate);

  // Everything applied, exactly once.
  CHECK(totals["consumed"] == produced);
  CHECK(totals["applied"] == summary["applied"]);
  CHECK(totals["duplicates"] == summary["duplicates"]);
  CHECK(totals["rejected"] == summary["malformed"]);
  CHECK(totals["applied"].get<std::uint64_t>() + totals["duplicates"].get<std::uint64_t>() +
            totals["rejected"].get<std::uint64_t>() ==
        produced);
  const HttpReply regions = http_get(port, "/v1/stock/regions");
  REQUIRE(regions.status == 200);
  REQUIRE(regions.json()["regions"].size() == summary["regions"].size());
  for (const json& region : regions.json()["regions"]) {
    const std::string name = region["region"];
    INFO("region " << name);
    CHECK(region["on_hand"] == summary["regions"][name]["on_hand"]);
    CHECK(region["in_transit"] == summary["regions"][name]["in_transit"]);
  }
  serve.kill(SIGTERM);
  CHECK(serve.wait() == 0);
}

}  // namespace qudao
