#include "core/metrics.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace buzon::metrics {

// ---------------------------------------------------------------------------------------------
// Values

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)) {
  if (!std::is_sorted(bounds_.begin(), bounds_.end()) ||
      std::adjacent_find(bounds_.begin(), bounds_.end()) != bounds_.end())
    throw std::logic_error("histogram bounds must be strictly ascending");
  if (!bounds_.empty() && std::isinf(bounds_.back())) bounds_.pop_back();  // +Inf is implicit
  buckets_ = std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1);
  for (std::size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0, std::memory_order_relaxed);
}

void Histogram::observe(double v) {
  auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);  // first bound >= v: le is inclusive
  buckets_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(v, std::memory_order_relaxed);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::bucket_counts() const {
  std::vector<std::uint64_t> out(bounds_.size() + 1);
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = buckets_[i].load(std::memory_order_relaxed);
  return out;
}

template <class T>
T& Family<T>::with(const std::vector<std::string>& values) {
  if (values.size() != names_.size())
    throw std::logic_error(fmt::format("metric child needs {} label values, got {}", names_.size(), values.size()));
  {
    std::shared_lock lock(mu_);
    if (auto it = children_.find(values); it != children_.end()) return *it->second;
  }
  std::unique_lock lock(mu_);
  auto& slot = children_[values];
  if (!slot) slot = make_();
  return *slot;
}

template <class T>
void Family<T>::for_each(const std::function<void(const std::vector<std::string>&, const T&)>& f) const {
  std::shared_lock lock(mu_);
  for (auto& [values, child] : children_) f(values, *child);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

// ---------------------------------------------------------------------------------------------
// Text format helpers

bool valid_metric_name(std::string_view n) {
  if (n.empty()) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    if (!(alpha || (i > 0 && c >= '0' && c <= '9'))) return false;
  }
  return true;
}

bool valid_label_name(std::string_view n) {
  if (n.empty() || n.starts_with("__")) return false;
  for (std::size_t i = 0; i < n.size(); ++i) {
    char c = n[i];
    bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    if (!(alpha || (i > 0 && c >= '0' && c <= '9'))) return false;
  }
  return true;
}

std::string escape_label_value(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

std::string escape_help(std::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\') out += "\\\\";
    else if (c == '\n') out += "\\n";
    else out.push_back(c);
  }
  return out;
}

std::string format_value(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::trunc(v) && std::fabs(v) < 1e15) return fmt::format("{}", static_cast<long long>(v));
  return fmt::format("{}", v);
}

namespace {

void append_labels(std::string& out, const std::vector<std::string>& names, const std::vector<std::string>& values,
                   std::string_view extra_name = {}, std::string_view extra_value = {}) {
  if (names.empty() && extra_name.empty()) return;
  out.push_back('{');
  bool first = true;
  for (std::size_t i = 0; i < names.size(); ++i) {
    if (!first) out.push_back(',');
    first = false;
    out += names[i];
    out += "=\"";
    out += escape_label_value(values[i]);
    out.push_back('"');
  }
  if (!extra_name.empty()) {
    if (!first) out.push_back(',');
    out += extra_name;
    out += "=\"";
    out += extra_value;
    out.push_back('"');
  }
  out.push_back('}');
}

const char* type_name(Type t) {
  switch (t) {
    case Type::counter: return "counter";
    case Type::gauge: return "gauge";
    case Type::histogram: return "histogram";
  }
  return "untyped";
}

}  // namespace

void Emitter::sample(const std::vector<std::pair<std::string, std::string>>& labels, double value) {
  std::vector<std::string> names, values;
  for (auto& [n, v] : labels) {
    if (!valid_label_name(n)) throw std::logic_error("bad label name " + n);
    names.push_back(n);
    values.push_back(v);
  }
  *out_ += name_;
  append_labels(*out_, names, values);
  *out_ += ' ';
  *out_ += format_value(value);
  *out_ += '\n';
}

// ---------------------------------------------------------------------------------------------
// Registry

CallbackHandle& CallbackHandle::operator=(CallbackHandle&& o) noexcept {
  if (this != &o) {
    reset();
    reg_ = o.reg_;
    id_ = o.id_;
    o.reg_ = nullptr;
  }
  return *this;
}

void CallbackHandle::reset() {
  if (reg_) reg_->remove_callback(id_);
  reg_ = nullptr;
}

Registry::Entry& Registry::entry(const std::string& name, const std::string& help, Type type,
                                 const std::vector<std::string>& labels, bool for_callback) {
  if (!valid_metric_name(name)) throw std::logic_error("bad metric name " + name);
  for (auto& l : labels)
    if (!valid_label_name(l) || (type == Type::histogram && l == "le"))
      throw std::logic_error("bad label name " + l + " for " + name);
  auto [it, fresh] = entries_.try_emplace(name);
  auto& e = it->second;
  if (fresh) {
    e.type = type;
    e.help = help;
    e.label_names = labels;
    return e;
  }
  bool has_family = e.counters || e.gauges || e.histograms;
  if (e.type != type || (!for_callback && has_family && e.label_names != labels) ||
      (for_callback && has_family) || (!for_callback && !e.callbacks.empty()))
    throw std::logic_error("metric " + name + " registered twice with a different shape");
  return e;
}

Family<Counter>& Registry::counter(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  auto& e = entry(name, help, Type::counter, labels, false);
  if (!e.counters) e.counters = std::make_unique<Family<Counter>>(labels, [] { return std::make_unique<Counter>(); });
  return *e.counters;
}

Family<Gauge>& Registry::gauge(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  std::lock_guard lock(mu_);
  auto& e = entry(name, help, Type::gauge, labels, false);
  if (!e.gauges) e.gauges = std::make_unique<Family<Gauge>>(labels, [] { return std::make_unique<Gauge>(); });
  return *e.gauges;
}

Family<Histogram>& Registry::histogram(const std::string& name, const std::string& help,
                                       std::vector<std::string> labels, std::vector<double> bounds) {
  Histogram probe(bounds);  // validates the bounds before anything is registered
  std::lock_guard lock(mu_);
  auto& e = entry(name, help, Type::histogram, labels, false);
  if (!e.histograms)
    e.histograms = std::make_unique<Family<Histogram>>(labels, [b = probe.bounds()] { return std::make_unique<Histogram>(b); });
  return *e.histograms;
}

CallbackHandle Registry::callback(const std::string& name, const std::string& help, Type type,
                                  std::function<void(Emitter&)> fn) {
  if (type == Type::histogram) throw std::logic_error("callback metrics are counters or gauges");
  std::lock_guard lock(mu_);
  auto& e = entry(name, help, type, {}, true);
  auto id = next_id_++;
  e.callbacks.emplace(id, std::move(fn));
  callback_names_.emplace(id, name);
  return CallbackHandle(this, id);
}

void Registry::remove_callback(std::uint64_t id) {
  std::lock_guard lock(mu_);
  auto n = callback_names_.find(id);
  if (n == callback_names_.end()) return;
  if (auto it = entries_.find(n->second); it != entries_.end()) {
    it->second.callbacks.erase(id);
    if (it->second.callbacks.empty() && !it->second.counters && !it->second.gauges && !it->second.histograms)
      entries_.erase(it);
  }
  callback_names_.erase(n);
}

std::string Registry::render() const {
  std::lock_guard lock(mu_);
  std::string out;
  out.reserve(4096);
  for (auto& [name, e] : entries_) {
    out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, escape_help(e.help), name, type_name(e.type));
    if (e.counters) {
      e.counters->for_each([&](const std::vector<std::string>& values, const Counter& c) {
        out += name;
        append_labels(out, e.label_names, values);
        out += fmt::format(" {}\n", c.value());
      });
    }
    if (e.gauges) {
      e.gauges->for_each([&](const std::vector<std::string>& values, const Gauge& g) {
        out += name;
        append_labels(out, e.label_names, values);
        out += ' ' + format_value(g.value()) + '\n';
      });
    }
    if (e.histograms) {
      e.histograms->for_each([&](const std::vector<std::string>& values, const Histogram& h) {
        auto counts = h.bucket_counts();
        std::uint64_t cumulative = 0;
        // _count is the +Inf bucket (the sum of the buckets read), so one scrape is always consistent.
        for (std::size_t i = 0; i < counts.size(); ++i) {
          cumulative += counts[i];
          out += name + "_bucket";
          append_labels(out, e.label_names, values, "le", i < h.bounds().size() ? format_value(h.bounds()[i]) : "+Inf");
          out += fmt::format(" {}\n", cumulative);
        }
        out += name + "_sum";
        append_labels(out, e.label_names, values);
        out += ' ' + format_value(h.sum()) + '\n';
        out += name + "_count";
        append_labels(out, e.label_names, values);
        out += fmt::format(" {}\n", cumulative);
      });
    }
    for (auto& [id, fn] : e.callbacks) {
      Emitter em;
      em.name_ = name;
      em.out_ = &out;
      fn(em);
    }
  }
  return out;
}

Registry& registry() {
  static Registry r;
  return r;
}

// ---------------------------------------------------------------------------------------------

ProtocolMetrics::ProtocolMetrics(std::string protocol, Registry& r)
    : protocol_(std::move(protocol)),
      commands_(r.counter("buzon_commands_total", "Commands received, by protocol, command and result.",
                          {"protocol", "command", "result"})),
      auth_(r.counter("buzon_auth_total", "Authentication attempts, by protocol, mechanism and result.",
                      {"protocol", "mechanism", "result"})),
      bytes_in_(r.counter("buzon_received_bytes_total", "Octets received from clients, by protocol.", {"protocol"})
                    .with({protocol_})),
      bytes_out_(r.counter("buzon_sent_bytes_total", "Octets sent to clients, by protocol.", {"protocol"})
                     .with({protocol_})) {}

void ProtocolMetrics::command(std::string_view command, std::string_view result) {
  commands_.with({protocol_, command, result}).inc();
}

void ProtocolMetrics::auth(std::string_view mechanism, bool success) {
  auth_.with({protocol_, mechanism, success ? "success" : "failure"}).inc();
}

void ProtocolMetrics::bytes(std::uint64_t in, std::uint64_t out) {
  bytes_in_.inc(in);
  bytes_out_.inc(out);
}

}  // namespace buzon::metrics
