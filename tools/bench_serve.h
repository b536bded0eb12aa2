// What the `qudao bench` rows that run a real `qudao serve` share: the serve process itself (spawned
// from this binary on a topic and data directory, with a tokens file holding one HQ token), a
// one-shot GET, and a keep-alive HTTP client. Used by the restart and query rows (tools/bench.cc,
// tools/bench_query.h) and the visible and post rows' client (tools/bench_visible.h).
// Nothing here is thread-safe: one thread per ServeProcess and per BenchClient.
#pragma once

#include <signal.h>
#include <sys/types.h>

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "tools/commands.h"

namespace qudao {

// The one token the bench's serve processes accept (an HQ token, in a tokens file of their own).
inline constexpr const char* kBenchToken = "qudao-bench-hq-token-0123456789";

// GET `target` on a new connection with kBenchToken; the body of a 200, else an error.
Result<std::string> http_get(std::uint16_t port, const std::string& target);

// Writes a tokens file holding kBenchToken as HQ into `dir`; its path.
Result<std::string> write_tokens_file(const std::string& dir);

// A loopback TCP port that was free a moment ago.
std::uint16_t free_port();

// `qudao serve` as a child process, its stderr to /dev/null; killed (SIGKILL) when destroyed.
class ServeProcess {
 public:
  // `extra`: more of serve's options, after the others.
  static Result<ServeProcess> start(const std::string& binary, const KafkaArgs& kafka, const std::string& topic,
                                    const std::string& dir, std::uint16_t port, const std::string& tokens,
                                    const std::vector<std::string>& extra = {});

  // Waits until /v1/status reports `total` records consumed; the seconds it took.
  Result<double> wait_ready(std::uint64_t total, std::chrono::seconds timeout) const;

  // CPU seconds (user + system, every thread) the process has used so far; 0 once stopped.
  double cpu_seconds() const;

  void stop(int signal);

  pid_t pid() const { return pid_; }

  ServeProcess(ServeProcess&& o) noexcept : pid_(std::exchange(o.pid_, -1)), port_(o.port_) {}
  ~ServeProcess() { stop(SIGKILL); }

 private:
  ServeProcess(pid_t pid, std::uint16_t port) : pid_(pid), port_(port) {}
  pid_t pid_;
  std::uint16_t port_;
};

// One keep-alive HTTP connection with a bearer token.
class BenchClient {
 public:
  // Connects, retrying until `wait_max` has passed (a server that is still starting); throws
  // boost::system::system_error if it never listens.
  BenchClient(std::uint16_t port, std::string token, std::chrono::milliseconds wait_max = std::chrono::milliseconds(0));
  // Status and body; throws on a transport error (caught by the caller's thread).
  std::pair<unsigned, std::string> request(boost::beast::http::verb verb, const std::string& target, std::string body);

 private:
  boost::asio::io_context io_;
  boost::asio::ip::tcp::socket socket_;
  boost::beast::flat_buffer buffer_;
  std::string token_;
};

}  // namespace qudao
