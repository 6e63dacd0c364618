// server/metrics_http.hpp — the metrics endpoint: a tiny HTTP/1.1 server that answers GET (and
// HEAD) for /metrics (Prometheus text format 0.0.4) and /status (a human summary: version, uptime,
// listeners, sessions), one request per connection, then closes.
//
// SECURITY  Read-only; it serves counters, never user names, addresses or message data. It listens
//           on 127.0.0.1:9110 by default ([metrics] listen); expose it wider only behind a firewall.
//           The request head is bounded and must arrive within kRequestTimeout; at most
//           kMaxConnections scrapes are served at once, others are closed at once.
// STANDARDS RFC 9112 (request line, header section ending in an empty line), RFC 9110 (GET, HEAD,
//           405 with Allow).
#pragma once

#include <asio/awaitable.hpp>
#include <asio/io_context.hpp>
#include <asio/ip/tcp.hpp>

#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace buzon::server {

inline constexpr std::size_t kMaxRequestHead = 8192;
inline constexpr std::chrono::seconds kRequestTimeout{5};
inline constexpr unsigned kMaxConnections = 16;

struct HttpRequest {
  std::string method, target, version;
};

// Pure. nullopt: need more octets. Else the request, or an HTTP error status (400, 414, 431, 505).
struct HttpParse {
  std::optional<HttpRequest> request;
  int error = 0;
};
std::optional<HttpParse> parse_http_request_head(std::string_view buf);

// Pure: the whole response (status line, headers, body unless HEAD) for a request.
struct MetricsPages {
  std::function<std::string()> metrics;  // /metrics
  std::function<std::string()> status;   // /status and /
};
std::string http_respond(const HttpParse& req, const MetricsPages& pages);
std::string http_error(int status);

// Serves the endpoint on `io` with an already bound and listening acceptor.
class MetricsHttp {
 public:
  MetricsHttp(asio::ip::tcp::acceptor acceptor, MetricsPages pages);
  ~MetricsHttp();
  void start();
  void stop();

 private:
  asio::awaitable<void> accept_loop();
  asio::awaitable<void> serve(asio::ip::tcp::socket sock);
  asio::ip::tcp::acceptor acceptor_;
  MetricsPages pages_;
  std::shared_ptr<unsigned> active_;
};

}  // namespace buzon::server
