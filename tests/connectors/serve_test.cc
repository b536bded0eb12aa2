// Integration: `qudao simulate` produces to the real Kafka broker started by tools/kafka.sh, and
// `qudao serve` consumes into RocksDB on disk. Checks the stock endpoint against the simulator's own
// model, across a kill -9 in the middle of ingest and a restart; and that order status kept while
// applying is what a restart rebuilds from the store; and that a SIGHUP puts a changed tokens file
// in force without a restart.
#include <doctest/doctest.h>
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "tests/process.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;

namespace {

struct Env {
  std::string bin = required_env("QUDAO_BIN");
  std::string brokers = required_env("QUDAO_TEST_BROKERS");
  std::string topic = fmt::format("qudao-it-{}-{}", getpid(),
                                  std::chrono::system_clock::now().time_since_epoch().count() % 1'000'000'007);
  TempDir dir;
  std::string tokens_file = write_tokens_file(dir.path());
  std::uint16_t port = free_port();

  json simulate(int days, int from_day) {
    auto [rc, out] = run({bin, "simulate", "-b", brokers, "-t", topic, "--partitions", "4", "--seed", "7",
                          "--regions", "5", "--days", std::to_string(days), "--from-day", std::to_string(from_day)},
                         dir.path());
    REQUIRE_MESSAGE(rc == 0, "simulate failed, see " << dir.path() << "/stderr.log");
    return json::parse(out);
  }

  std::unique_ptr<Child> serve() {
    return std::make_unique<Child>(
        std::vector<std::string>{bin, "serve", "-b", brokers, "-t", topic, "--data", dir.path() + "/data",
                                 "--http-port", std::to_string(port), "--commit-interval-ms", "20",
                                 "--tokens", tokens_file},
        dir.path() + "/serve.log");
  }

  json status() {
    const HttpReply r = http_get(port, "/v1/status");
    return r.status == 200 ? r.json() : json();
  }

  std::uint64_t consumed() {
    const json s = status();
    return s.is_null() ? 0 : s["totals"]["consumed"].get<std::uint64_t>();
  }

  void check_regions_match(const json& expected) {
    const HttpReply r = http_get(port, "/v1/stock/regions");
    REQUIRE(r.status == 200);
    const json got = r.json();
    REQUIRE(got["regions"].size() == expected["regions"].size());
    for (const json& region : got["regions"]) {
      const std::string name = region["region"];
      INFO("region " << name);
      const json& want = expected["regions"][name];
      CHECK(region["on_hand"] == want["on_hand"]);
      CHECK(region["in_transit"] == want["in_transit"]);
      CHECK(region["locations"] == want["locations"]);
    }
  }
};

}  // namespace

TEST_CASE("serve: ingests a simulated channel from the real broker; kill -9 mid-ingest loses nothing, applies nothing twice") {
  Env env;
  const json first = env.simulate(20, 0);
  const std::uint64_t first_events = first["events"];
  REQUIRE(first_events > 1000);

  auto serve = env.serve();
  REQUIRE_MESSAGE(eventually([&] { return env.consumed() == first_events; }, std::chrono::seconds(60)),
                  "serve did not consume " << first_events << " events; log:\n" << serve->log());
  env.check_regions_match(first);
  {
    const json s = env.status();
    CHECK(s["totals"]["applied"] == first_events);
    CHECK(s["totals"]["rejected"] == 0);
  }
  // A location query answers with the location's skus.
  const HttpReply loc = http_get(env.port, "/v1/stock?location=2");
  REQUIRE(loc.status == 200);
  CHECK(loc.json()["kind"] == "Store");
  CHECK(http_get(env.port, "/v1/stock?location=999999").status == 404);
  CHECK(http_get(env.port, "/v1/stock?location=abc").status == 400);
  // The binary applies the tokens file: no token reads nothing, a regional token sees its region only.
  CHECK(http_get(env.port, "/v1/stock/regions", "").status == 401);
  {
    const HttpReply east = http_get(env.port, "/v1/stock/regions", kTestEastToken);
    REQUIRE(east.status == 200);
    REQUIRE(east.json()["regions"].size() == 1);
    CHECK(east.json()["regions"][0]["region"] == "East");
    CHECK(http_get(env.port, "/v1/stock?location=2", kTestEastToken).status == 200);
    CHECK(http_get(env.port, "/v1/stock?location=2", kTestWestToken).status == 404);
  }

  // Produce more while serving, and kill -9 the engine in the middle of ingesting it.
  json second;
  std::thread produce_more([&] { second = env.simulate(60, 20); });
  REQUIRE(eventually([&] { return env.consumed() > first_events; }, std::chrono::seconds(60)));
  const std::uint64_t killed_at = env.consumed();
  serve->kill(SIGKILL);
  CHECK(serve->wait() == 128 + SIGKILL);
  produce_more.join();
  const std::uint64_t total = first_events + second["events"].get<std::uint64_t>();
  MESSAGE("kill -9 after " << killed_at << " of " << total << " events were committed");

  serve = env.serve();
  REQUIRE_MESSAGE(eventually([&] { return env.consumed() == total; }, std::chrono::seconds(60)),
                  "after restart, serve did not reach " << total << "; log:\n" << serve->log());
  env.check_regions_match(second);
  const json s = env.status();
  CHECK(s["totals"]["applied"] == total);  // exactly once: none lost, none applied twice
  CHECK(s["totals"]["rejected"] == 0);
  std::uint64_t next_offsets = 0;
  for (const json& p : s["partitions"]) next_offsets += p["next_offset"].get<std::uint64_t>();
  CHECK(next_offsets == total);  // one record per event, no transaction markers

  // The auditor's view: invariants hold, and a fresh replay of the same prefix has the same state.
  // The store is audited while serve still has it open.
  {
    auto [rc, out] = run({env.bin, "audit", "-b", env.brokers, "-t", env.topic, "--data", env.dir.path() + "/data"},
                         env.dir.path());
    INFO(out);
    CHECK(rc == 0);
    CHECK(out.find(fmt::format("{} events audited", total)) != std::string::npos);
    CHECK(out.find("FAIL") == std::string::npos);
  }
  std::uint64_t live_digest = 0;
  for (const json& p : s["partitions"]) live_digest += std::stoull(p["digest"].get<std::string>(), nullptr, 16);

  // Order status: what the order projection kept up to date while applying is what a start rebuilds
  // from the store, answer for answer (the position included: nothing arrived in between).
  const HttpReply orders_live = http_get(env.port, "/v1/orders?store=2&limit=1000");
  REQUIRE(orders_live.status == 200);
  REQUIRE_FALSE(orders_live.json()["orders"].empty());
  const std::uint64_t first_order = orders_live.json()["orders"][0]["order"];
  const HttpReply order_live = http_get(env.port, fmt::format("/v1/orders?id={}", first_order));
  REQUIRE(order_live.status == 200);
  CHECK(http_get(env.port, fmt::format("/v1/orders?id={}", first_order), kTestWestToken).status == 404);

  serve->kill(SIGTERM);
  CHECK(serve->wait() == 0);
  serve = env.serve();
  REQUIRE_MESSAGE(eventually([&] { return env.consumed() == total; }, std::chrono::seconds(60)),
                  "serve did not restart; log:\n" << serve->log());
  CHECK(http_get(env.port, "/v1/orders?store=2&limit=1000").body == orders_live.body);
  CHECK(http_get(env.port, fmt::format("/v1/orders?id={}", first_order)).body == order_live.body);
  serve->kill(SIGTERM);
  CHECK(serve->wait() == 0);

  auto [rc, out] = run({env.bin, "replay", "-b", env.brokers, "-t", env.topic}, env.dir.path());
  INFO(out);
  CHECK(rc == 0);
  CHECK(out.find(fmt::format("replayed {} events", total)) != std::string::npos);
  CHECK(out.find(fmt::format("digest {:016x}\n", live_digest)) != std::string::npos);
}

TEST_CASE("serve: SIGHUP reads the tokens file again; a file that does not parse leaves the tokens in force") {
  Env env;
  const json first = env.simulate(2, 0);
  auto serve = env.serve();
  REQUIRE_MESSAGE(eventually([&] { return env.consumed() == first["events"].get<std::uint64_t>(); }, std::chrono::seconds(60)),
                  "serve did not consume the events; log:\n" << serve->log());
  CHECK(http_get(env.port, "/v1/stock/regions", kTestWestToken).status == 200);

  // West's token revoked, the rest kept: in force after the hangup, without a restart.
  json tokens = json::parse(test_tokens_json());
  auto& list = tokens["tokens"];
  list.erase(std::remove_if(list.begin(), list.end(), [](const json& t) { return t["name"] == "west"; }), list.end());
  auto write = [&](const std::string& text) {
    std::ofstream(env.tokens_file + ".tmp") << text;
    std::filesystem::rename(env.tokens_file + ".tmp", env.tokens_file);
  };
  write(tokens.dump());
  serve->kill(SIGHUP);
  REQUIRE_MESSAGE(eventually([&] { return http_get(env.port, "/v1/stock/regions", kTestWestToken).status == 401; },
                             std::chrono::seconds(10)),
                  "the revoked token still reads; log:\n" << serve->log());
  CHECK(http_get(env.port, "/v1/stock/regions", kTestEastToken).status == 200);
  CHECK(http_get(env.port, "/v1/status").status == 200);
  CHECK(eventually([&] { return serve->log().find("read again (SIGHUP): 4 tokens in force") != std::string::npos; },
                   std::chrono::seconds(10)));

  // A file that does not parse: the error in the log names it; the tokens in force stay.
  write(R"({"tokens": [{"name": "hq", "role": "boss", "token": "qudao-test-hq-token-0123456789"}]})");
  serve->kill(SIGHUP);
  REQUIRE_MESSAGE(eventually([&] { return serve->log().find("the tokens in force stay") != std::string::npos; },
                             std::chrono::seconds(10)),
                  "no error logged for the broken file; log:\n" << serve->log());
  CHECK(serve->log().find(fmt::format("tokens file {}: tokens[0].role", env.tokens_file)) != std::string::npos);
  CHECK(http_get(env.port, "/v1/stock/regions", kTestEastToken).status == 200);
  CHECK(http_get(env.port, "/v1/stock/regions", kTestWestToken).status == 401);

  serve->kill(SIGTERM);
  CHECK(serve->wait() == 0);  // the hangups did not end it
}

}  // namespace qudao
