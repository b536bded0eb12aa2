// The HTTP server's abuse limits over raw sockets: oversized headers and bodies, slow clients, and
// the cap on connections. No Kafka broker (tests/connectors/api_fixture.h).
#include <doctest/doctest.h>
#include <fmt/format.h>
#include <sys/resource.h>

#include "tests/connectors/api_fixture.h"

namespace qudao {
using namespace qudao::test;

namespace {

std::string get_request(const std::string& path, const std::string& extra_fields = "") {
  return fmt::format("GET {} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n{}Connection: close\r\n\r\n", path,
                     kTestHqToken, extra_fields);
}

// Holding hundreds of connections in one process takes two descriptors each (client and server).
void ensure_descriptors(rlim_t wanted) {
  rlimit l{};
  REQUIRE(getrlimit(RLIMIT_NOFILE, &l) == 0);
  if (l.rlim_cur >= wanted) return;
  l.rlim_cur = std::min(wanted, l.rlim_max);
  REQUIRE(setrlimit(RLIMIT_NOFILE, &l) == 0);
  REQUIRE_MESSAGE(l.rlim_cur >= wanted, "need " << wanted << " file descriptors, the hard limit is " << l.rlim_max);
}

}  // namespace

TEST_CASE("http limits: a header over http_header_bytes_max is answered 431 and the connection closed") {
  ApiFixture api;  // header_bytes_max: 8 KiB
  const std::uint32_t limit = HttpOptions{}.header_bytes_max;
  const Received big = raw_exchange(api.port(), get_request("/v1/status", fmt::format("X-Big: {}\r\n", std::string(limit, 'a'))));
  CHECK(big.status() == 431);
  CHECK(big.closed);
  // Within the limit it is an ordinary request.
  const Received fits =
      raw_exchange(api.port(), get_request("/v1/status", fmt::format("X-Big: {}\r\n", std::string(limit - 512, 'a'))));
  CHECK(fits.status() == 200);
  // The limit holds before authentication: no token is needed to be refused.
  CHECK(raw_exchange(api.port(), fmt::format("GET /v1/status HTTP/1.1\r\nX-Big: {}\r\n\r\n", std::string(limit, 'a')))
            .status() == 431);
}

TEST_CASE("http limits: a declared body over http_body_bytes_max is answered 413 before any of it is sent") {
  ApiFixture api;  // body_bytes_max: 1 MiB
  boost::asio::io_context io;
  tcp::socket s = raw_connect(io, api.port());
  // 100 MiB declared and none sent: the answer can only come from the header.
  raw_send(s, "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
              "Content-Length: 104857600\r\n\r\n");
  const Received r = read_until_closed(s, Clock::now() + std::chrono::seconds(5));
  CHECK(r.status() == 413);
  CHECK(r.closed);
  CHECK(api.server->connections() <= 1);  // the session is gone or lingering, not buffering

  SUBCASE("and still 413 when the client has sent part of the body already") {
    const Received part = raw_exchange(api.port(), "POST /v1/events HTTP/1.1\r\nHost: x\r\nContent-Length: 104857600\r\n\r\n" +
                                                       std::string(32 * 1024, '{'));
    CHECK(part.status() == 413);
    CHECK(part.closed);
  }
}

TEST_CASE("http limits: a chunked body is cut off with 413 once it passes http_body_bytes_max") {
  HttpOptions o;
  o.body_bytes_max = 1024;
  ApiFixture api(o);
  const Received r = raw_exchange(api.port(), "POST /v1/events HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
                                              "800\r\n" + std::string(2048, 'x') + "\r\n");
  CHECK(r.status() == 413);
  CHECK(r.closed);
}

TEST_CASE("http limits: 300 slow clients trickling headers do not delay normal queries, and are closed at "
          "http_read_timeout_ms without an answer") {
  constexpr std::size_t kSlow = 300;
  ensure_descriptors(4 * kSlow);
  HttpOptions o;
  o.read_timeout = std::chrono::milliseconds(3'000);
  ApiFixture api(o);

  boost::asio::io_context io;
  std::vector<tcp::socket> slow;
  std::vector<Clock::time_point> connected_at;
  slow.reserve(kSlow);
  for (std::size_t i = 0; i < kSlow; ++i) {
    slow.push_back(raw_connect(io, api.port()));
    connected_at.push_back(Clock::now());
    raw_send(slow.back(), "GET /v1/stock/regions HTTP/1.1\r\nHost: x\r\n");  // and never the blank line
  }
  REQUIRE(eventually([&] { return api.server->connections() >= kSlow; }, std::chrono::seconds(5)));

  // Slowloris: every slow client sends one more header line each round, while normal queries run.
  std::vector<std::chrono::milliseconds> latencies;
  for (int round = 0; Clock::now() < connected_at.back() + std::chrono::milliseconds(1'500); ++round) {
    for (tcp::socket& s : slow) raw_send(s, fmt::format("X-Slow-{}: y\r\n", round));
    for (int q = 0; q < 3; ++q) {
      const auto start = Clock::now();
      const HttpReply r = http_get(api.port(), "/v1/stock/regions", kTestEastToken);
      latencies.push_back(std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start));
      REQUIRE(r.status == 200);
      CHECK(r.json()["regions"][0]["region"] == "East");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // The queries above ran while every slow connection was held open.
  CHECK(api.server->connections() >= kSlow);
  CHECK(latencies.size() >= 9);
  const auto slowest = *std::max_element(latencies.begin(), latencies.end());
  MESSAGE(latencies.size() << " queries beside " << kSlow << " slow clients; the slowest took " << slowest.count() << " ms");
  CHECK(slowest < std::chrono::milliseconds(1'000));

  // Each slow client is closed at its deadline, trickling or not, and gets no answer. All are
  // watched at once, so each close is timed when it happens.
  const auto give_up = Clock::now() + o.read_timeout + std::chrono::seconds(5);
  std::vector<pollfd> watch;
  for (tcp::socket& s : slow) watch.push_back(pollfd{s.native_handle(), POLLIN, 0});
  std::size_t closed = 0, answered = 0, early = 0;
  while (closed < kSlow && Clock::now() < give_up) {
    if (::poll(watch.data(), watch.size(), 100) <= 0) continue;
    for (std::size_t i = 0; i < kSlow; ++i) {
      if (watch[i].fd < 0 || watch[i].revents == 0) continue;
      char buf[512];
      const ssize_t got = ::recv(watch[i].fd, buf, sizeof buf, 0);
      if (got > 0) {
        ++answered;
        continue;
      }
      ++closed;
      if (Clock::now() < connected_at[i] + o.read_timeout - std::chrono::milliseconds(100)) ++early;
      watch[i].fd = -1;  // poll ignores it from now on
    }
  }
  CHECK(closed == kSlow);
  CHECK(answered == 0);
  CHECK(early == 0);
  CHECK(eventually([&] { return api.server->connections() == 0; }, std::chrono::seconds(5)));
}

TEST_CASE("http limits: a keep-alive connection left idle is closed at http_read_timeout_ms") {
  HttpOptions o;
  o.read_timeout = std::chrono::milliseconds(500);
  ApiFixture api(o);
  boost::asio::io_context io;
  tcp::socket s = raw_connect(io, api.port());
  raw_send(s, fmt::format("GET /v1/status HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {}\r\n\r\n", kTestHqToken));
  const auto start = Clock::now();
  const Received r = read_until_closed(s, start + std::chrono::seconds(5));
  CHECK(r.status() == 200);
  CHECK(r.closed);
  CHECK(Clock::now() - start >= std::chrono::milliseconds(400));
}

TEST_CASE("http limits: beyond http_connections_max a new connection is answered 503 and closed; freed "
          "slots serve again") {
  HttpOptions o;
  o.connections_max = 8;
  ApiFixture api(o);
  boost::asio::io_context io;
  std::vector<tcp::socket> held;
  for (std::size_t i = 0; i < o.connections_max; ++i) held.push_back(raw_connect(io, api.port()));
  REQUIRE(eventually([&] { return api.server->connections() == o.connections_max; }, std::chrono::seconds(5)));

  tcp::socket extra = raw_connect(io, api.port());
  const Received refused = read_until_closed(extra, Clock::now() + std::chrono::seconds(5));
  CHECK(refused.status() == 503);
  CHECK(refused.bytes.find("Retry-After: 1\r\n") != std::string::npos);
  CHECK(refused.closed);
  CHECK(api.server->connections() == o.connections_max);

  held.pop_back();  // closes it: the server sees the end of the stream and frees the slot
  REQUIRE(eventually([&] { return api.server->connections() < o.connections_max; }, std::chrono::seconds(5)));
  CHECK(http_get(api.port(), "/v1/status", kTestHqToken).status == 200);
}

}  // namespace qudao
