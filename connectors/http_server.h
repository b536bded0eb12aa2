// A small HTTP/1.1 server on Boost.Asio/Beast: one I/O thread, keep-alive, and named limits on
// header bytes, body bytes, idle/read time and concurrent connections. The handler runs on the
// I/O thread and must be quick and thread-safe against the engine (the projections are).
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "events/status.h"

namespace qudao {

struct HttpRequest {
  std::string method;
  std::string path;                          // without the query string
  std::map<std::string, std::string> query;  // decoded ?key=value pairs
  std::string authorization;                 // the Authorization header as sent; empty if none
  std::string body;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // more fields, e.g. WWW-Authenticate
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;

struct HttpOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 = any free port
  std::uint32_t header_bytes_max = 8 * 1024;
  std::uint64_t body_bytes_max = 1024 * 1024;
  std::chrono::seconds read_timeout{10};
  std::size_t connections_max = 512;
};

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> start(const HttpOptions& options, HttpHandler handler);
  ~HttpServer();  // stops accepting, closes connections, joins the I/O thread

  std::uint16_t port() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qudao
