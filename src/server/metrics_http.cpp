#include "server/metrics_http.hpp"

#include <asio/co_spawn.hpp>
#include <asio/detached.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/experimental/awaitable_operators.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

namespace buzon::server {

namespace {

constexpr auto kTuple = asio::experimental::as_tuple(asio::use_awaitable);

const char* reason(int status) {
  switch (status) {
    case 200: return "OK";
    case 400: return "Bad Request";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 414: return "URI Too Long";
    case 431: return "Request Header Fields Too Large";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Error";
  }
}

bool is_tchar(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
         std::string_view("!#$%&'*+-.^_`|~").find(c) != std::string_view::npos;
}

std::string response(int status, std::string_view type, const std::string& body, bool head,
                     std::string_view extra = {}) {
  std::string out = fmt::format("HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n"
                                "Cache-Control: no-store\r\nConnection: close\r\n{}\r\n",
                                status, reason(status), type, body.size(), extra);
  if (!head) out += body;
  return out;
}

}  // namespace

std::optional<HttpParse> parse_http_request_head(std::string_view buf) {
  auto end = buf.find("\r\n\r\n");
  auto lf_end = buf.find("\n\n");
  if (end == std::string_view::npos && lf_end == std::string_view::npos) {
    if (buf.size() >= kMaxRequestHead) {
      auto eol = buf.find('\n');
      return HttpParse{std::nullopt, eol == std::string_view::npos ? 414 : 431};
    }
    return std::nullopt;
  }
  auto eol = buf.find('\n');
  std::string_view line = buf.substr(0, eol);
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  // request-line = method SP request-target SP HTTP-version
  auto sp1 = line.find(' ');
  if (sp1 == std::string_view::npos || sp1 == 0) return HttpParse{std::nullopt, 400};
  auto sp2 = line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || sp2 == sp1 + 1 || line.find(' ', sp2 + 1) != std::string_view::npos)
    return HttpParse{std::nullopt, 400};
  HttpRequest r{std::string(line.substr(0, sp1)), std::string(line.substr(sp1 + 1, sp2 - sp1 - 1)),
                std::string(line.substr(sp2 + 1))};
  for (char c : r.method)
    if (!is_tchar(c)) return HttpParse{std::nullopt, 400};
  for (unsigned char c : r.target)
    if (c <= 0x20 || c >= 0x7f) return HttpParse{std::nullopt, 400};
  if (r.version.size() != 8 || !r.version.starts_with("HTTP/") || r.version[6] != '.')
    return HttpParse{std::nullopt, 400};
  if (r.version != "HTTP/1.1" && r.version != "HTTP/1.0") return HttpParse{std::nullopt, 505};
  return HttpParse{std::move(r), 0};
}

std::string http_error(int status) {
  return response(status, "text/plain; charset=utf-8", fmt::format("{} {}\n", status, reason(status)), false);
}

std::string http_respond(const HttpParse& p, const MetricsPages& pages) {
  if (!p.request) return http_error(p.error ? p.error : 400);
  const auto& r = *p.request;
  bool head = r.method == "HEAD";
  if (r.method != "GET" && !head) {
    std::string body = "405 Method Not Allowed\n";
    return response(405, "text/plain; charset=utf-8", body, false, "Allow: GET, HEAD\r\n");
  }
  std::string_view path = r.target;
  if (auto q = path.find('?'); q != std::string_view::npos) path = path.substr(0, q);
  if (path == "/metrics")
    return response(200, "text/plain; version=0.0.4; charset=utf-8", pages.metrics ? pages.metrics() : "", head);
  if (path == "/status" || path == "/")
    return response(200, "text/plain; charset=utf-8", pages.status ? pages.status() : "", head);
  return response(404, "text/plain; charset=utf-8", "404 Not Found (try /metrics or /status)\n", head);
}

MetricsHttp::MetricsHttp(asio::ip::tcp::acceptor acceptor, MetricsPages pages)
    : acceptor_(std::move(acceptor)), pages_(std::move(pages)), active_(std::make_shared<unsigned>(0)) {}

MetricsHttp::~MetricsHttp() { stop(); }

void MetricsHttp::start() { asio::co_spawn(acceptor_.get_executor(), accept_loop(), asio::detached); }

void MetricsHttp::stop() {
  asio::error_code ec;
  acceptor_.close(ec);
}

asio::awaitable<void> MetricsHttp::accept_loop() {
  asio::steady_timer backoff(acceptor_.get_executor());
  for (;;) {
    auto [ec, sock] = co_await acceptor_.async_accept(kTuple);
    if (ec == asio::error::operation_aborted || !acceptor_.is_open()) co_return;
    if (ec) {
      backoff.expires_after(std::chrono::milliseconds(100));
      co_await backoff.async_wait(kTuple);
      continue;
    }
    if (*active_ >= kMaxConnections) {
      asio::error_code ig;
      sock.close(ig);
      continue;
    }
    asio::co_spawn(acceptor_.get_executor(), serve(std::move(sock)), asio::detached);
  }
}

asio::awaitable<void> MetricsHttp::serve(asio::ip::tcp::socket sock) {
  using namespace asio::experimental::awaitable_operators;
  auto active = active_;  // the counter outlives this object if a scrape is still running at stop()
  ++*active;
  struct Dec {
    std::shared_ptr<unsigned> a;
    ~Dec() { --*a; }
  } dec{active};
  std::string buf;
  std::array<char, 1024> chunk{};
  asio::steady_timer deadline(sock.get_executor());
  deadline.expires_after(kRequestTimeout);
  std::optional<HttpParse> parsed;
  while (!parsed) {
    auto r = co_await (sock.async_read_some(asio::buffer(chunk), kTuple) || deadline.async_wait(kTuple));
    if (r.index() == 1) {
      auto out = http_error(408);
      co_await asio::async_write(sock, asio::buffer(out), kTuple);
      co_return;
    }
    auto [ec, n] = std::get<0>(r);
    if (ec) co_return;
    buf.append(chunk.data(), n);
    parsed = parse_http_request_head(buf);
  }
  std::string out = http_respond(*parsed, pages_);
  co_await asio::async_write(sock, asio::buffer(out), kTuple);
  asio::error_code ig;
  sock.shutdown(asio::ip::tcp::socket::shutdown_send, ig);
  sock.close(ig);
}

}  // namespace buzon::server
