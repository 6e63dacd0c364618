#include "core/metrics.hpp"

#include <gtest/gtest.h>

#include <thread>
#include <vector>

namespace buzon::metrics {
namespace {

TEST(Metrics, CounterWithLabelsRendersSortedAndEscaped) {
  Registry r;
  auto& c = r.counter("buzon_things_total", "Things.\nSecond \\ line.", {"kind", "result"});
  c.with({"b", "ok"}).inc(2);
  c.with({"a\"q\\\n", "err"}).inc();
  EXPECT_EQ(r.render(),
            "# HELP buzon_things_total Things.\\nSecond \\\\ line.\n"
            "# TYPE buzon_things_total counter\n"
            "buzon_things_total{kind=\"a\\\"q\\\\\\n\",result=\"err\"} 1\n"
            "buzon_things_total{kind=\"b\",result=\"ok\"} 2\n");
}

TEST(Metrics, SameNameSameShapeIsTheSameFamily) {
  Registry r;
  auto& a = r.counter("x_total", "h", {"l"});
  auto& b = r.counter("x_total", "h", {"l"});
  EXPECT_EQ(&a, &b);
  EXPECT_EQ(&a.with({"v"}), &b.with({"v"}));
  EXPECT_THROW(r.gauge("x_total", "h", {"l"}), std::logic_error);
  EXPECT_THROW(r.counter("x_total", "h", {"other"}), std::logic_error);
  EXPECT_THROW(a.with({"v", "w"}), std::logic_error);
}

TEST(Metrics, BadNamesAreRefused) {
  Registry r;
  EXPECT_THROW(r.counter("1abc", "h"), std::logic_error);
  EXPECT_THROW(r.counter("a-b", "h"), std::logic_error);
  EXPECT_THROW(r.counter("ok_total", "h", {"__reserved"}), std::logic_error);
  EXPECT_THROW(r.histogram("h_seconds", "h", {"le"}, {1}), std::logic_error);
  EXPECT_THROW(r.histogram("h2_seconds", "h", {}, {2, 1}), std::logic_error);
  EXPECT_TRUE(valid_metric_name("a:b_c9"));
  EXPECT_FALSE(valid_label_name("a:b"));
}

TEST(Metrics, GaugeAndValueFormatting) {
  Registry r;
  auto& g = r.gauge("g", "a gauge").get();
  g.set(3);
  g.inc(0.5);
  g.dec(1);
  EXPECT_EQ(r.render(), "# HELP g a gauge\n# TYPE g gauge\ng 2.5\n");
  EXPECT_EQ(format_value(1e300 * 1e300), "+Inf");
  EXPECT_EQ(format_value(-(1e300 * 1e300)), "-Inf");
  EXPECT_EQ(format_value(42), "42");
  EXPECT_EQ(format_value(0.25), "0.25");
}

TEST(Metrics, HistogramBucketsAreCumulativeAndInclusive) {
  Registry r;
  auto& h = r.histogram("d_seconds", "Latency.", {"backend"}, {0.1, 1}).with({"maildir"});
  h.observe(0.1);   // le is inclusive: counts in 0.1
  h.observe(0.5);
  h.observe(7);
  EXPECT_EQ(r.render(),
            "# HELP d_seconds Latency.\n# TYPE d_seconds histogram\n"
            "d_seconds_bucket{backend=\"maildir\",le=\"0.1\"} 1\n"
            "d_seconds_bucket{backend=\"maildir\",le=\"1\"} 2\n"
            "d_seconds_bucket{backend=\"maildir\",le=\"+Inf\"} 3\n"
            "d_seconds_sum{backend=\"maildir\"} 7.6\n"
            "d_seconds_count{backend=\"maildir\"} 3\n");
}

TEST(Metrics, CallbacksRenderAtScrapeAndUnregister) {
  Registry r;
  int depth = 7;
  {
    auto h1 = r.callback("q_depth", "Queue depth.", Type::gauge, [&](Emitter& e) { e.sample({{"queue", "a"}}, depth); });
    auto h2 = r.callback("q_depth", "Queue depth.", Type::gauge, [&](Emitter& e) { e.sample({{"queue", "b"}}, 1); });
    depth = 9;
    EXPECT_EQ(r.render(), "# HELP q_depth Queue depth.\n# TYPE q_depth gauge\nq_depth{queue=\"a\"} 9\nq_depth{queue=\"b\"} 1\n");
    EXPECT_THROW(r.gauge("q_depth", "x"), std::logic_error);
  }
  EXPECT_EQ(r.render(), "");  // both handles gone: nothing left
}

TEST(Metrics, ConcurrentUpdatesAreNotLost) {
  Registry r;
  auto& fam = r.counter("c_total", "c", {"t"});
  std::vector<std::thread> ts;
  for (int t = 0; t < 4; ++t)
    ts.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) fam.with({i % 2 ? "odd" : "even"}).inc();
    });
  for (auto& t : ts) t.join();
  EXPECT_EQ(fam.with({"odd"}).value() + fam.with({"even"}).value(), 40000u);
}

TEST(Metrics, ProtocolMetricsUseFixedNames) {
  Registry r;
  ProtocolMetrics p("pop3", r);
  p.command("RETR", "ok");
  p.auth("USER", false);
  p.bytes(10, 20);
  auto text = r.render();
  EXPECT_NE(text.find("buzon_commands_total{protocol=\"pop3\",command=\"RETR\",result=\"ok\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("buzon_auth_total{protocol=\"pop3\",mechanism=\"USER\",result=\"failure\"} 1\n"), std::string::npos);
  EXPECT_NE(text.find("buzon_received_bytes_total{protocol=\"pop3\"} 10\n"), std::string::npos);
  EXPECT_NE(text.find("buzon_sent_bytes_total{protocol=\"pop3\"} 20\n"), std::string::npos);
}

}  // namespace
}  // namespace buzon::metrics
