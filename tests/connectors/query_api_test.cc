// The query API's access rules over real HTTP: every endpoint × role × region, swapped ids, and
// what a request without a good token gets. No Kafka broker (tests/connectors/api_fixture.h).
#include <doctest/doctest.h>
#include <fmt/format.h>

#include "tests/connectors/api_fixture.h"

namespace qudao {
using namespace qudao::test;
using nlohmann::json;

namespace {

// Who asks: no token, a token nobody was given, and one token of each role.
struct Caller {
  const char* name;
  std::string token;
};

const std::vector<Caller>& callers() {
  static const std::vector<Caller> all{{"none", ""},
                                       {"unknown", "qudao-not-a-token-0123456789"},
                                       {"hq", kTestHqToken},
                                       {"east", kTestEastToken},
                                       {"west", kTestWestToken},
                                       {"metrics", kTestMetricsToken},
                                       {"ingest", kTestIngestToken}};
  return all;
}

struct Expectation {
  std::string target;
  std::map<std::string, unsigned> status_by_caller;  // every caller in callers()
};

std::string loc(std::uint64_t id) { return fmt::format("/v1/stock?location={}", id); }

// The whole matrix. 401 without a good token (except /health); 403 for a role the endpoint does
// not admit; 404 for an object outside the caller's regions, as for one that does not exist.
std::vector<Expectation> matrix() {
  auto row = [](unsigned none, unsigned unknown, unsigned hq, unsigned east, unsigned west, unsigned metrics,
                unsigned ingest) {
    return std::map<std::string, unsigned>{{"none", none}, {"unknown", unknown}, {"hq", hq}, {"east", east},
                                           {"west", west}, {"metrics", metrics}, {"ingest", ingest}};
  };
  //                               none unknown hq  east west metrics ingest
  return {
      {"/health", row(200, 200, 200, 200, 200, 200, 200)},
      {"/metrics", row(401, 401, 200, 403, 403, 200, 403)},
      {"/v1/status", row(401, 401, 200, 403, 403, 403, 403)},
      {"/v1/dead-letters?partition=0", row(401, 401, 200, 403, 403, 403, 403)},
      {"/v1/stock/regions", row(401, 401, 200, 200, 200, 403, 403)},
      {loc(kEastWarehouse), row(401, 401, 200, 200, 404, 403, 403)},
      {loc(kEastStore), row(401, 401, 200, 200, 404, 403, 403)},
      {loc(kEastStore) + "&sku=1", row(401, 401, 200, 200, 404, 403, 403)},
      {loc(kWestWarehouse), row(401, 401, 200, 404, 200, 403, 403)},
      {loc(kWestStore), row(401, 401, 200, 404, 200, 403, 403)},
      {loc(kWestStore) + "&sku=1", row(401, 401, 200, 404, 200, 403, 403)},
      {loc(kNorthWarehouse), row(401, 401, 200, 404, 404, 403, 403)},
      {loc(kNoSuchLocation), row(401, 401, 404, 404, 404, 403, 403)},
      {"/v1/stock?location=abc", row(401, 401, 400, 400, 400, 403, 403)},
      {"/v1/orders?id=1", row(401, 401, 200, 200, 404, 403, 403)},  // the fixture's East order
      {"/v1/orders?id=2", row(401, 401, 200, 404, 200, 403, 403)},  // and its West one
      {"/v1/orders?id=3", row(401, 401, 404, 404, 404, 403, 403)},
      {fmt::format("/v1/orders?store={}", kEastStore), row(401, 401, 200, 200, 404, 403, 403)},
      {fmt::format("/v1/orders?store={}", kWestStore), row(401, 401, 200, 404, 200, 403, 403)},
      {"/v1/no-such-endpoint", row(401, 401, 404, 404, 404, 404, 404)},
  };
}

}  // namespace

TEST_CASE("query api: every endpoint answers every role and region as the access table says") {
  ApiFixture api;
  for (const Expectation& e : matrix()) {
    for (const Caller& c : callers()) {
      INFO("GET " << e.target << " as " << c.name);
      REQUIRE(e.status_by_caller.contains(c.name));
      CHECK(http_get(api.port(), e.target, c.token).status == e.status_by_caller.at(c.name));
    }
  }
}

TEST_CASE("query api: a regional token sees its own region's stock and totals, and no nation") {
  ApiFixture api;
  const HttpReply hq = http_get(api.port(), "/v1/stock/regions", kTestHqToken);
  REQUIRE(hq.status == 200);
  const json all = hq.json();
  REQUIRE(all["regions"].size() == 3);
  CHECK(all["regions"][0]["region"] == "East");
  CHECK(all["regions"][1]["region"] == "North");
  CHECK(all["regions"][2]["region"] == "West");
  CHECK(all["nation"]["on_hand"] == 100 + 40 + 7 + 11);
  CHECK(all["nation"]["locations"] == 5);

  for (const auto& [token, region, on_hand] :
       {std::tuple{kTestEastToken, "East", 140}, std::tuple{kTestWestToken, "West", 7}}) {
    INFO("region " << region);
    const HttpReply r = http_get(api.port(), "/v1/stock/regions", token);
    REQUIRE(r.status == 200);
    const json body = r.json();
    REQUIRE(body["regions"].size() == 1);
    CHECK(body["regions"][0]["region"] == region);
    CHECK(body["regions"][0]["on_hand"] == on_hand);
    CHECK(body["regions"][0]["locations"] == 2);
    CHECK_FALSE(body.contains("nation"));
  }

  const HttpReply east_store = http_get(api.port(), loc(kEastStore), kTestEastToken);
  REQUIRE(east_store.status == 200);
  CHECK(east_store.json()["region"] == "East");
  CHECK(east_store.json()["skus"][0]["on_hand"] == 30);
  // HQ gets the same answer for it.
  CHECK(http_get(api.port(), loc(kEastStore), kTestHqToken).body == east_store.body);
}

TEST_CASE("query api: another region's location id answers exactly as an id that does not exist") {
  ApiFixture api;
  // What a caller gets for an id no location has, with `id` written in.
  auto not_found = [&](const std::string& token, std::uint64_t id, const std::string& suffix) {
    HttpReply r = http_get(api.port(), loc(kNoSuchLocation) + suffix, token);
    REQUIRE(r.status == 404);
    const std::string from = std::to_string(kNoSuchLocation);
    r.body.replace(r.body.find(from), from.size(), std::to_string(id));
    return r;
  };
  struct Swap {
    const char* token;
    std::uint64_t location;
  };
  for (const Swap& s : {Swap{kTestEastToken, kWestWarehouse}, Swap{kTestEastToken, kWestStore},
                        Swap{kTestEastToken, kNorthWarehouse}, Swap{kTestWestToken, kEastWarehouse},
                        Swap{kTestWestToken, kEastStore}, Swap{kTestWestToken, kNorthWarehouse}}) {
    for (const std::string suffix : {"", "&sku=1", "&sku=424242"}) {
      INFO("token " << std::string(s.token) << " asks for location " << s.location << suffix);
      const HttpReply got = http_get(api.port(), loc(s.location) + suffix, s.token);
      const HttpReply missing = not_found(s.token, s.location, suffix);
      CHECK(got.status == 404);
      CHECK(got.body == missing.body);
      // The same fields but for the length of the body, which has another number in it.
      auto fields = [](const HttpReply& r) {
        auto out = r.headers;
        std::erase_if(out, [](const auto& f) { return f.first == "Content-Length"; });
        return out;
      };
      CHECK(fields(got) == fields(missing));
      CHECK(got.body.find("West") == std::string::npos);
      CHECK(got.body.find("East") == std::string::npos);
      CHECK(got.body.find("North") == std::string::npos);
    }
  }
}

TEST_CASE("query api: without a good token the answer is 401 with a Bearer challenge, and tells nothing else") {
  ApiFixture api;
  const HttpReply none = http_get(api.port(), "/v1/status", "");
  CHECK(none.status == 401);
  CHECK(none.header("WWW-Authenticate") == R"(Bearer realm="qudao")");

  const HttpReply unknown = http_get(api.port(), "/v1/status", "qudao-not-a-token-0123456789");
  CHECK(unknown.status == 401);
  CHECK(unknown.header("WWW-Authenticate") == R"(Bearer realm="qudao", error="invalid_token")");

  // A prefix or an extension of a good token is no token.
  const std::string hq = kTestHqToken;
  CHECK(http_get(api.port(), "/v1/status", hq.substr(0, hq.size() - 1)).status == 401);
  CHECK(http_get(api.port(), "/v1/status", hq + "0").status == 401);
  // Unknown paths are not revealed before authentication.
  CHECK(http_get(api.port(), "/v1/no-such-endpoint", "").status == 401);

  auto with_authorization = [&](const std::string& value) {
    return raw_exchange(api.port(), fmt::format("GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\n"
                                                "Connection: close\r\n\r\n",
                                                value))
        .status();
  };
  CHECK(with_authorization(fmt::format("Basic {}", kTestHqToken)) == 401);
  CHECK(with_authorization("Bearer") == 401);
  CHECK(with_authorization("Bearer   ") == 401);
  CHECK(with_authorization(fmt::format("bearer {}", kTestHqToken)) == 200);  // the scheme is case-insensitive
  CHECK(with_authorization(fmt::format("Bearer  {} ", kTestHqToken)) == 200);
}

TEST_CASE("query api: only GET is allowed, and only after authentication") {
  ApiFixture api;
  auto post = [&](const std::string& path, const std::string& token) {
    const std::string auth = token.empty() ? "" : fmt::format("Authorization: Bearer {}\r\n", token);
    return raw_exchange(api.port(), fmt::format("POST {} HTTP/1.1\r\nHost: x\r\n{}Content-Length: 2\r\n"
                                                "Connection: close\r\n\r\n{{}}",
                                                path, auth));
  };
  const Received allowed = post("/v1/status", kTestHqToken);
  CHECK(allowed.status() == 405);
  CHECK(allowed.bytes.find("Allow: GET\r\n") != std::string::npos);
  CHECK(post("/v1/status", "").status() == 401);
  CHECK(post("/health", "").status() == 405);
}

TEST_CASE("query api: dead letters page by cursor: a full page points past its last letter, the rest ends with null") {
  ApiFixture api;
  const HttpReply first = http_get(api.port(), "/v1/dead-letters?partition=0&limit=1", kTestHqToken);
  REQUIRE(first.status == 200);
  const std::string cursor = first.json()["next_cursor"].get<std::string>();
  CHECK(cursor == std::to_string(first.json()["dead_letters"][0]["offset"].get<std::int64_t>() + 1));
  const HttpReply rest = http_get(api.port(), "/v1/dead-letters?partition=0&limit=1&cursor=" + cursor, kTestHqToken);
  REQUIRE(rest.status == 200);
  CHECK(rest.json()["dead_letters"].empty());
  CHECK(rest.json()["next_cursor"].is_null());
  CHECK(http_get(api.port(), "/v1/dead-letters?partition=0&from=0&cursor=1", kTestHqToken).status == 400);
}

TEST_CASE("query api: a limit out of an endpoint's range is a 400 naming the range, on every listing") {
  ApiFixture api;
  for (const char* target : {"/v1/dead-letters?partition=0&limit=0", "/v1/dead-letters?partition=0&limit=1001",
                             "/v1/leaderboard?region=East&period=2026-01&limit=501", "/v1/conflicts?limit=0",
                             "/v1/rebates?party=1&limit=201", "/v1/anomalies?location=1&limit=1001",
                             "/v1/stock?limit=0", "/v1/forecast?limit=0", "/v1/orders?store=2&limit=1001"}) {
    CAPTURE(target);
    const HttpReply r = http_get(api.port(), target, kTestHqToken);
    CHECK(r.status == 400);
    CHECK(r.body.find("query parameter limit: expected 1 to ") != std::string::npos);
  }
}

TEST_CASE("query api: the dead letters and status HQ reads are the store's and the pipeline's") {
  ApiFixture api;
  const HttpReply letters = http_get(api.port(), "/v1/dead-letters?partition=0", kTestHqToken);
  REQUIRE(letters.status == 200);
  REQUIRE(letters.json()["dead_letters"].size() == 1);
  CHECK(letters.json()["dead_letters"][0]["reason"] == "unknown_location");
  CHECK(letters.json()["next_cursor"].is_null());  // the page was not full: nothing after it
  const HttpReply status = http_get(api.port(), "/v1/status", kTestHqToken);
  REQUIRE(status.status == 200);
  CHECK(status.json()["totals"]["rejected"] == 1);
  const HttpReply metrics = http_get(api.port(), "/metrics", kTestMetricsToken);
  REQUIRE(metrics.status == 200);
  CHECK(metrics.body.find("qudao_events_total{outcome=\"rejected\",partition=\"0\"} 1") != std::string::npos);
  // Both requests above were timed under their endpoint's path.
  CHECK(metrics.body.find("qudao_query_duration_seconds_count{path=\"/v1/dead-letters\"} 1\n") != std::string::npos);
  CHECK(metrics.body.find("qudao_query_duration_seconds_count{path=\"/v1/status\"} 1\n") != std::string::npos);
  CHECK(metrics.body.find("# TYPE qudao_commit_duration_seconds histogram") != std::string::npos);
}

TEST_CASE("query api: every route api_routes() lists is answered, by path and method") {
  ApiFixture api;
  for (const ApiRoute& r : api_routes()) {
    INFO(r.method << " " << r.path);
    REQUIRE((r.method == "GET" || r.method == "POST"));
    const unsigned status = r.method == "GET" ? http_get(api.port(), std::string(r.path), kTestHqToken).status
                                              : http_post(api.port(), std::string(r.path), "{}", kTestHqToken).status;
    CHECK(status != 404);
    CHECK(status != 405);
  }
}

}  // namespace qudao
