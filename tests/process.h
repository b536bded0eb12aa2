// Helpers for tests that talk to qudao over HTTP: run the qudao binary as a child process, write a
// tokens file, and make HTTP GETs and POSTs with a bearer token.
#pragma once

#include <doctest/doctest.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <utility>  // before Boost 1.74 asio, which uses std::exchange without it

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

namespace qudao::test {

// A required environment variable: an integration test that lacks its broker fails, never skips.
inline std::string required_env(const char* name) {
  const char* v = std::getenv(name);
  REQUIRE_MESSAGE((v != nullptr && *v != '\0'), name << " is not set: run the tests through ctest, "
                                                        "which starts the Kafka broker (tools/kafka.sh)");
  return v;
}

class Child {
 public:
  // Starts `argv` with stdout and stderr appended to `log_path`.
  Child(std::vector<std::string> argv, const std::string& log_path) : Child(std::move(argv), log_path, {}) {}

  // Same, with `extra_env` ("KEY=value" each) added to the inherited environment; a key given
  // here replaces the inherited one.
  Child(std::vector<std::string> argv, const std::string& log_path, const std::vector<std::string>& extra_env)
      : log_path_(log_path) {
    std::vector<std::string> env;
    for (char** e = environ; *e != nullptr; ++e) {
      const std::string kv(*e);
      const std::string key = kv.substr(0, kv.find('=') + 1);  // "KEY=", or "" for an odd entry
      bool replaced = false;
      for (const std::string& x : extra_env) replaced |= !key.empty() && x.starts_with(key);
      if (!replaced) env.push_back(kv);
    }
    env.insert(env.end(), extra_env.begin(), extra_env.end());
    std::vector<char*> envp;
    for (auto& kv : env) envp.push_back(kv.data());
    envp.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    std::vector<char*> args;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    const int rc = posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), envp.data());
    posix_spawn_file_actions_destroy(&fa);
    REQUIRE_MESSAGE(rc == 0, "cannot start " << argv[0]);
  }
  ~Child() {
    if (pid_ > 0) {
      ::kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
  }
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;

  void kill(int sig) { ::kill(pid_, sig); }

  // Waits for exit; returns the exit code, or 128 + signal.
  int wait() {
    int status = 0;
    waitpid(pid_, &status, 0);
    pid_ = -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  }

  // Waits up to `timeout` for exit; returns what wait() returns, or nothing if it still runs.
  std::optional<int> wait_for(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
      }
      if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  std::string log() const {
    std::ifstream in(log_path_);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  }

 private:
  pid_t pid_ = -1;
  std::string log_path_;
};

// Runs a command to completion; returns its stdout (stderr goes to `log_path`) and exit code.
inline std::pair<int, std::string> run(std::vector<std::string> argv, const std::string& dir) {
  const std::string out = dir + "/stdout.tmp";
  std::remove(out.c_str());
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 1, out.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&fa, 2, (dir + "/stderr.log").c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  std::vector<char*> args;
  for (auto& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  pid_t pid = -1;
  REQUIRE(posix_spawn(&pid, args[0], &fa, nullptr, args.data(), environ) == 0);
  posix_spawn_file_actions_destroy(&fa);
  int status = 0;
  waitpid(pid, &status, 0);
  std::ifstream in(out);
  std::stringstream ss;
  ss << in.rdbuf();
  return {WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status), ss.str()};
}

// A port that was free a moment ago.
inline std::uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

// The tokens of the file write_tokens_file() writes: every role, regional ones for East and West.
inline constexpr const char* kTestHqToken = "qudao-test-hq-token-0123456789";
inline constexpr const char* kTestEastToken = "qudao-test-east-token-0123456789";
inline constexpr const char* kTestWestToken = "qudao-test-west-token-0123456789";
inline constexpr const char* kTestMetricsToken = "qudao-test-metrics-token-0123456789";
inline constexpr const char* kTestIngestToken = "qudao-test-ingest-token-0123456789";

inline std::string test_tokens_json() {
  return nlohmann::json{
      {"tokens",
       {{{"name", "hq"}, {"role", "hq"}, {"token", kTestHqToken}},
        {{"name", "east"}, {"role", "regional"}, {"regions", {"East"}}, {"token", kTestEastToken}},
        {{"name", "west"}, {"role", "regional"}, {"regions", {"West"}}, {"token", kTestWestToken}},
        {{"name", "prometheus"}, {"role", "metrics"}, {"token", kTestMetricsToken}},
        {{"name", "ingest"}, {"role", "ingest"}, {"token", kTestIngestToken}}}}}
      .dump(2);
}

// Writes the test tokens file into `dir`; returns its path (for `qudao serve --tokens`). Written
// aside and renamed, so that a serve starting meanwhile reads the old file or the new, never half.
inline std::string write_tokens_file(const std::string& dir) {
  const std::string path = dir + "/tokens.json";
  const std::string aside = path + ".tmp";
  std::ofstream(aside) << test_tokens_json();
  std::filesystem::permissions(aside, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  std::filesystem::rename(aside, path);
  return path;
}

struct HttpReply {
  unsigned status = 0;  // 0: could not connect
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
  nlohmann::json json() const { return nlohmann::json::parse(body); }
  std::string header(std::string_view name) const {
    for (const auto& [n, v] : headers) {
      if (boost::beast::iequals(n, boost::beast::string_view(name.data(), name.size()))) return v;
    }
    return "";
  }
};

// `verb` `target` with `Authorization: Bearer <token>` (none if `token` is empty), and `body` with
// `content_type` (none if empty).
inline HttpReply http_request(std::uint16_t port, boost::beast::http::verb verb, const std::string& target,
                              const std::string& token, const std::string& body = "",
                              const std::string& content_type = "") {
  namespace beast = boost::beast;
  namespace http = beast::http;
  boost::asio::io_context io;
  beast::tcp_stream stream(io);
  beast::error_code ec;
  // A POST may wait for Kafka's acknowledgement (up to the ingest's 10 s) before it is answered.
  stream.expires_after(verb == http::verb::get ? std::chrono::seconds(5) : std::chrono::seconds(30));
  stream.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
  if (ec) return {};
  http::request<http::string_body> req(verb, target, 11);
  req.set(http::field::host, "127.0.0.1");
  if (!token.empty()) req.set(http::field::authorization, "Bearer " + token);
  if (!content_type.empty()) req.set(http::field::content_type, content_type);
  if (verb != http::verb::get) {
    req.body() = body;
    req.prepare_payload();
  }
  http::write(stream, req, ec);
  if (ec) return {};
  beast::flat_buffer buf;
  http::response<http::string_body> res;
  http::read(stream, buf, res, ec);
  if (ec) return {};
  HttpReply reply{res.result_int(), res.body(), {}};
  for (const auto& f : res) reply.headers.emplace_back(std::string(f.name_string()), std::string(f.value()));
  return reply;
}

inline HttpReply http_get(std::uint16_t port, const std::string& target, const std::string& token = kTestHqToken) {
  return http_request(port, boost::beast::http::verb::get, target, token);
}

inline HttpReply http_post(std::uint16_t port, const std::string& target, const std::string& body,
                           const std::string& token, const std::string& content_type = "application/json") {
  return http_request(port, boost::beast::http::verb::post, target, token, body, content_type);
}

// Polls `pred` every 50 ms until it holds or `timeout` passes.
template <class Pred>
bool eventually(Pred pred, std::chrono::seconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return pred();
}

}  // namespace qudao::test
