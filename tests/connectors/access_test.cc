#include "connectors/access.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <filesystem>
#include <fstream>

#include "tests/process.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

Status parse_error(const std::string& text) {
  auto t = AccessTokens::parse(text, "tokens.json");
  REQUIRE_MESSAGE(!t.is_ok(), "expected an error for " << text);
  return t.status();
}

std::string one(const std::string& entry) { return fmt::format(R"({{"tokens": [{}]}})", entry); }

}  // namespace

TEST_CASE("access: each token names a principal with its role and scope; anything else is nobody") {
  auto tokens = AccessTokens::parse(test_tokens_json(), "test tokens");
  REQUIRE_MESSAGE(tokens.is_ok(), tokens.status().message());
  CHECK(tokens.value().size() == 5);

  const Principal* hq = tokens.value().authenticate(kTestHqToken);
  REQUIRE(hq != nullptr);
  CHECK(hq->name == "hq");
  CHECK(hq->role == Role::hq);
  CHECK(hq->scope.is_all());

  const Principal* east = tokens.value().authenticate(kTestEastToken);
  REQUIRE(east != nullptr);
  CHECK(east->role == Role::regional);
  CHECK(east->scope.contains("East"));
  CHECK_FALSE(east->scope.contains("West"));

  const Principal* metrics = tokens.value().authenticate(kTestMetricsToken);
  REQUIRE(metrics != nullptr);
  CHECK(metrics->role == Role::metrics);
  CHECK_FALSE(metrics->scope.contains("East"));

  const std::string good = kTestHqToken;
  CHECK(tokens.value().authenticate("") == nullptr);
  CHECK(tokens.value().authenticate(good.substr(0, good.size() - 1)) == nullptr);
  CHECK(tokens.value().authenticate(good + "x") == nullptr);
  CHECK(tokens.value().authenticate("QUDAO-TEST-HQ-TOKEN-0123456789") == nullptr);
  CHECK(AccessTokens().authenticate(kTestHqToken) == nullptr);  // no tokens: nobody
}

TEST_CASE("access: a token_sha256 entry admits the token whose SHA-256 it holds") {
  // printf %s 'qudao-hashed-token-0123456789' | sha256sum
  auto tokens = AccessTokens::parse(
      one(R"({"name": "p", "role": "metrics", "token_sha256": "4c87fa8f2b0a345b86bdb502fc298f21fc9fbdf7eb65df8612a42e4f920dee9b"})"),
      "t");
  REQUIRE_MESSAGE(tokens.is_ok(), tokens.status().message());
  const std::string hashed = "qudao-hashed-token-0123456789";
  const Principal* p = tokens.value().authenticate(hashed);
  REQUIRE(p != nullptr);
  CHECK(p->role == Role::metrics);
  CHECK(tokens.value().authenticate("4c87fa8f2b0a345b86bdb502fc298f21fc9fbdf7eb65df8612a42e4f920dee9b") == nullptr);
}

TEST_CASE("access: a tokens file that could grant the wrong thing is refused, naming the entry") {
  const std::string token = R"("token": "0123456789abcdef0123")";
  CHECK(parse_error("not json").message() == "tokens.json: not valid JSON");
  CHECK(parse_error(R"({"tokens": []})").message().find("tokens: required") != std::string::npos);
  CHECK(parse_error(R"({"tokens": [], "extra": 1})").message().find("extra: unknown key") != std::string::npos);
  CHECK(parse_error(one(R"({"name": "a", "role": "regional", )" + token + "}")).message() ==
        "tokens.json: tokens[0].regions: required for role regional: a non-empty array of region names");
  CHECK(parse_error(one(R"({"name": "a", "role": "regional", "regions": [], )" + token + "}")).message().find(
            "tokens[0].regions: required") != std::string::npos);
  CHECK(parse_error(one(R"({"name": "a", "role": "regional", "regions": [""], )" + token + "}")).message().find(
            "tokens[0].regions: every region") != std::string::npos);
  // A typo must not silently turn a regional token into something else.
  CHECK(parse_error(one(R"({"name": "a", "role": "regional", "region": ["East"], )" + token + "}")).message().find(
            "tokens[0].region: unknown key") != std::string::npos);
  CHECK(parse_error(one(R"({"name": "a", "role": "hq", "regions": ["East"], )" + token + "}")).message() ==
        "tokens.json: tokens[0].regions: not allowed for role hq");
  CHECK(parse_error(one(R"({"name": "a", "role": "admin", )" + token + "}")).message() ==
        "tokens.json: tokens[0].role: must be one of hq, regional, metrics, ingest");
  CHECK(parse_error(one(R"({"role": "hq", )" + token + "}")).message().find("tokens[0].name: required") !=
        std::string::npos);
  CHECK(parse_error(one(R"({"name": "a", "role": "hq"})")).message() ==
        "tokens.json: tokens[0]: exactly one of token and token_sha256 is required");
  CHECK(parse_error(one(R"({"name": "a", "role": "hq", "token": "short"})")).message().find(
            "tokens[0].token: must be 16 to 1024 characters") != std::string::npos);
  CHECK(parse_error(one(R"({"name": "a", "role": "hq", "token": "has a space in it, so no"})")).message().find(
            "tokens[0].token: must be") != std::string::npos);
  CHECK(parse_error(one(R"({"name": "a", "role": "hq", "token_sha256": "abc"})")).message() ==
        "tokens.json: tokens[0].token_sha256: must be 64 hex digits");
  CHECK(parse_error(fmt::format(R"({{"tokens": [{{"name": "a", "role": "hq", {0}}}, {{"name": "b", "role": "metrics", {0}}}]}})",
                                token))
            .message() == "tokens.json: tokens[1]: same token as \"a\": a token must name one principal");
  CHECK(parse_error(fmt::format(R"({{"tokens": [{{"name": "a", "role": "hq", {}}}, {{"name": "a", "role": "hq", "token": "another-token-0123456789"}}]}})",
                                token))
            .message() == "tokens.json: tokens[1].name: \"a\" is used twice");
}

TEST_CASE("access: an ingest token writes every region, or with regions only those") {
  auto tokens = AccessTokens::parse(
      R"({"tokens": [{"name": "all", "role": "ingest", "token": "ingest-all-0123456789"},
                     {"name": "east", "role": "ingest", "regions": ["East"], "token": "ingest-east-0123456789"}]})",
      "t");
  REQUIRE_MESSAGE(tokens.is_ok(), tokens.status().message());
  const Principal* all = tokens.value().authenticate("ingest-all-0123456789");
  const Principal* east = tokens.value().authenticate("ingest-east-0123456789");
  REQUIRE((all != nullptr && east != nullptr));
  CHECK(all->role == Role::ingest);
  CHECK(all->scope.is_all());
  CHECK(east->scope.contains("East"));
  CHECK_FALSE(east->scope.contains("West"));
  CHECK(parse_error(one(R"({"name": "a", "role": "ingest", "regions": [], "token": "0123456789abcdef0123"})")).message() ==
        "tokens.json: tokens[0].regions: required for role ingest: a non-empty array of region names");
}

TEST_CASE("access: load_file reads a tokens file and names it in errors") {
  TempDir dir;
  auto tokens = AccessTokens::load_file(write_tokens_file(dir.path()));
  REQUIRE_MESSAGE(tokens.is_ok(), tokens.status().message());
  CHECK(tokens.value().authenticate(kTestWestToken)->scope.contains("West"));
  const std::string missing = dir.path() + "/missing.json";
  auto failed = AccessTokens::load_file(missing);
  REQUIRE_FALSE(failed.is_ok());
  CHECK(failed.status().message() == fmt::format("tokens file {}: cannot open", missing));
}

TEST_CASE("access: reload puts the file's new tokens in force; a file that does not parse leaves the old ones") {
  TempDir dir;
  const std::string path = write_tokens_file(dir.path());
  auto loaded = AccessTokens::load_file(path);
  REQUIRE(loaded.is_ok());
  ServedTokens served(loaded.take(), path);
  CHECK(served.size() == 5);
  const std::shared_ptr<const Principal> west = served.authenticate(kTestWestToken);
  REQUIRE(west != nullptr);

  // West's token revoked, a new one for North added.
  const std::string north_token = "qudao-test-north-token-0123456789";
  auto write = [&](const std::string& text) {
    std::ofstream(path + ".tmp") << text;
    std::filesystem::rename(path + ".tmp", path);
  };
  write(fmt::format(R"({{"tokens": [{{"name": "hq", "role": "hq", "token": "{}"}},
                                    {{"name": "north", "role": "regional", "regions": ["North"], "token": "{}"}}]}})",
                    kTestHqToken, north_token));
  auto n = served.reload();
  REQUIRE_MESSAGE(n.is_ok(), n.status().message());
  CHECK(n.value() == 2);
  CHECK(served.authenticate(kTestWestToken) == nullptr);
  CHECK(served.authenticate(kTestEastToken) == nullptr);
  REQUIRE(served.authenticate(north_token) != nullptr);
  CHECK(served.authenticate(north_token)->scope.contains("North"));
  CHECK(served.authenticate(kTestHqToken)->role == Role::hq);
  // A principal found before the reload is still whole: it holds the tokens it came from.
  CHECK(west->name == "west");
  CHECK(west->scope.contains("West"));

  // A broken file: the error names it and the entry; the tokens in force stay.
  write(R"({"tokens": [{"name": "hq", "role": "boss", "token": "qudao-test-hq-token-0123456789"}]})");
  auto failed = served.reload();
  REQUIRE_FALSE(failed.is_ok());
  CHECK(failed.status().message().find(fmt::format("tokens file {}: tokens[0].role", path)) == 0);
  CHECK(served.size() == 2);
  CHECK(served.authenticate(north_token) != nullptr);

  std::filesystem::remove(path);
  CHECK(served.reload().status().message() == fmt::format("tokens file {}: cannot open", path));
  CHECK(served.authenticate(north_token) != nullptr);
  // Tokens that came from no file cannot be read again.
  CHECK_FALSE(ServedTokens(AccessTokens()).reload().is_ok());
}

TEST_CASE("access: bearer_token takes the token of a Bearer Authorization header, any case of the scheme") {
  CHECK(bearer_token("Bearer abc") == "abc");
  CHECK(bearer_token("bearer abc") == "abc");
  CHECK(bearer_token("BEARER   abc  ") == "abc");
  CHECK(bearer_token("").empty());
  CHECK(bearer_token("Bearer").empty());
  CHECK(bearer_token("Bearer ").empty());
  CHECK(bearer_token("Bearerabc").empty());
  CHECK(bearer_token("Basic abc").empty());
}

}  // namespace qudao
