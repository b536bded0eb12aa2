#include "connectors/http_server.h"

#include <boost/asio.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <optional>
#include <pthread.h>

#include <thread>

#include "engine/thread_priority.h"

namespace qudao {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

std::string percent_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%' && i + 2 < s.size() && std::isxdigit(static_cast<unsigned char>(s[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(s[i + 2]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(s.substr(i + 1, 2)), nullptr, 16)));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

HttpRequest to_request(const http::request<http::string_body>& req) {
  HttpRequest out;
  out.method = std::string(req.method_string());
  const std::string_view target(req.target().data(), req.target().size());
  const auto q = target.find('?');
  out.path = percent_decode(target.substr(0, q));
  if (q != std::string_view::npos) {
    std::string_view rest = target.substr(q + 1);
    while (!rest.empty()) {
      const auto amp = rest.find('&');
      const std::string_view pair = rest.substr(0, amp);
      const auto eq = pair.find('=');
      if (!pair.empty()) {
        out.query[percent_decode(pair.substr(0, eq))] =
            eq == std::string_view::npos ? "" : percent_decode(pair.substr(eq + 1));
      }
      rest = amp == std::string_view::npos ? std::string_view{} : rest.substr(amp + 1);
    }
  }
  out.authorization = std::string(req[http::field::authorization]);
  out.content_type = std::string(req[http::field::content_type]);
  out.body = req.body();
  return out;
}

// Beast reads at most this much per read; the read buffer holds a whole header plus one read.
constexpr std::size_t kReadChunkBytes = 64 * 1024;
// After a failed accept (out of file descriptors, say), wait this long rather than spin.
constexpr std::chrono::milliseconds kAcceptRetry{100};

// What a connection beyond connections_max is told before it is closed.
constexpr std::string_view kBusyBody = R"({"error":"too many open connections"})";
constexpr std::string_view kBusyHeader =
    "HTTP/1.1 503 Service Unavailable\r\nServer: qudao\r\nContent-Type: application/json\r\n"
    "Retry-After: 1\r\nConnection: close\r\nContent-Length: 37\r\n\r\n";
static_assert(kBusyBody.size() == 37, "Content-Length of the 503 answer");

}  // namespace

struct HttpServer::Impl {
  HttpOptions options;
  HttpAsyncHandler handler;
  // Both outlive io: sessions destroyed with io decrement the count, and may be lingering into the
  // buffer. One discard buffer serves every lingering session: its contents are never read, and the
  // one I/O thread fills it one read at a time.
  std::atomic<std::size_t> connections{0};
  std::array<char, 16 * 1024> discard{};
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  asio::steady_timer accept_retry{io};
  std::thread thread;

  void accept();
  void refuse(tcp::socket socket);
};

namespace {

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, HttpServer::Impl& server)
      : stream_(std::move(socket)), server_(server), buffer_(server.options.header_bytes_max + kReadChunkBytes) {}
  ~Session() { server_.connections.fetch_sub(1); }

  void read() {
    parser_.emplace();
    parser_->header_limit(server_.options.header_bytes_max);
    parser_->body_limit(server_.options.body_bytes_max);
    stream_.expires_after(server_.options.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

 private:
  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == asio::error::operation_aborted) {
      return close();
    }
    if (ec == http::error::header_limit) {
      return reply_error(431, fmt::format("request header larger than {} bytes", server_.options.header_bytes_max));
    }
    if (ec == http::error::body_limit) {
      return reply_error(413, fmt::format("request body larger than {} bytes", server_.options.body_bytes_max));
    }
    if (ec) return reply_error(400, fmt::format("bad request: {}", ec.message()));

    const auto& req = parser_->get();
    const KeepAlive keep_alive = req.keep_alive() ? KeepAlive::yes : KeepAlive::no;
    // The answer is written on the I/O thread whichever thread gives it; the responder keeps the
    // session alive until then.
    HttpResponder respond = [self = shared_from_this(), keep_alive](HttpResponse r) {
      asio::post(self->stream_.get_executor(),
                 [self, keep_alive, r = std::move(r)] { self->write(r, keep_alive); });
    };
    try {
      server_.handler(to_request(req), std::move(respond));
    } catch (const std::exception& e) {
      spdlog::error("http {} {}: {}", std::string(req.method_string()), std::string(req.target()), e.what());
      write(HttpResponse{500, "application/json", R"({"error":"internal error"})"}, KeepAlive::no);
    }
  }

  enum class KeepAlive { no, yes };

  void reply_error(unsigned status, const std::string& message) {
    write(HttpResponse{status, "application/json", fmt::format(R"({{"error":"{}"}})", message)}, KeepAlive::no);
  }

  void write(const HttpResponse& r, KeepAlive keep_alive) {
    auto res = std::make_shared<http::response<http::string_body>>(static_cast<http::status>(r.status), 11);
    res->set(http::field::server, "qudao");
    res->set(http::field::content_type, r.content_type);
    for (const auto& [name, value] : r.headers) res->set(name, value);
    res->keep_alive(keep_alive == KeepAlive::yes);
    res->body() = r.body;
    res->prepare_payload();
    stream_.expires_after(server_.options.read_timeout);
    http::async_write(stream_, *res, [self = shared_from_this(), res](beast::error_code ec, std::size_t) {
      if (ec) return self->close();
      if (!res->keep_alive()) return self->linger();
      self->read();
    });
  }

  // A graceful close: send FIN, then read and drop what the client is still sending (the rest of
  // an oversized header or body) until it closes too, so that closing with unread bytes does not
  // make the kernel send a reset that would destroy the answer before the client reads it. Bounded
  // in bytes and time, so a client cannot keep the slot this way.
  void linger() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.expires_after(std::min<std::chrono::milliseconds>(kLinger, server_.options.read_timeout));
    discard();
  }

  void discard() {
    stream_.async_read_some(asio::buffer(server_.discard),
                            [self = shared_from_this()](beast::error_code ec, std::size_t n) {
                              self->discarded_bytes_ += n;
                              if (ec || self->discarded_bytes_ >= kLingerBytesMax) return self->close();
                              self->discard();
                            });
  }

  void close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.close();
  }

  beast::tcp_stream stream_;
  HttpServer::Impl& server_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::size_t discarded_bytes_ = 0;
};

}  // namespace

void HttpServer::Impl::accept() {
  acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
    if (ec == asio::error::operation_aborted) return;
    if (ec) {
      spdlog::warn("http: accept failed, retrying in {} ms: {}", kAcceptRetry.count(), ec.message());
      accept_retry.expires_after(kAcceptRetry);
      accept_retry.async_wait([this](beast::error_code wait_ec) {
        if (!wait_ec) accept();
      });
      return;
    }
    if (connections.fetch_add(1) >= options.connections_max) {
      connections.fetch_sub(1);
      refuse(std::move(socket));
    } else {
      std::make_shared<Session>(std::move(socket), *this)->read();
    }
    accept();
  });
}

// Over the cap: answer 503 and close rather than queue without bound. The answer is one small
// non-blocking write into the empty send buffer of a new socket, so refusing costs no state.
void HttpServer::Impl::refuse(tcp::socket socket) {
  beast::error_code ignored;
  socket.non_blocking(true, ignored);
  const std::array<asio::const_buffer, 2> answer{asio::buffer(kBusyHeader.data(), kBusyHeader.size()),
                                                 asio::buffer(kBusyBody.data(), kBusyBody.size())};
  socket.write_some(answer, ignored);
  socket.shutdown(tcp::socket::shutdown_both, ignored);
  socket.close(ignored);
}

HttpServer::HttpServer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpOptions& options, HttpHandler handler) {
  return start(options, HttpAsyncHandler([handler = std::move(handler)](const HttpRequest& req, HttpResponder respond) {
    respond(handler(req));
  }));
}

Result<std::unique_ptr<HttpServer>> HttpServer::start(const HttpOptions& options, HttpAsyncHandler handler) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->handler = std::move(handler);
  beast::error_code ec;
  const auto address = asio::ip::make_address(options.address, ec);
  if (ec) return Status::error(fmt::format("http: bad address {}: {}", options.address, ec.message()));
  const tcp::endpoint endpoint(address, options.port);
  impl->acceptor.open(endpoint.protocol(), ec);
  if (!ec) impl->acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) impl->acceptor.bind(endpoint, ec);
  if (!ec) impl->acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) return Status::error(fmt::format("http: cannot listen on {}:{}: {}", options.address, options.port, ec.message()));
  impl->accept();
  Impl* raw = impl.get();
  impl->thread = std::thread([raw] {
    pthread_setname_np(pthread_self(), "qudao-http");
    raise_this_thread_priority();  // best effort: engine/thread_priority.h
    try {
      raw->io.run();
    } catch (const std::exception& e) {
      spdlog::critical("http server stopped: {}", e.what());
    }
  });
  return std::unique_ptr<HttpServer>(new HttpServer(std::move(impl)));
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::stop() {
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
}

std::uint16_t HttpServer::port() const { return impl_->acceptor.local_endpoint().port(); }

std::size_t HttpServer::connections() const { return impl_->connections.load(); }

}  // namespace qudao
