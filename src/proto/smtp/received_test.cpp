// Trace fields: the exact Received: form of RFC 5321 §4.4 (with RFC 3848 / RFC 6531 "with"
// names), RFC 5322 dates, Return-Path: and Delivered-To:.
#include "proto/smtp/received.hpp"

#include <gtest/gtest.h>

namespace buzon::smtp {
namespace {

constexpr std::int64_t kT = 1785846896;  // Tue, 04 Aug 2026 12:34:56 +0000

TEST(SmtpReceived, DateIsRfc5322Utc) {
  EXPECT_EQ(format_date(kT), "Tue, 04 Aug 2026 12:34:56 +0000");
  EXPECT_EQ(format_date(0), "Thu, 01 Jan 1970 00:00:00 +0000");
  EXPECT_EQ(format_date(951782400), "Tue, 29 Feb 2000 00:00:00 +0000");
}

TEST(SmtpReceived, FullForm) {
  ReceivedInfo i;
  i.helo = "client.example.org";
  i.peer = "192.0.2.7:52114";
  i.by = "mx.example.com";
  i.protocol = "ESMTP";
  i.id = "4F2A9C01";
  i.for_rcpt = "ana@example.com";
  i.time = kT;
  EXPECT_EQ(format_received(i),
            "Received: from client.example.org ([192.0.2.7])\r\n"
            "\tby mx.example.com (buzon) with ESMTP id 4F2A9C01\r\n"
            "\tfor <ana@example.com>; Tue, 04 Aug 2026 12:34:56 +0000\r\n");
}

TEST(SmtpReceived, TlsIpv6AndNoForClause) {
  ReceivedInfo i;
  i.helo = "[IPv6:2001:db8::1]";
  i.peer = "[2001:db8::1]:4000";
  i.by = "mx.example.com";
  i.protocol = "ESMTPS";
  i.id = "AB";
  i.tls = "TLSv1.3 TLS_AES_256_GCM_SHA384";
  i.time = kT;
  EXPECT_EQ(format_received(i),
            "Received: from [IPv6:2001:db8::1] ([IPv6:2001:db8::1])\r\n"
            "\t(using TLSv1.3 TLS_AES_256_GCM_SHA384)\r\n"
            "\tby mx.example.com (buzon) with ESMTPS id AB; Tue, 04 Aug 2026 12:34:56 +0000\r\n");
}

TEST(SmtpReceived, UnknownPeerAndInjectionAttempts) {
  ReceivedInfo i;
  i.helo = "evil\r\nX-Injected: yes";
  i.peer = "";
  i.by = "mx";
  i.protocol = "LMTP";
  i.time = kT;
  const auto r = format_received(i);
  EXPECT_EQ(r, "Received: from evilX-Injected: yes\r\n\tby mx (buzon) with LMTP; Tue, 04 Aug 2026 12:34:56 +0000\r\n");
}

TEST(SmtpReceived, ProtocolNames) {
  EXPECT_EQ(protocol_name(false, false, false, false, false), "SMTP");
  EXPECT_EQ(protocol_name(true, false, false, false, false), "ESMTP");
  EXPECT_EQ(protocol_name(true, false, true, false, false), "ESMTPS");
  EXPECT_EQ(protocol_name(true, false, true, true, false), "ESMTPSA");
  EXPECT_EQ(protocol_name(true, false, false, false, true), "UTF8SMTP");
  EXPECT_EQ(protocol_name(true, false, true, false, true), "UTF8SMTPS");
  EXPECT_EQ(protocol_name(true, true, false, false, false), "LMTP");
  EXPECT_EQ(protocol_name(true, true, true, false, true), "UTF8LMTPS");
}

TEST(SmtpReceived, PeerLiterals) {
  EXPECT_EQ(peer_literal("127.0.0.1:25"), "[127.0.0.1]");
  EXPECT_EQ(peer_literal("[::1]:25"), "[IPv6:::1]");
  EXPECT_EQ(peer_literal(""), "");
  EXPECT_EQ(peer_literal("unix"), "");
}

TEST(SmtpReceived, ReturnPathAndDeliveredTo) {
  Path null;
  null.null = true;
  EXPECT_EQ(format_return_path(null), "Return-Path: <>\r\n");
  auto p = parse_path(R"(<"john doe"@example.org>)", true);
  ASSERT_TRUE(p.has_value());
  EXPECT_EQ(format_return_path(*p), "Return-Path: <\"john doe\"@example.org>\r\n");
  EXPECT_EQ(format_delivered_to("ana@example.com"), "Delivered-To: ana@example.com\r\n");
  EXPECT_EQ(format_delivered_to("josé@exämple.com"), "Delivered-To: josé@exämple.com\r\n");
}

}  // namespace
}  // namespace buzon::smtp
