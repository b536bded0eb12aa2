// Against the real broker: a simulated channel written to an event file (`simulate --out`), produced
// to a topic (`produce`), replayed from Kafka and from the file (`replay --from-file`), and exported
// back to a file (`export`): every replay reaches the same per-partition digests and SHA-256.
// JSON lines with a bad line: the good ones are produced, the bad one reported, exit 1; with
// --strict nothing is produced.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fstream>
#include <regex>

#include "events/json.h"
#include "tests/process.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;

namespace {

struct Env {
  std::string bin = required_env("QUDAO_BIN");
  std::string brokers = required_env("QUDAO_TEST_BROKERS");
  std::string topic_prefix = fmt::format("qudao-pf-{}-{}", getpid(),
                                         std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'007);
  TempDir dir;

  std::pair<int, std::string> qudao(std::vector<std::string> args) {
    args.insert(args.begin(), bin);
    return run(std::move(args), dir.path());
  }
  std::string stderr_log() const {
    std::ifstream in(dir.path() + "/stderr.log");
    return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  }
};

// The digest lines and the SHA-256 of a replay's output: what must be equal between replays.
std::string state_of(const std::string& replay_output) {
  const std::size_t at = replay_output.find("\n  partition");
  REQUIRE_MESSAGE(at != std::string::npos, replay_output);
  return replay_output.substr(at);
}

}  // namespace

TEST_CASE("produce: a simulated event file on the broker replays to the same state as the file itself") {
  Env env;
  const std::string file = env.dir.path() + "/sim.qev";
  const std::string topic = env.topic_prefix + "-file";
  auto [rc, out] = env.qudao({"simulate", "--out", file, "--seed", "11", "--regions", "6", "--days", "15"});
  REQUIRE_MESSAGE(rc == 0, env.stderr_log());
  const std::uint64_t events = json::parse(out)["events"];
  REQUIRE(events > 1000);

  std::tie(rc, out) = env.qudao({"produce", file, "-b", env.brokers, "-t", topic, "--partitions", "4"});
  REQUIRE_MESSAGE(rc == 0, env.stderr_log());
  const json summary = json::parse(out);
  CHECK(summary["format"] == "file");
  CHECK(summary["read"] == events);
  CHECK(summary["produced"] == events);
  CHECK(summary["delivered"] == events);
  CHECK(summary["failed_validation"] == 0);

  std::tie(rc, out) = env.qudao({"replay", "-b", env.brokers, "-t", topic});
  REQUIRE_MESSAGE(rc == 0, env.stderr_log());
  CHECK(out.find(fmt::format("replayed {} events of {}", events, topic)) != std::string::npos);
  const std::string from_kafka = state_of(out);
  MESSAGE("replay from Kafka:" << from_kafka);

  std::tie(rc, out) = env.qudao({"replay", "--from-file", file, "--partitions", "4"});
  REQUIRE_MESSAGE(rc == 0, env.stderr_log());
  CHECK(out.find(fmt::format("replayed {} events of {} (4 partitions)", events, file)) != std::string::npos);
  CHECK(state_of(out) == from_kafka);

  // With the wrong partition count the file replays to another state: the option matters.
  std::tie(rc, out) = env.qudao({"replay", "--from-file", file, "--partitions", "8"});
  REQUIRE(rc == 0);
  CHECK(state_of(out) != from_kafka);

  // The auditor's archive: the topic exported and replayed without Kafka.
  const std::string archive = env.dir.path() + "/archive.qev";
  std::tie(rc, out) = env.qudao({"export", "-b", env.brokers, "-t", topic, archive});
  REQUIRE_MESSAGE(rc == 0, env.stderr_log());
  CHECK(out.find(fmt::format("exported {} records of {} (4 partitions)", events, topic)) != std::string::npos);
  std::tie(rc, out) = env.qudao({"replay", "--from-file", archive, "--partitions", "4"});
  REQUIRE_MESSAGE(rc == 0, env.stderr_log());
  CHECK(state_of(out) == from_kafka);
}

TEST_CASE("produce: JSON lines; a bad line is reported with its number and not produced; --strict produces nothing") {
  Env env;
  Events ev;
  auto line = [](const Bytes& b) { return std::get<std::string>(to_json(b, JsonStyle::compact)); };
  const std::string path = env.dir.path() + "/in.jsonl";
  {
    std::ofstream f(path);
    f << "East\t" << line(ev.location(1, fb::LocationKind::SubWarehouse, "East")) << "\n"
      << "East\t" << line(ev.location(2, fb::LocationKind::Store, "East")) << "\n"
      << "East\t" << line(ev.production(1, {test::line(1, 10)})) << "\n"
      << "East\t" << line(ev.scan_out(2, 1, -5)) << "\n"
      << "East\t" << line(ev.dispatch(1, 2, {test::line(1, 4)})) << "\n";
  }
  const std::string strict_topic = env.topic_prefix + "-strict";
  auto [rc, out] = env.qudao({"produce", path, "-K", "\t", "--strict", "-b", env.brokers, "-t", strict_topic});
  CHECK(rc == 1);
  CHECK(json::parse(out)["produced"] == 0);
  CHECK(env.stderr_log().find("line 4: payload.qty: must be > 0, got -5 (invalid_value)") != std::string::npos);
  CHECK(env.stderr_log().find("--strict: 1 of 5 records failed validation; nothing produced") != std::string::npos);

  // From stdin this time.
  const std::string topic = env.topic_prefix + "-jsonl";
  std::tie(rc, out) = run({"/bin/sh", "-c", "exec \"$0\" \"$@\" < " + path, env.bin, "produce", "-", "-K", "\t", "-b",
                           env.brokers, "-t", topic},
                          env.dir.path());
  CHECK(rc == 1);
  const json summary = json::parse(out);
  CHECK(summary["format"] == "jsonl");
  CHECK(summary["input"] == "stdin");
  CHECK(summary["read"] == 5);
  CHECK(summary["failed_validation"] == 1);
  CHECK(summary["produced"] == 4);
  CHECK(summary["delivered"] == 4);

  std::tie(rc, out) = env.qudao({"replay", "-b", env.brokers, "-t", topic});
  REQUIRE_MESSAGE(rc == 0, env.stderr_log());
  CHECK(out.find("replayed 4 events of " + topic) != std::string::npos);
}

}  // namespace qudao
