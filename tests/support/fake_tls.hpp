// tests/support/fake_tls.hpp — a stream that says it is TLS and forwards to another one (what a
// test's start_tls returns, or an "implicit TLS" connection over a MemoryStream).
#pragma once

#include "net/stream.hpp"

#include <memory>
#include <string>

namespace buzon::test {

class FakeTls final : public net::Stream {
 public:
  explicit FakeTls(net::StreamPtr inner) : inner_(std::move(inner)) {}
  asio::awaitable<net::IoResult> read_some(std::span<char> b) override { return inner_->read_some(b); }
  asio::awaitable<net::IoResult> write_all(std::span<const char> b) override { return inner_->write_all(b); }
  void close() override { inner_->close(); }
  asio::any_io_executor get_executor() override { return inner_->get_executor(); }
  std::string peer() const override { return inner_->peer(); }
  bool peer_is_loopback() const override { return inner_->peer_is_loopback(); }
  bool is_tls() const override { return true; }
  std::string tls_summary() const override { return "TLSv1.3 TLS_FAKE"; }

 private:
  net::StreamPtr inner_;
};

}  // namespace buzon::test
