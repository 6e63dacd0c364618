// bench/loadgen/pop3_client.hpp — a strict, allocation-light POP3 client for the load generator.
//
// Every response is validated: status lines must start with "+OK" and end in CRLF, multi-line
// bodies must be CRLF-framed and dot-stuffed (RFC 1939 §3), and the octet count of a retrieved
// message (after removing the stuffing dots, before the terminator) is returned so the caller can
// compare it with the size LIST announced. Any deviation throws BenchError; the caller counts it.
//
// The transport is a TCP socket, or TLS over it (POP3S, RFC 8314) when the client is given an
// asio::ssl::context: connect() then does the full handshake (no session resumption: every session
// pays for one) and every read and write goes through the TLS stream.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/connect.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/read.hpp>
#include <asio/redirect_error.hpp>
#include <asio/ssl.hpp>
#include <asio/use_awaitable.hpp>
#include <asio/write.hpp>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>

namespace bench {

struct BenchError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

inline std::string printable(std::string_view s, std::size_t max = 120) {
  std::string out;
  for (char c : s.substr(0, max)) {
    if (c == '\r') out += "\\r";
    else if (c == '\n') out += "\\n";
    else if (static_cast<unsigned char>(c) < 0x20 || static_cast<unsigned char>(c) >= 0x7f) out += '?';
    else out += c;
  }
  if (s.size() > max) out += "...";
  return out;
}

class Pop3Client {
 public:
  // tls: null for plain POP3; else POP3S with this client context (shared by all clients).
  Pop3Client(asio::any_io_executor ex, std::size_t bufsize, asio::ssl::context* tls = nullptr)
      : sock_(ex), buf_(std::make_unique<char[]>(bufsize)), cap_(bufsize) {
    if (tls) tls_ = std::make_unique<asio::ssl::stream<asio::ip::tcp::socket&>>(sock_, *tls);
  }

  asio::ip::tcp::socket& socket() { return sock_; }
  std::uint64_t bytes_in() const { return bytes_in_; }
  std::uint64_t bytes_out() const { return bytes_out_; }
  // After a TLS handshake: what was negotiated ("TLSv1.3 TLS_AES_256_GCM_SHA384 X25519"); "" for TCP.
  std::string tls_summary() const {
    if (!tls_) return "";
    SSL* ssl = const_cast<asio::ssl::stream<asio::ip::tcp::socket&>&>(*tls_).native_handle();
    std::string out = std::string(SSL_get_version(ssl)) + " " + SSL_get_cipher_name(ssl);
    int nid = SSL_get_negotiated_group(ssl);
    if (nid != 0 && nid != NID_undef) {
      const char* g = OBJ_nid2sn(nid & ~TLSEXT_nid_unknown);
      if (g) out += std::string(" ") + g;
    }
    return out;
  }

  asio::awaitable<void> connect(const asio::ip::tcp::endpoint& server, const std::optional<asio::ip::address>& source) {
    sock_.open(server.protocol());
    if (source) sock_.bind(asio::ip::tcp::endpoint(*source, 0));
    co_await sock_.async_connect(server, asio::use_awaitable);
    sock_.set_option(asio::ip::tcp::no_delay(true));
    if (tls_) {
      asio::error_code ec;
      co_await tls_->async_handshake(asio::ssl::stream_base::client, asio::redirect_error(asio::use_awaitable, ec));
      if (ec) throw BenchError("TLS handshake: " + ec.message());
    }
  }

  // One line without its CRLF; valid until the next read. Throws on EOF, bare LF, or a line longer
  // than the buffer.
  asio::awaitable<std::string_view> line() {
    for (;;) {
      if (auto* nl = static_cast<char*>(std::memchr(buf_.get() + beg_, '\n', end_ - beg_))) {
        std::size_t len = static_cast<std::size_t>(nl - (buf_.get() + beg_));
        std::string_view l(buf_.get() + beg_, len);
        beg_ += len + 1;
        if (l.empty() || l.back() != '\r') throw BenchError("line not terminated by CRLF: '" + printable(l) + "'");
        l.remove_suffix(1);
        co_return l;
      }
      bool more = co_await fill();
      if (!more) throw BenchError("server closed the connection where a line was expected");
    }
  }

  // Reads a status line; throws unless it is +OK. Returns the text after "+OK".
  asio::awaitable<std::string_view> status(std::string_view what) {
    auto l = co_await line();
    if (l.substr(0, 3) != "+OK") throw BenchError(std::string(what) + " -> '" + printable(l) + "'");
    co_return l.substr(3);
  }

  asio::awaitable<void> send(std::string_view data) {
    if (tls_) co_await asio::async_write(*tls_, asio::buffer(data.data(), data.size()), asio::use_awaitable);
    else co_await asio::async_write(sock_, asio::buffer(data.data(), data.size()), asio::use_awaitable);
    bytes_out_ += data.size();
  }

  // Sends one command (CRLF appended) and reads its +OK status line.
  asio::awaitable<std::string_view> cmd(std::string_view command) {
    cmdbuf_.assign(command);
    cmdbuf_ += "\r\n";
    co_await send(cmdbuf_);
    co_return co_await status(command.substr(0, command.find(' ')) == "PASS" ? std::string_view("PASS") : command);
  }

  // Reads the lines of a multi-line body (after its +OK) up to the terminator, un-stuffing each,
  // calling on_line(line-without-CRLF). For short listings (LIST, UIDL, CAPA).
  template <class F>
  asio::awaitable<std::size_t> listing(F&& on_line) {
    std::size_t n = 0;
    for (;;) {
      auto l = co_await line();
      if (l == ".") co_return n;
      if (!l.empty() && l.front() == '.') {
        if (l.size() < 2 || l[1] != '.') throw BenchError("listing line starting with '.' is not dot-stuffed");
        l.remove_prefix(1);
      }
      on_line(l);
      ++n;
    }
  }

  // Streams a multi-line body (after its +OK) to the terminator without copying it, checking CRLF
  // framing and dot-stuffing. Returns the message octets: every line with its CRLF, stuffing dots
  // removed, terminator excluded (what LIST must have announced).
  asio::awaitable<std::uint64_t> body() {
    std::uint64_t octets = 0;
    bool at_start = true;  // at the start of a line
    char last = '\n';      // last octet consumed (a CR may end one read and its LF start the next)
    for (;;) {
      while (beg_ < end_) {
        char* p = buf_.get() + beg_;
        char* e = buf_.get() + end_;
        if (at_start && *p == '.') {
          if (e - p < 3) break;  // need ".\r\n" or "..": wait for more
          if (p[1] == '\r' && p[2] == '\n') {
            beg_ += 3;
            co_return octets;
          }
          if (p[1] != '.') throw BenchError("body line starting with '.' is not dot-stuffed: '" +
                                            printable(std::string_view(p, static_cast<std::size_t>(std::min<std::ptrdiff_t>(e - p, 60)))) + "'");
          ++beg_;  // drop the stuffing dot
          ++p;
        }
        auto* nl = static_cast<char*>(std::memchr(p, '\n', static_cast<std::size_t>(e - p)));
        if (nl) {
          char before = nl > p ? nl[-1] : (at_start ? '\n' : last);
          if (before != '\r') throw BenchError("body line not terminated by CRLF");
          std::size_t len = static_cast<std::size_t>(nl + 1 - p);
          octets += len;
          beg_ += len;
          at_start = true;
          last = '\n';
        } else {
          std::size_t len = static_cast<std::size_t>(e - p);
          octets += len;
          last = e[-1];
          beg_ = end_;
          at_start = false;
        }
      }
      bool more = co_await fill();
      if (!more) throw BenchError("server closed the connection inside a multi-line response");
    }
  }

  // After QUIT: the server must close the connection (RFC 1939 §6) and send nothing more.
  asio::awaitable<void> expect_eof() {
    if (beg_ != end_) throw BenchError("unexpected data after QUIT: '" + printable(std::string_view(buf_.get() + beg_, end_ - beg_)) + "'");
    bool more = co_await fill();
    if (more) throw BenchError("unexpected data after QUIT: '" + printable(std::string_view(buf_.get() + beg_, end_ - beg_)) + "'");
  }

  void close() {
    asio::error_code ec;
    sock_.close(ec);
  }

 private:
  // Reads more into the buffer (compacting first); false at EOF.
  asio::awaitable<bool> fill() {
    if (beg_ > 0) {
      std::memmove(buf_.get(), buf_.get() + beg_, end_ - beg_);
      end_ -= beg_;
      beg_ = 0;
    }
    if (end_ == cap_) throw BenchError("line longer than the client buffer");
    asio::error_code ec;
    auto into = asio::buffer(buf_.get() + end_, cap_ - end_);
    std::size_t n = 0;  // (no co_await inside ?: — g++ 12 coroutines, see docs/benchmarks.md notes)
    if (tls_) n = co_await tls_->async_read_some(into, asio::redirect_error(asio::use_awaitable, ec));
    else n = co_await sock_.async_read_some(into, asio::redirect_error(asio::use_awaitable, ec));
    // A TLS peer that closes without close_notify after QUIT (stream_truncated) is an EOF too: POP3
    // frames its own end, and RFC 8314 servers commonly just close.
    if (ec == asio::error::eof || ec == asio::ssl::error::stream_truncated || (!ec && n == 0)) co_return false;
    if (ec) throw BenchError("read: " + ec.message());
    end_ += n;
    bytes_in_ += n;
    co_return true;
  }

  asio::ip::tcp::socket sock_;
  std::unique_ptr<asio::ssl::stream<asio::ip::tcp::socket&>> tls_;
  std::unique_ptr<char[]> buf_;
  std::size_t cap_;
  std::size_t beg_ = 0, end_ = 0;
  std::uint64_t bytes_in_ = 0, bytes_out_ = 0;
  std::string cmdbuf_;
};

}  // namespace bench
