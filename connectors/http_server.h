// A small HTTP/1.1 server on Boost.Asio/Beast: one I/O thread, keep-alive, and named limits on
// header bytes, body bytes, read time and concurrent connections (HttpOptions). Every socket
// operation is asynchronous, so a slow client holds a connection slot and a few kilobytes, never the
// thread. The handler runs on the I/O thread and must be quick and thread-safe against the engine
// (the projections are). A handler that must wait (the ingest endpoint waits for Kafka's
// acknowledgement) is an HttpAsyncHandler: it returns at once and calls the responder later, from
// any thread, exactly once; the connection reads nothing more until then.
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
  std::string content_type;                  // the Content-Type header as sent; empty if none
  std::string body;
};

struct HttpResponse {
  unsigned status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // more fields, e.g. WWW-Authenticate
};

using HttpHandler = std::function<HttpResponse(const HttpRequest&)>;
// Sends the answer; callable from any thread, once. After HttpServer::stop() it drops the answer.
using HttpResponder = std::function<void(HttpResponse)>;
using HttpAsyncHandler = std::function<void(const HttpRequest&, HttpResponder)>;

// The limits, and what a client that exceeds one gets:
//   header_bytes_max  request line + header fields; more: 431, and the connection is closed.
//   body_bytes_max    a declared Content-Length above it: 413 as soon as the header is read, without
//                     reading the body; a chunked body: 413 once it passes the limit. Closed.
//   read_timeout      the deadline for one whole request (header and body), counted from when the
//                     server starts waiting for it, idle keep-alive time included; a client that
//                     trickles bytes is closed at the deadline all the same, without an answer. Writing
//                     the answer has the same deadline.
//   connections_max   open connections; one more is accepted, answered 503 (best effort: the client
//                     may see a reset instead) and closed at once, so the listen backlog never fills.
// After answering with Connection: close, the server reads and discards what the client still sends
// (at most kLingerBytesMax, for at most kLinger) before closing, so that the client reads the answer
// rather than a TCP reset.
struct HttpOptions {
  std::string address = "127.0.0.1";
  std::uint16_t port = 8080;  // 0 = any free port
  std::uint32_t header_bytes_max = 8 * 1024;
  std::uint64_t body_bytes_max = 1024 * 1024;
  std::chrono::milliseconds read_timeout{10'000};
  std::size_t connections_max = 512;
};

inline constexpr std::size_t kLingerBytesMax = 64 * 1024;
inline constexpr std::chrono::milliseconds kLinger{1'000};

class HttpServer {
 public:
  static Result<std::unique_ptr<HttpServer>> start(const HttpOptions& options, HttpHandler handler);
  static Result<std::unique_ptr<HttpServer>> start(const HttpOptions& options, HttpAsyncHandler handler);
  ~HttpServer();  // stop(), then closes connections
  // Stops accepting and answering and joins the I/O thread; idempotent. Responders still held
  // elsewhere (requests waiting for Kafka) stay safe to call and to destroy until the server is.
  void stop();

  std::uint16_t port() const;
  // Connections open now (for tests and metrics); any thread.
  std::size_t connections() const;

  struct Impl;

 private:
  explicit HttpServer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace qudao
