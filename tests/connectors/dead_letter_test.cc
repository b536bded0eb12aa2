// Dead letters against the real broker started by tools/kafka.sh: a simulated stream with 1 %
// malformed records and 1 % re-sent duplicates goes through `qudao serve`. Every record must be
// accounted for (applied + duplicates + rejected == produced, each as the simulator says), and
// every rejected record must be on the dead-letter topic, once, with its original bytes and the
// reason, field, message and source offset in its headers.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <map>
#include <set>

#include "connectors/kafka.h"
#include "tests/process.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;
using std::chrono::seconds;

namespace {

constexpr int kPartitions = 4;

// Every record of every partition of `topic`, by (partition, offset).
std::map<std::pair<int, std::int64_t>, RecordMeta> read_topic_by_offset(const KafkaSettings& kafka,
                                                                          const std::string& topic) {
  auto records = read_topic(kafka, topic, seconds(120));
  REQUIRE_MESSAGE(records.is_ok(), topic << ": " << records.status().message());
  std::map<std::pair<int, std::int64_t>, RecordMeta> out;
  for (auto& [p, r] : records.value()) out.emplace(std::pair{p.value, r.offset.value}, std::move(r));
  return out;
}

}  // namespace

TEST_CASE("dead letters: 1 % malformed records are each on the dead-letter topic with their reason; the counts add up") {
  const std::string bin = required_env("QUDAO_BIN");
  KafkaSettings kafka;
  kafka.brokers = required_env("QUDAO_TEST_BROKERS");
  const std::string topic = fmt::format("qudao-dlq-{}-{}", getpid(),
                                        std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'007);
  const std::string dead_letters = topic + ".dead-letters";
  TempDir dir;
  const std::string tokens = write_tokens_file(dir.path());

  auto [rc, out] = run({bin, "simulate", "-b", kafka.brokers, "-t", topic, "--partitions", std::to_string(kPartitions),
                        "--seed", "11", "--regions", "8", "--days", "40", "--malformed-rate", "0.01",
                        "--duplicate-rate", "0.01"},
                       dir.path());
  REQUIRE_MESSAGE(rc == 0, "simulate failed, see " << dir.path() << "/stderr.log");
  const json summary = json::parse(out);
  const auto produced = summary["events"].get<std::uint64_t>();
  const auto malformed = summary["malformed"].get<std::uint64_t>();
  const auto duplicates = summary["duplicates"].get<std::uint64_t>();
  REQUIRE(malformed > produced / 200);  // about 1 %
  REQUIRE(duplicates > 0);

  const std::uint16_t port = free_port();
  Child serve({bin, "serve", "-b", kafka.brokers, "-t", topic, "--data", dir.path() + "/data", "--http-port",
               std::to_string(port), "--tokens", tokens},
              dir.path() + "/serve.log");
  json totals;
  REQUIRE_MESSAGE(eventually(
                      [&] {
                        const HttpReply r = http_get(port, "/v1/status");
                        if (r.status != 200) return false;
                        totals = r.json()["totals"];
                        return totals["consumed"].get<std::uint64_t>() >= produced;
                      },
                      seconds(180)),
                  "serve did not consume " << produced << " records; see " << dir.path() << "/serve.log");
  CHECK(totals["consumed"] == produced);
  CHECK(totals["applied"] == summary["applied"]);
  CHECK(totals["duplicates"] == duplicates);
  CHECK(totals["rejected"] == malformed);
  CHECK(totals["applied"].get<std::uint64_t>() + totals["duplicates"].get<std::uint64_t>() +
            totals["rejected"].get<std::uint64_t>() ==
        produced);
  // The relay reports its progress in /v1/status and /metrics.
  CHECK_MESSAGE(eventually(
                    [&] {
                      const HttpReply r = http_get(port, "/v1/status");
                      return r.status == 200 && r.json().contains("outbox") &&
                             r.json()["outbox"]["delivered_dead_letters"].get<std::uint64_t>() >= malformed;
                    },
                    seconds(60)),
                "the relay did not report " << malformed << " dead letters delivered");
  const HttpReply metrics = http_get(port, "/metrics", kTestMetricsToken);
  CHECK(metrics.body.find("qudao_outbox_records_total{state=\"delivered\"}") != std::string::npos);
  CHECK(metrics.body.find(fmt::format("qudao_outbox_delivered_total{{topic=\"dead_letters\"}} {}\n", malformed)) !=
        std::string::npos);

  // qudao dlq: list them all, show one, re-drive one. A malformed record is rejected again when
  // re-driven, so the topic gains one record and serve one rejection (and one more dead letter).
  auto [list_rc, list_out] = run({bin, "dlq", "list", "-b", kafka.brokers, "-t", topic}, dir.path());
  REQUIRE(list_rc == 0);
  CHECK(static_cast<std::uint64_t>(std::count(list_out.begin(), list_out.end(), '\n')) == malformed);
  const std::string first = list_out.substr(0, list_out.find('\n'));
  const auto slash = first.find('/');
  const std::string p = first.substr(0, slash), o = first.substr(slash + 1, first.find(' ') - slash - 1);
  auto [show_rc, show_out] = run({bin, "dlq", "show", "-b", kafka.brokers, "-t", topic, "-p", p, "-o", o}, dir.path());
  CHECK(show_rc == 0);
  CHECK(show_out.find("qudao-reason: ") != std::string::npos);
  auto [redrive_rc, redrive_out] =
      run({bin, "dlq", "redrive", "-b", kafka.brokers, "-t", topic, "-p", p, "-o", o}, dir.path());
  CHECK(redrive_rc == 0);
  CHECK(json::parse(redrive_out)["redriven"] == 1);
  CHECK_MESSAGE(eventually(
                    [&] {
                      const HttpReply r = http_get(port, "/v1/status");
                      return r.status == 200 && r.json()["totals"]["rejected"].get<std::uint64_t>() == malformed + 1 &&
                             r.json()["outbox"]["delivered_dead_letters"].get<std::uint64_t>() >= malformed + 1;
                    },
                    seconds(60)),
                "the re-driven record was not consumed and dead-lettered again");
  serve.kill(SIGTERM);  // a clean stop: the relay sends what is left before the process ends
  REQUIRE(serve.wait() == 0);

  const auto events = read_topic_by_offset(kafka, topic);
  const auto letters = read_topic_by_offset(kafka, dead_letters);
  CHECK(events.size() == produced + 1);
  CHECK(letters.size() == malformed + 1);
  std::map<std::string, int> reasons;
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& [where, letter] : letters) {
    const std::string source_partition = letter.header("qudao-source-partition");
    const std::string source_offset = letter.header("qudao-source-offset");
    INFO("dead letter at " << where.first << "/" << where.second << " from " << source_partition << "/" << source_offset);
    CHECK(letter.header("qudao-source-topic") == topic);
    CHECK(!letter.header("qudao-reason").empty());
    CHECK(!letter.header("qudao-message").empty());
    CHECK_MESSAGE(seen.emplace(source_partition, source_offset).second, "dead-lettered twice");
    auto original = events.find({std::stoi(source_partition), std::stoll(source_offset)});
    REQUIRE(original != events.end());
    CHECK(letter.value == original->second.value);  // the original bytes, untouched
    ++reasons[letter.header("qudao-reason")];
  }
  std::string by_reason;
  for (const auto& [reason, n] : reasons) by_reason += fmt::format(" {} {}", reason, n);
  MESSAGE(fmt::format("{} records produced: {} applied, {} duplicates, {} rejected; {} on the dead-letter topic "
                      "(by reason:{})",
                      produced, totals["applied"].get<std::uint64_t>(), totals["duplicates"].get<std::uint64_t>(),
                      totals["rejected"].get<std::uint64_t>(), letters.size(), by_reason));
}

}  // namespace qudao
