// net/worker_pool.hpp — the bounded pool where blocking work runs (fsync, password hashing, store
// and database calls), so that no event loop ever blocks (DESIGN.md principle 2).
//
// LIMITS  At most `max_pending` jobs queued or running; a coroutine that would exceed it waits
//         (backpressure) instead of growing an unbounded queue.
#pragma once

#include <asio/associated_executor.hpp>
#include <asio/async_result.hpp>
#include <asio/awaitable.hpp>
#include <asio/dispatch.hpp>
#include <asio/post.hpp>
#include <asio/steady_timer.hpp>
#include <asio/this_coro.hpp>
#include <asio/thread_pool.hpp>
#include <asio/use_awaitable.hpp>

#include <atomic>
#include <chrono>
#include <exception>
#include <type_traits>
#include <utility>

namespace buzon::net {

class WorkerPool {
 public:
  WorkerPool(unsigned threads, std::size_t max_pending)
      : pool_(threads == 0 ? 1 : threads), max_pending_(max_pending == 0 ? 1 : max_pending) {}
  ~WorkerPool() { stop(); }
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Runs f() on a pool thread and resumes the caller on its own executor with the result.
  // f must return a default-constructible, movable value; an exception it throws is rethrown here.
  template <class F, class R = std::invoke_result_t<F&>>
  asio::awaitable<R> run(F f) {
    static_assert(std::is_default_constructible_v<R>, "WorkerPool::run needs a default-constructible result");
    if (pending_.load(std::memory_order_relaxed) >= max_pending_) {
      auto ex = co_await asio::this_coro::executor;
      asio::steady_timer t(ex);
      auto wait = std::chrono::milliseconds(1);
      while (pending_.load(std::memory_order_relaxed) >= max_pending_) {
        t.expires_after(wait);
        co_await t.async_wait(asio::use_awaitable);
        if (wait < std::chrono::milliseconds(20)) wait *= 2;
      }
    }
    pending_.fetch_add(1, std::memory_order_relaxed);
    struct Release {
      std::atomic<std::size_t>& n;
      ~Release() { n.fetch_sub(1, std::memory_order_relaxed); }
    } release{pending_};
    co_return co_await asio::async_initiate<decltype(asio::use_awaitable), void(std::exception_ptr, R)>(
        [this, f = std::move(f)](auto handler) mutable {
          asio::post(pool_, [f = std::move(f), handler = std::move(handler)]() mutable {
            std::exception_ptr ep;
            R r{};
            try {
              r = f();
            } catch (...) {
              ep = std::current_exception();
            }
            auto ex = asio::get_associated_executor(handler);
            asio::dispatch(ex, [handler = std::move(handler), ep, r = std::move(r)]() mutable {
              std::move(handler)(ep, std::move(r));
            });
          });
        },
        asio::use_awaitable);
  }

  std::size_t pending() const { return pending_.load(std::memory_order_relaxed); }
  // Waits for the jobs already queued to finish (they are short: fsync, hashing, store calls), so
  // none is left to be destroyed with the pool after the event loops it reports to (a queued job's
  // destruction posts to its loop: UBSan caught a relay job destroyed after the relay's loop).
  void stop() { pool_.join(); }

 private:
  asio::thread_pool pool_;
  std::size_t max_pending_;
  std::atomic<std::size_t> pending_{0};
};

}  // namespace buzon::net
