#include "server/metrics_http.hpp"

#include <gtest/gtest.h>

namespace buzon::server {
namespace {

MetricsPages pages() { return {[] { return std::string("m 1\n"); }, [] { return std::string("status\n"); }}; }

TEST(MetricsHttp, NeedsTheWholeHead) {
  EXPECT_FALSE(parse_http_request_head("GET /metrics HTTP/1.1\r\nHost: x\r\n"));
  auto p = parse_http_request_head("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(p && p->request);
  EXPECT_EQ(p->request->method, "GET");
  EXPECT_EQ(p->request->target, "/metrics");
  EXPECT_TRUE(parse_http_request_head("GET / HTTP/1.0\n\n")->request);  // bare LF accepted
}

TEST(MetricsHttp, RejectsMalformedRequests) {
  EXPECT_EQ(parse_http_request_head("GET /metrics\r\n\r\n")->error, 400);
  EXPECT_EQ(parse_http_request_head("GET  /metrics HTTP/1.1\r\n\r\n")->error, 400);
  EXPECT_EQ(parse_http_request_head("GET /a b HTTP/1.1\r\n\r\n")->error, 400);
  EXPECT_EQ(parse_http_request_head("G(T / HTTP/1.1\r\n\r\n")->error, 400);
  EXPECT_EQ(parse_http_request_head("GET / HTTP/2.0\r\n\r\n")->error, 505);
  EXPECT_EQ(parse_http_request_head(std::string(kMaxRequestHead, 'a'))->error, 414);
  EXPECT_EQ(parse_http_request_head("GET / HTTP/1.1\r\n" + std::string(kMaxRequestHead, 'a'))->error, 431);
}

TEST(MetricsHttp, Routes) {
  auto get = [](std::string head) { return http_respond(*parse_http_request_head(head), pages()); };
  auto ok = get("GET /metrics?x=1 HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(ok.starts_with("HTTP/1.1 200 OK\r\n"));
  EXPECT_NE(ok.find("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"), std::string::npos);
  EXPECT_NE(ok.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_TRUE(ok.ends_with("\r\n\r\nm 1\n"));
  auto head = get("HEAD /metrics HTTP/1.1\r\n\r\n");
  EXPECT_NE(head.find("Content-Length: 4\r\n"), std::string::npos);
  EXPECT_TRUE(head.ends_with("\r\n\r\n"));  // no body for HEAD
  EXPECT_TRUE(get("GET /status HTTP/1.1\r\n\r\n").ends_with("status\n"));
  EXPECT_TRUE(get("GET /nope HTTP/1.1\r\n\r\n").starts_with("HTTP/1.1 404 "));
  auto post = get("POST /metrics HTTP/1.1\r\n\r\n");
  EXPECT_TRUE(post.starts_with("HTTP/1.1 405 "));
  EXPECT_NE(post.find("Allow: GET, HEAD\r\n"), std::string::npos);
}

}  // namespace
}  // namespace buzon::server
