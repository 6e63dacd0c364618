// tests/support/memory_stream.hpp — an in-memory Stream for session tests (after Beast's
// test::stream): scripted input delivered in reads of at most `read_size` octets, all output
// captured, an injected failure on the Nth operation, and input that can depend on the output
// seen so far (for challenge/response dialogues such as APOP).
#pragma once

#include "net/stream.hpp"

#include <asio/io_context.hpp>
#include <asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <optional>
#include <string>

namespace buzon::test {

class MemoryStream final : public net::Stream {
 public:
  // Called when scripted input runs out; returns more input, or nullopt for end of stream.
  using Feeder = std::function<std::optional<std::string>(const std::string& output)>;

  MemoryStream(asio::io_context& io, std::string input);
  MemoryStream(asio::io_context& io, Feeder feeder);

  void set_read_size(std::size_t n) { read_size_ = n == 0 ? 1 : n; }
  // The Nth read or write (1-based) fails with asio::error::connection_reset.
  void set_fail_on(std::size_t n) { fail_on_ = n; }
  // At end of input, wait (until close()) instead of returning EOF: simulates an idle client.
  void set_hang_at_end(bool v) { hang_at_end_ = v; }
  void set_peer(std::string p, bool loopback) { peer_ = std::move(p); loopback_ = loopback; }

  asio::awaitable<net::IoResult> read_some(std::span<char> buf) override;
  asio::awaitable<net::IoResult> write_all(std::span<const char> buf) override;
  void close() override;
  asio::any_io_executor get_executor() override { return io_.get_executor(); }
  std::string peer() const override { return peer_; }
  bool peer_is_loopback() const override { return loopback_; }

  // Output and closed state outlive the stream (a session destroys its stream when it ends).
  struct Record {
    std::string output;
    bool closed = false;
  };
  std::shared_ptr<Record> record() const { return record_; }
  const std::string& output() const { return record_->output; }
  bool closed() const { return record_->closed; }
  std::size_t reads() const { return reads_; }

 private:
  bool fail_now();

  asio::io_context& io_;
  std::string input_;
  std::size_t pos_ = 0;
  Feeder feeder_;
  std::shared_ptr<Record> record_ = std::make_shared<Record>();
  std::size_t read_size_ = 1 << 20;
  std::size_t fail_on_ = 0;
  std::size_t ops_ = 0;
  std::size_t reads_ = 0;
  bool hang_at_end_ = false;
  std::string peer_ = "127.0.0.1:40000";
  bool loopback_ = true;
  asio::steady_timer hang_;
};

}  // namespace buzon::test
