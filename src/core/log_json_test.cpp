#include "core/log_json.hpp"

#include "core/log.hpp"

#include <gtest/gtest.h>

namespace buzon {
namespace {

TEST(LogJson, StructuredLineBecomesFields) {
  EXPECT_EQ(log_line_to_json("T", "info", "pop3 session peer=127.0.0.1:5 user=alice result=quit cmds=7 in=0"),
            R"J({"ts":"T","level":"info","msg":"pop3 session","peer":"127.0.0.1:5","user":"alice","result":"quit","cmds":7,"in":0})J");
}

TEST(LogJson, QuotedValuesFromLogValueRoundTrip) {
  std::string hostile = "a \"b\" \\ c\r\nd\xff";
  auto line = "pop3 auth failed user=" + log_value(hostile) + " reason=" + log_value("wrong password");
  EXPECT_EQ(log_line_to_json("T", "info", line),
            R"J({"ts":"T","level":"info","msg":"pop3 auth failed","user":"a \"b\" \\ c\\x0d\\x0ad\\xff","reason":"wrong password"})J");
}

TEST(LogJson, FreeTextStaysOneMessage) {
  EXPECT_EQ(log_line_to_json("T", "error", "reload refused: /x.toml:3: unknown key 'a=b' (fix: remove it)"),
            R"J({"ts":"T","level":"error","msg":"reload refused: /x.toml:3: unknown key 'a=b' (fix: remove it)"})J");
  EXPECT_EQ(log_line_to_json("T", "info", "plain words"), R"J({"ts":"T","level":"info","msg":"plain words"})J");
}

TEST(LogJson, ReservedKeysAndNumbers) {
  EXPECT_EQ(log_line_to_json("T", "info", "x level=3 n=007 m=-4"),
            R"J({"ts":"T","level":"info","msg":"x","_level":3,"n":"007","m":-4})J");
}

TEST(LogJson, EscapingKeepsValidJsonAndUtf8) {
  EXPECT_EQ(json_escape("ñ\x01\t\xc3"), "ñ\\u0001\\t\\ufffd");
  EXPECT_EQ(json_escape("\"\\"), "\\\"\\\\");
}

}  // namespace
}  // namespace buzon
