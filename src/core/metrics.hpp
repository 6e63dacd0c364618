// core/metrics.hpp — counters, gauges and histograms with labels, rendered in the Prometheus text
// exposition format (version 0.0.4) by the metrics endpoint (server/metrics_http).
//
// Use: register a family once (at start-up, or lazily: registering the same name again with the
// same type and label names returns the same family), keep the reference, and update children from
// any thread:
//
//   auto& deliveries = metrics::registry().counter("buzon_deliveries_total", "Messages delivered.",
//                                                  {"protocol", "result"});
//   deliveries.with({"lmtp", "ok"}).inc();
//   auto& latency = metrics::registry().histogram("buzon_delivery_seconds", "Time to fsync a delivery.",
//                                                 {"backend"}, metrics::kLatencyBuckets);
//   latency.with({"maildir"}).observe(0.004);
//
// Hot paths keep the child reference (`Counter& c = family.with(...)`) and pay one relaxed atomic
// add per update; `with()` itself takes a shared lock and a map lookup. Children are never removed,
// so references stay valid for the life of the registry.
//
// SECURITY  Label values must come from a small fixed set (protocol names, command names from the
//           verb table, listen addresses): never a client's address, user name or raw input. That
//           bounds memory (cardinality) and keeps client bytes out of the exposition.
// LIMITS    Names and label names are checked against the exposition format grammar at
//           registration; a bad name or a type clash is a programming error (std::logic_error).
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <map>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::metrics {

class Counter {
 public:
  void inc(std::uint64_t n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  std::uint64_t value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<std::uint64_t> v_{0};
};

class Gauge {
 public:
  void set(double v) { v_.store(v, std::memory_order_relaxed); }
  void inc(double n = 1) { v_.fetch_add(n, std::memory_order_relaxed); }
  void dec(double n = 1) { v_.fetch_sub(n, std::memory_order_relaxed); }
  double value() const { return v_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> v_{0};
};

// Cumulative buckets as Prometheus expects them; `bounds` are the upper bounds (le), ascending,
// without +Inf (always added).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double v);
  const std::vector<double>& bounds() const { return bounds_; }
  // Per-bucket (non-cumulative) counts, the last one for +Inf; sum and count of all observations.
  std::vector<std::uint64_t> bucket_counts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
  std::atomic<double> sum_{0};
  std::atomic<std::uint64_t> count_{0};
};

// Seconds: 1 ms to 60 s, for session, delivery and handshake latencies.
inline const std::vector<double> kLatencyBuckets{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                 0.25,  0.5,    1,     2.5,  5,     10,  30, 60};

enum class Type { counter, gauge, histogram };

// Label names of a family and, per child, its values (same order).
template <class T>
class Family {
 public:
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<T>()> make)
      : names_(std::move(label_names)), make_(std::move(make)) {}

  // The child for these label values (one per label name, in order); created on first use.
  T& with(std::initializer_list<std::string_view> values) { return with(std::vector<std::string>(values.begin(), values.end())); }
  T& with(const std::vector<std::string>& values);
  // Without labels (a family registered with no label names).
  T& get() { return with(std::vector<std::string>{}); }

  const std::vector<std::string>& label_names() const { return names_; }
  // Calls f(values, child) for every child, sorted by label values.
  void for_each(const std::function<void(const std::vector<std::string>&, const T&)>& f) const;

 private:
  std::vector<std::string> names_;
  std::function<std::unique_ptr<T>()> make_;
  mutable std::shared_mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_;
};

// Values computed at scrape time (queue depths, uptime): the callback adds samples through this.
class Emitter {
 public:
  // One sample of the family the callback was registered for; `labels` pairs name and value.
  void sample(const std::vector<std::pair<std::string, std::string>>& labels, double value);
  void sample(double value) { sample({}, value); }

 private:
  friend class Registry;
  std::string name_;
  std::string* out_ = nullptr;
};

class Registry;

// Unregisters its callback when destroyed (a callback usually captures an object that dies first).
class CallbackHandle {
 public:
  CallbackHandle() = default;
  CallbackHandle(Registry* r, std::uint64_t id) : reg_(r), id_(id) {}
  CallbackHandle(CallbackHandle&& o) noexcept : reg_(o.reg_), id_(o.id_) { o.reg_ = nullptr; }
  CallbackHandle& operator=(CallbackHandle&& o) noexcept;
  ~CallbackHandle() { reset(); }
  void reset();

 private:
  Registry* reg_ = nullptr;
  std::uint64_t id_ = 0;
};

class Registry {
 public:
  Family<Counter>& counter(const std::string& name, const std::string& help, std::vector<std::string> label_names = {});
  Family<Gauge>& gauge(const std::string& name, const std::string& help, std::vector<std::string> label_names = {});
  Family<Histogram>& histogram(const std::string& name, const std::string& help, std::vector<std::string> label_names,
                               std::vector<double> bounds);
  // A gauge or counter whose samples are produced at scrape time. Several callbacks may share one
  // name (e.g. one per server instance); their samples are rendered under one HELP/TYPE.
  [[nodiscard]] CallbackHandle callback(const std::string& name, const std::string& help, Type type,
                                        std::function<void(Emitter&)> fn);

  // The whole registry in the text exposition format 0.0.4, families sorted by name.
  std::string render() const;

 private:
  friend class CallbackHandle;
  void remove_callback(std::uint64_t id);

  struct Entry {
    Type type;
    std::string help;
    std::vector<std::string> label_names;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<Histogram>> histograms;
    std::map<std::uint64_t, std::function<void(Emitter&)>> callbacks;
  };
  Entry& entry(const std::string& name, const std::string& help, Type type, const std::vector<std::string>& labels,
               bool for_callback);

  mutable std::mutex mu_;
  std::map<std::string, Entry, std::less<>> entries_;
  std::map<std::uint64_t, std::string> callback_names_;
  std::uint64_t next_id_ = 1;
};

// The process-wide registry the metrics endpoint serves.
Registry& registry();

// Checks against the exposition format grammar.
bool valid_metric_name(std::string_view name);
bool valid_label_name(std::string_view name);
// Escaping of the exposition format: label values escape \ " and newline; HELP escapes \ and newline.
std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
// A sample value: integers without a fraction, +Inf/-Inf/NaN spelled as the format wants.
std::string format_value(double v);

// What every protocol session reports, with the protocol name as a label. One per service
// (pop3::Service holds one; SMTP, LMTP and submission can too).
class ProtocolMetrics {
 public:
  explicit ProtocolMetrics(std::string protocol, Registry& r = registry());
  // `command` comes from the protocol's verb table (never raw input); result is "ok", "err", ...
  void command(std::string_view command, std::string_view result);
  // mechanism: "USER" (POP3 USER/PASS), "APOP", or a SASL mechanism name.
  void auth(std::string_view mechanism, bool success);
  void bytes(std::uint64_t in, std::uint64_t out);

 private:
  std::string protocol_;
  Family<Counter>& commands_;
  Family<Counter>& auth_;
  Counter& bytes_in_;
  Counter& bytes_out_;
};

}  // namespace buzon::metrics
