#include "support/memory_stream.hpp"

#include <asio/error.hpp>
#include <asio/experimental/as_tuple.hpp>
#include <asio/post.hpp>
#include <asio/use_awaitable.hpp>

#include <algorithm>
#include <cstring>

namespace buzon::test {

MemoryStream::MemoryStream(asio::io_context& io, std::string input)
    : io_(io), input_(std::move(input)), hang_(io) {}

MemoryStream::MemoryStream(asio::io_context& io, Feeder feeder) : io_(io), feeder_(std::move(feeder)), hang_(io) {}

bool MemoryStream::fail_now() { return fail_on_ != 0 && ++ops_ == fail_on_; }

asio::awaitable<net::IoResult> MemoryStream::read_some(std::span<char> buf) {
  // Yield once so that a session never completes synchronously in a loop (as a socket would not).
  co_await asio::post(io_, asio::use_awaitable);
  ++reads_;
  if (record_->closed) co_return net::IoResult{asio::error::operation_aborted, 0};
  if (fail_now()) co_return net::IoResult{asio::error::connection_reset, 0};
  if (pos_ >= input_.size() && feeder_) {
    if (auto more = feeder_(record_->output)) {
      input_.erase(0, pos_);
      pos_ = 0;
      input_ += *more;
    } else {
      feeder_ = nullptr;
    }
  }
  if (pos_ >= input_.size()) {
    if (hang_at_end_) {
      hang_.expires_at(asio::steady_timer::time_point::max());
      co_await hang_.async_wait(asio::experimental::as_tuple(asio::use_awaitable));
      co_return net::IoResult{asio::error::operation_aborted, 0};
    }
    co_return net::IoResult{asio::error::eof, 0};
  }
  std::size_t n = std::min({buf.size(), read_size_, input_.size() - pos_});
  std::memcpy(buf.data(), input_.data() + pos_, n);
  pos_ += n;
  co_return net::IoResult{{}, n};
}

asio::awaitable<net::IoResult> MemoryStream::write_all(std::span<const char> buf) {
  co_await asio::post(io_, asio::use_awaitable);
  if (record_->closed) co_return net::IoResult{asio::error::operation_aborted, 0};
  if (fail_now()) co_return net::IoResult{asio::error::connection_reset, 0};
  record_->output.append(buf.data(), buf.size());
  co_return net::IoResult{{}, buf.size()};
}

void MemoryStream::close() {
  record_->closed = true;
  hang_.cancel();
}

}  // namespace buzon::test
