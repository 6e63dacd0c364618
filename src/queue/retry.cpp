// queue/retry.cpp — when to try an entry again, when to give up, when to warn (pure).
//
// SECURITY  No input but the configuration and the entry.
// STANDARDS RFC 5321 §4.5.4.1: retry interval "at least 30 minutes" (our first retry is sooner,
//           5 minutes, as Postfix and others do for transient failures, then backs off past 30),
//           give-up time "at least 4-5 days"; RFC 3461 §4.1 NOTIFY=DELAY.
// THREADS   Pure.
// LIMITS    The interval is computed in double and capped, so no overflow for any attempt count.
#include "queue/queue.hpp"

#include <algorithm>
#include <cmath>

namespace buzon::queue {

// attempts_done rounds have failed; the next one is first * factor^(attempts_done-1) after now,
// at most max_interval, and never later than the give-up time (so the final bounce is on time).
// attempts_done == 0: not tried yet, now.
TimePoint next_attempt(const RetryPolicy& p, TimePoint created, unsigned attempts_done, TimePoint now) {
  if (attempts_done == 0) return now;
  const double first = static_cast<double>(std::max<std::int64_t>(p.first.count(), 1));
  const double cap = static_cast<double>(std::max<std::int64_t>(p.max_interval.count(), 1));
  const double factor = p.factor < 1.0 || !std::isfinite(p.factor) ? 1.0 : p.factor;
  double interval = first;
  for (unsigned i = 1; i < attempts_done && interval < cap; ++i) interval *= factor;
  interval = std::min(interval, cap);
  TimePoint next = now + std::chrono::seconds(static_cast<std::int64_t>(interval));
  const TimePoint give_up = created + p.max_age;
  if (next > give_up) next = std::max(now, give_up);
  return next;
}

bool expired(const RetryPolicy& p, const Entry& e, TimePoint now) { return now >= e.created + p.max_age; }

// Once per entry, after delay_warning and before the give-up time, when the sender is not null and
// some recipient still pending asked for delay notices (the default when NOTIFY was not given).
bool delay_warning_due(const RetryPolicy& p, const Entry& e, TimePoint now) {
  if (e.delay_warned || e.sender.empty() || p.delay_warning.count() <= 0) return false;
  if (now < e.created + p.delay_warning || expired(p, e, now)) return false;
  return std::any_of(e.recipients.begin(), e.recipients.end(), [](const Recipient& r) {
    return r.state == RcptState::pending && r.notify.delay && !r.notify.never;
  });
}

}  // namespace buzon::queue
