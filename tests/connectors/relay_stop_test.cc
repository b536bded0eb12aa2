// Stopping during a broker outage, against the real broker started by tools/kafka.sh: `qudao serve`
// is killed (QUDAO_CRASH_POINT=outbox_relay_mid_send) while its relay sends, so that its store
// keeps outbox rows whose delivery is unknown; the broker is stopped; serve is started again on the
// same directory, and its relay, which must read the tail of the dispatch partitions before it
// sends anything, waits on the broker that is down. Asked to stop (SIGTERM) then, serve must exit
// cleanly within kStopBound. With the broker back, one more start sends what was missing: the
// dispatch topic holds the clean run's dispatch requests, each exactly once, and the ledger equals
// the clean run's.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "tests/connectors/broker_faults.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;
using std::chrono::milliseconds;
using std::chrono::seconds;
using Clock = std::chrono::steady_clock;

namespace {

constexpr int kRegions = 8, kDays = 30;
constexpr int kCrashAtSend = 40;  // the 40th dispatch request handed to librdkafka
constexpr auto kOutageBeforeStop = seconds(4);  // the relay is well into its waits on the broker
constexpr auto kStopBound = seconds(10);

}  // namespace

TEST_CASE("broker faults: serve asked to stop while its relay waits on a stopped broker to check rows left by a "
          "crash exits within the bound, and the next start sends each dispatch request once") {
  BrokerFaults env("relay-stop");
  const std::uint64_t produced = env.simulate(kRegions, 0, kDays, 11);

  auto [crashed, crashed_port] =
      env.serve("crashed", {"--commit-interval-ms", "20"}, {fmt::format("QUDAO_CRASH_POINT=outbox_relay_mid_send:{}", kCrashAtSend)});
  const auto rc = crashed->wait_for(milliseconds(120'000));
  REQUIRE_MESSAGE(rc.has_value(), "serve did not reach the crash point; see " << env.log_path("crashed"));
  REQUIRE(*rc == 128 + SIGKILL);

  env.broker("stop");
  auto [stopped, stopped_port] = env.serve("crashed");
  // The relay found rows of unknown fate in the store: it must check the dispatch partitions' tails.
  REQUIRE(eventually(
      [&] { return stopped->log().find("outbox rows left from before the restart") != std::string::npos; },
      seconds(60)));
  REQUIRE(eventually([&, p = stopped_port] { return http_get(p, "/health").status == 200; }, seconds(60)));
  std::this_thread::sleep_for(kOutageBeforeStop);
  const auto asked = Clock::now();
  stopped->kill(SIGTERM);
  const auto stop_rc = stopped->wait_for(std::chrono::duration_cast<milliseconds>(kStopBound));
  const double stop_s = std::chrono::duration<double>(Clock::now() - asked).count();
  CHECK_MESSAGE(stop_rc.has_value(), "serve did not exit within " << kStopBound.count() << " s of SIGTERM with the "
                                                                  "broker down; see " << env.log_path("crashed"));
  if (stop_rc) CHECK(*stop_rc == 0);

  env.broker("start");
  const json clean_status = env.clean_run("clean", produced);
  const std::uint64_t clean_sent = clean_status["outbox"]["delivered"].get<std::uint64_t>();
  const DispatchRecords clean_dispatches = env.read_dispatches("clean");
  REQUIRE(clean_dispatches.size() == clean_sent);

  auto [restarted, restarted_port] = env.serve("crashed");
  // Caught up, and assigned: until then the status lists only the partitions loaded from the store,
  // not one that never had an event (the clean run lists it).
  json restarted_status;
  REQUIRE(eventually(
      [&, p = restarted_port] {
        restarted_status = BrokerFaults::status(p);
        return !restarted_status.is_null() && restarted_status["totals"]["consumed"] >= produced &&
               restarted_status["partitions"].size() == clean_status["partitions"].size();
      },
      seconds(180)));
  // What is on the dispatch topic once this start's relay has checked and sent.
  DispatchRecords dispatches;
  CHECK_MESSAGE(eventually(
                    [&] {
                      dispatches = env.read_dispatches("crashed");
                      return dispatches.size() >= clean_sent;
                    },
                    seconds(120)),
                "the dispatch topic holds " << dispatches.size() << " records, the clean run sent " << clean_sent);
  restarted->kill(SIGTERM);
  CHECK(restarted->wait() == 0);

  CHECK(restarted_status["totals"]["applied"] == produced);
  CHECK(restarted_status["partitions"] == clean_status["partitions"]);  // offsets, counts, digests
  CHECK_MESSAGE(repeats(dispatches) == 0, "dispatch requests sent twice");
  CHECK(dispatches == clean_dispatches);
  MESSAGE(fmt::format("stopped {:.1f} s after SIGTERM with the broker down (bound {} s); then {} dispatch requests, "
                      "{} repeated, {} in the clean run; {} events applied once",
                      stop_s, kStopBound.count(), dispatches.size(), repeats(dispatches), clean_dispatches.size(),
                      restarted_status["totals"]["applied"].get<std::uint64_t>()));
}

}  // namespace qudao
