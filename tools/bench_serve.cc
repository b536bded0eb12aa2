#include "tools/bench_serve.h"

#include <fcntl.h>
#include <fmt/format.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <boost/asio/connect.hpp>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

namespace qudao {

using Clock = std::chrono::steady_clock;
using json = nlohmann::json;
namespace fs = std::filesystem;

Result<std::string> http_get(std::uint16_t port, const std::string& target) {
  try {
    auto [status, body] = BenchClient(port, kBenchToken).request(boost::beast::http::verb::get, target, "");
    if (status != 200) return Status::error(fmt::format("GET {}: {}", target, status));
    return std::move(body);
  } catch (const std::exception& e) {
    return Status::error(fmt::format("GET {}: {}", target, e.what()));
  }
}


Result<std::string> write_tokens_file(const std::string& dir) {
  const std::string path = dir + "/bench-tokens.json";
  std::ofstream out(path);
  out << json{{"tokens", json::array({json{{"name", "bench"}, {"role", "hq"}, {"token", kBenchToken}}})}}.dump();
  out.close();
  if (!out) return Status::error(fmt::format("cannot write {}", path));
  fs::permissions(path, fs::perms::owner_read | fs::perms::owner_write);
  return path;
}

std::uint16_t free_port() {
  boost::asio::io_context io;
  boost::asio::ip::tcp::acceptor a(io, {boost::asio::ip::make_address("127.0.0.1"), 0});
  return a.local_endpoint().port();
}

Result<ServeProcess> ServeProcess::start(const std::string& binary, const KafkaArgs& kafka, const std::string& topic,
                                         const std::string& dir, std::uint16_t port, const std::string& tokens,
                                         const std::vector<std::string>& extra) {
  std::vector<std::string> args = {binary, "serve", "-b", kafka.brokers, "-t", topic, "-d", dir,
                                   "--http-port", std::to_string(port), "--tokens", tokens};
  for (const auto& x : kafka.settings) args.insert(args.end(), {"-X", x});
  if (!kafka.properties_file.empty()) args.insert(args.end(), {"-F", kafka.properties_file});
  args.insert(args.end(), extra.begin(), extra.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 2, "/dev/null", O_WRONLY, 0);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, binary.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return Status::error(fmt::format("spawn {}: {}", binary, std::strerror(rc)));
  return ServeProcess(pid, port);
}

Result<double> ServeProcess::wait_ready(std::uint64_t total, std::chrono::seconds timeout) const {
  const auto start = Clock::now();
  while (Clock::now() - start < timeout) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      return Status::error(fmt::format("serve exited ({}) before it was ready", status));
    }
    auto body = http_get(port_, "/v1/status");
    if (body.is_ok()) {
      const json j = json::parse(body.value(), nullptr, false);
      if (!j.is_discarded() && j["totals"]["consumed"].get<std::uint64_t>() == total &&
          http_get(port_, "/v1/stock/regions").is_ok()) {
        return std::chrono::duration<double>(Clock::now() - start).count();
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return Status::error(fmt::format("serve did not report {} events within {} s", total, timeout.count()));
}

double ServeProcess::cpu_seconds() const {
  if (pid_ <= 0) return 0;
  // /proc/PID/stat: "pid (comm) state ..." with utime and stime the 14th and 15th fields; comm may
  // hold spaces, so the fields are counted from the last ')'.
  std::ifstream in(fmt::format("/proc/{}/stat", pid_));
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  unsigned long long utime = 0, stime = 0;
  for (int i = 3; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

void ServeProcess::stop(int signal) {
  if (pid_ <= 0) return;
  kill(pid_, signal);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

BenchClient::BenchClient(std::uint16_t port, std::string token, std::chrono::milliseconds wait_max)
    : socket_(io_), token_(std::move(token)) {
  const auto deadline = Clock::now() + wait_max;
  for (;;) {
    boost::system::error_code ec;
    socket_.connect({boost::asio::ip::make_address("127.0.0.1"), port}, ec);
    if (!ec) return;
    if (Clock::now() >= deadline) throw boost::system::system_error(ec);
    socket_.close();
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

std::pair<unsigned, std::string> BenchClient::request(boost::beast::http::verb verb, const std::string& target,
                                                      std::string body) {
  namespace http = boost::beast::http;
  http::request<http::string_body> req{verb, target, 11};
  req.set(http::field::host, "127.0.0.1");
  req.set(http::field::authorization, "Bearer " + token_);
  if (verb == http::verb::post) req.set(http::field::content_type, "application/json");
  req.body() = std::move(body);
  req.prepare_payload();
  http::write(socket_, req);
  http::response<http::string_body> res;
  http::read(socket_, buffer_, res);
  return {res.result_int(), std::move(res.body())};
}

}  // namespace qudao
