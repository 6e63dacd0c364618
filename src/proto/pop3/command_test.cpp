// proto/pop3/command_test.cpp — parse_command valid/invalid tables, the command table,
// parse_msgnum, parse_line_count and is_utf8.
#include "proto/pop3/command.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "proto/pop3/limits.hpp"

namespace buzon::pop3 {
namespace {

using namespace std::string_literals;
using Args = std::vector<std::string>;

// ---- Valid commands --------------------------------------------------------------------------

struct ValidCase {
  std::string line;
  Verb verb;
  std::string keyword;
  Args args;
};

const std::vector<ValidCase>& valid_cases() {
  static const std::vector<ValidCase> k = {
      {"USER bob", Verb::user, "USER", {"bob"}},
      {"user bob", Verb::user, "USER", {"bob"}},
      {"UsEr Bob", Verb::user, "USER", {"Bob"}},  // arguments keep their case
      {"USER bob@example.org", Verb::user, "USER", {"bob@example.org"}},
      {"USER " + std::string(60, 'u') + "@example.org", Verb::user, "USER",
       {std::string(60, 'u') + "@example.org"}},  // user names may exceed 40 (RFC 2449 §4)
      {"USER b\xc3\xa9la", Verb::user, "USER", {"b\xc3\xa9la"}},  // UTF-8 (RFC 6856 §2.2)
      {"PASS secret", Verb::pass, "PASS", {"secret"}},
      {"PASS two words", Verb::pass, "PASS", {"two words"}},
      {"PASS  leading", Verb::pass, "PASS", {" leading"}},
      {"PASS trailing ", Verb::pass, "PASS", {"trailing "}},
      {"pass \xf1o\xf1o", Verb::pass, "PASS", {"\xf1o\xf1o"}},  // Latin-1 from old clients
      {"PASS " + std::string(200, 'p'), Verb::pass, "PASS", {std::string(200, 'p')}},
      {"APOP mrose c4c9334bac560ecc979e58001b3e22fb", Verb::apop, "APOP",
       {"mrose", "c4c9334bac560ecc979e58001b3e22fb"}},
      {"STAT", Verb::stat, "STAT", {}},
      {"stat", Verb::stat, "STAT", {}},
      {"LIST", Verb::list, "LIST", {}},
      {"LIST 1", Verb::list, "LIST", {"1"}},
      // Argument syntax is checked by parse_msgnum, not here.
      {"LIST 0", Verb::list, "LIST", {"0"}},
      {"LIST -1", Verb::list, "LIST", {"-1"}},
      {"LIST 99999999999999999999999", Verb::list, "LIST", {"99999999999999999999999"}},
      {"RETR 1", Verb::retr, "RETR", {"1"}},
      {"retr 1x", Verb::retr, "RETR", {"1x"}},
      {"RETR +1", Verb::retr, "RETR", {"+1"}},
      {"DELE 2", Verb::dele, "DELE", {"2"}},
      {"NOOP", Verb::noop, "NOOP", {}},
      {"RSET", Verb::rset, "RSET", {}},
      {"QUIT", Verb::quit, "QUIT", {}},
      {"quit", Verb::quit, "QUIT", {}},
      {"QUIT ", Verb::quit, "QUIT", {}},  // trailing space tolerated
      {"TOP 1 10", Verb::top, "TOP", {"1", "10"}},
      {"top 1 0", Verb::top, "TOP", {"1", "0"}},
      {"TOP  1   10  ", Verb::top, "TOP", {"1", "10"}},  // runs of spaces tolerated
      {"UIDL", Verb::uidl, "UIDL", {}},
      {"UIDL 3", Verb::uidl, "UIDL", {"3"}},
      {"CAPA", Verb::capa, "CAPA", {}},
      {"AUTH", Verb::auth, "AUTH", {}},
      {"AUTH PLAIN", Verb::auth, "AUTH", {"PLAIN"}},
      {"AUTH plain", Verb::auth, "AUTH", {"plain"}},
      {"AUTH PLAIN =", Verb::auth, "AUTH", {"PLAIN", "="}},  // RFC 5034 §4 empty response
      {"AUTH PLAIN " + std::string(200, 'A'), Verb::auth, "AUTH",
       {"PLAIN", std::string(200, 'A')}},  // long initial response
      {"STLS", Verb::stls, "STLS", {}},
      {"UTF8", Verb::utf8, "UTF8", {}},
      {"utf8", Verb::utf8, "UTF8", {}},
      {"LANG", Verb::lang, "LANG", {}},
      {"LANG *", Verb::lang, "LANG", {"*"}},
      {"LANG es-MX", Verb::lang, "LANG", {"es-MX"}},
      {"RETR " + std::string(40, '1'), Verb::retr, "RETR", {std::string(40, '1')}},  // 40 is ok
  };
  return k;
}

TEST(ParseCommand, ValidForms) {
  for (const auto& c : valid_cases()) {
    auto r = parse_command(c.line);
    ASSERT_TRUE(r) << c.line << ": " << r.error().message;
    EXPECT_EQ(r->verb, c.verb) << c.line;
    EXPECT_EQ(r->keyword, c.keyword) << c.line;
    EXPECT_EQ(r->args, c.args) << c.line;
  }
}

TEST(ParseCommand, RestIsEverythingAfterTheFirstSpace) {
  auto r = parse_command("PASS  a b  c ");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rest, " a b  c ");
  EXPECT_EQ(r->args, Args{" a b  c "});
  r = parse_command("TOP 1  2");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rest, "1  2");
  r = parse_command("STAT");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->rest, "");
}

TEST(ParseCommand, UnknownKeywordIsNotAParseError) {
  for (std::string line : {"XTND XMIT", "HELO", "helo there", "XYZ", "ABCD 1 2 3 4 5", "EHLO x",
                           "RCPT TO:<a>", "GET / HTTP/1.1", "XTND \x01\xff"}) {
    auto r = parse_command(line);
    ASSERT_TRUE(r) << line;
    EXPECT_EQ(r->verb, Verb::unknown) << line;
  }
  auto r = parse_command("xtnd xmit");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->keyword, "XTND");
  EXPECT_EQ(r->args, Args{"xmit"});
}

// ---- Invalid commands ------------------------------------------------------------------------

struct InvalidCase {
  std::string line;
  ParseErrc code;
  Verb verb;
  std::string message;  // "" = not checked
};

const std::vector<InvalidCase>& invalid_cases() {
  static const std::vector<InvalidCase> k = {
      {"", ParseErrc::empty, Verb::unknown, "empty command"},
      // Keywords: 3-4 ASCII letters or digits.
      {" ", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},
      {" USER bob", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},
      {"US", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},
      {"USERS bob", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},
      {"USER:bob", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},
      {"QU:T", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},
      {"QUI\xd4", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},  // 8-bit
      {"\xc3\x9cSER x", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},
      {"QU\0T"s, ParseErrc::bad_keyword, Verb::unknown, "invalid command"},  // NUL
      {"QUIT\0"s, ParseErrc::bad_keyword, Verb::unknown, "invalid command"},
      {"QUIT\t", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},
      {"QUIT\r", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},
      {"\x16\x03\x01\x02", ParseErrc::bad_keyword, Verb::unknown, "invalid command"},  // TLS
      // Argument counts.
      {"USER", ParseErrc::bad_arguments, Verb::user, "USER takes one user name"},
      {"USER ", ParseErrc::bad_arguments, Verb::user, "USER takes one user name"},
      {"USER bob smith", ParseErrc::bad_arguments, Verb::user, "USER takes one user name"},
      {"PASS", ParseErrc::bad_arguments, Verb::pass, "PASS takes the password"},
      {"PASS ", ParseErrc::bad_arguments, Verb::pass, "PASS takes the password"},
      {"APOP mrose", ParseErrc::bad_arguments, Verb::apop, "APOP takes a user name and a digest"},
      {"APOP a b c", ParseErrc::bad_arguments, Verb::apop, "APOP takes a user name and a digest"},
      {"STAT 1", ParseErrc::bad_arguments, Verb::stat, "STAT takes no arguments"},
      {"LIST 1 2", ParseErrc::bad_arguments, Verb::list, "LIST takes at most one message number"},
      {"RETR", ParseErrc::bad_arguments, Verb::retr, "RETR takes one message number"},
      {"RETR 1 2", ParseErrc::bad_arguments, Verb::retr, "RETR takes one message number"},
      {"DELE", ParseErrc::bad_arguments, Verb::dele, "DELE takes one message number"},
      {"DELE 1 1", ParseErrc::bad_arguments, Verb::dele, "DELE takes one message number"},
      {"NOOP x", ParseErrc::bad_arguments, Verb::noop, "NOOP takes no arguments"},
      {"RSET x", ParseErrc::bad_arguments, Verb::rset, "RSET takes no arguments"},
      {"QUIT now", ParseErrc::bad_arguments, Verb::quit, "QUIT takes no arguments"},
      {"TOP", ParseErrc::bad_arguments, Verb::top, "TOP takes a message number and a line count"},
      {"TOP 1", ParseErrc::bad_arguments, Verb::top, "TOP takes a message number and a line count"},
      {"TOP 1 2 3", ParseErrc::bad_arguments, Verb::top,
       "TOP takes a message number and a line count"},
      {"UIDL 1 2", ParseErrc::bad_arguments, Verb::uidl, "UIDL takes at most one message number"},
      {"CAPA x", ParseErrc::bad_arguments, Verb::capa, "CAPA takes no arguments"},
      {"AUTH PLAIN x y", ParseErrc::bad_arguments, Verb::auth,
       "AUTH takes a mechanism and an optional initial response"},
      {"STLS x", ParseErrc::bad_arguments, Verb::stls, "STLS takes no arguments"},
      {"UTF8 x", ParseErrc::bad_arguments, Verb::utf8, "UTF8 takes no arguments"},
      {"LANG en fr", ParseErrc::bad_arguments, Verb::lang, "LANG takes at most one language range"},
      // Overlong arguments (RFC 1939 §3: 40 octets).
      {"RETR " + std::string(41, '1'), ParseErrc::bad_arguments, Verb::retr,
       "argument too long (at most 40 octets)"},
      {"TOP 1 " + std::string(41, '9'), ParseErrc::bad_arguments, Verb::top,
       "argument too long (at most 40 octets)"},
      {"APOP bob " + std::string(41, 'f'), ParseErrc::bad_arguments, Verb::apop,
       "argument too long (at most 40 octets)"},
      {"AUTH " + std::string(41, 'M') + " =", ParseErrc::bad_arguments, Verb::auth,
       "argument too long (at most 40 octets)"},
      {"LANG " + std::string(41, 'e'), ParseErrc::bad_arguments, Verb::lang,
       "argument too long (at most 40 octets)"},
      // Control characters in arguments, NUL included.
      {"USER b\0b"s, ParseErrc::bad_arguments, Verb::user, "invalid character in argument"},
      {"USER bob\r", ParseErrc::bad_arguments, Verb::user, "invalid character in argument"},
      {"USER bob\tx", ParseErrc::bad_arguments, Verb::user, "invalid character in argument"},
      {"USER b\x7f", ParseErrc::bad_arguments, Verb::user, "invalid character in argument"},
      {"PASS se\0cret"s, ParseErrc::bad_arguments, Verb::pass, "invalid character in argument"},
      {"PASS secret\n", ParseErrc::bad_arguments, Verb::pass, "invalid character in argument"},
      {"RETR 1\0"s, ParseErrc::bad_arguments, Verb::retr, "invalid character in argument"},
      {"AUTH PLAIN AAAA\x01", ParseErrc::bad_arguments, Verb::auth,
       "invalid character in argument"},
  };
  return k;
}

TEST(ParseCommand, InvalidForms) {
  for (const auto& c : invalid_cases()) {
    auto r = parse_command(c.line);
    ASSERT_FALSE(r) << c.line;
    EXPECT_EQ(r.error().code, c.code) << c.line;
    EXPECT_EQ(r.error().verb, c.verb) << c.line;
    if (!c.message.empty()) {
      EXPECT_EQ(r.error().message, c.message) << c.line;
    }
  }
}

TEST(ParseCommand, ErrorMessagesAreSafeToSend) {
  for (const auto& c : invalid_cases()) {
    auto r = parse_command(c.line);
    ASSERT_FALSE(r);
    for (char ch : r.error().message) {
      const auto u = static_cast<unsigned char>(ch);
      EXPECT_TRUE(u >= 0x20 && u < 0x7F) << "unsafe octet in message for " << c.line;
    }
  }
}

TEST(ParseCommand, ArgumentLengthBoundaries) {
  EXPECT_TRUE(parse_command("DELE " + std::string(kMaxArgLength, '7')));
  EXPECT_FALSE(parse_command("DELE " + std::string(kMaxArgLength + 1, '7')));
  EXPECT_TRUE(parse_command("APOP " + std::string(100, 'n') + " " + std::string(32, 'f')));
  EXPECT_TRUE(parse_command("AUTH " + std::string(kMaxArgLength, 'M')));
}

// Every prefix of every valid line parses or fails cleanly: no crash, and a result that is
// either a Command or an error with text.
TEST(ParseCommand, EveryPrefixIsHandled) {
  for (const auto& c : valid_cases()) {
    for (std::size_t i = 0; i <= c.line.size(); ++i) {
      auto r = parse_command(std::string_view(c.line).substr(0, i));
      if (!r) {
        EXPECT_FALSE(r.error().message.empty()) << c.line.substr(0, i);
      }
    }
  }
}

TEST(ParseCommand, EveryByteAsAKeywordCharacter) {
  for (int b = 0; b < 256; ++b) {
    std::string line = "QU";
    line += static_cast<char>(b);
    line += "T";
    auto r = parse_command(line);
    const bool alnum = (b >= '0' && b <= '9') || (b >= 'A' && b <= 'Z') || (b >= 'a' && b <= 'z');
    if (alnum) {
      ASSERT_TRUE(r) << b;
      EXPECT_EQ(r->verb, (b == 'I' || b == 'i') ? Verb::quit : Verb::unknown) << b;
    } else if (b == ' ') {
      EXPECT_FALSE(r) << "\"QU T\": keyword of two characters";
    } else {
      ASSERT_FALSE(r) << b;
      EXPECT_EQ(r.error().code, ParseErrc::bad_keyword) << b;
    }
  }
}

// ---- The command table ---------------------------------------------------------------------

TEST(CommandTable, NamesRoundTripThroughTheParser) {
  for (const auto& spec : kVerbs) {
    if (spec.verb == Verb::unknown) continue;
    EXPECT_EQ(verb_spec(spec.verb).name, spec.name);
    auto r = parse_command(spec.name);
    if (spec.min_args == 0) {
      ASSERT_TRUE(r) << spec.name;
      EXPECT_EQ(r->verb, spec.verb);
    } else {
      ASSERT_FALSE(r) << spec.name;
      EXPECT_EQ(r.error().code, ParseErrc::bad_arguments);
      EXPECT_EQ(r.error().verb, spec.verb);
      EXPECT_EQ(r.error().message, spec.usage);
    }
  }
}

TEST(CommandTable, StatesFollowTheRfcs) {
  using enum State;
  // RFC 1939 §4: AUTHORIZATION.
  for (Verb v : {Verb::user, Verb::pass, Verb::apop, Verb::auth, Verb::stls, Verb::utf8}) {
    EXPECT_TRUE(allowed_in(v, authorization)) << verb_name(v);
    EXPECT_FALSE(allowed_in(v, transaction)) << verb_name(v);
  }
  // RFC 1939 §5 and §7: TRANSACTION.
  for (Verb v : {Verb::stat, Verb::list, Verb::retr, Verb::dele, Verb::noop, Verb::rset, Verb::top,
                 Verb::uidl}) {
    EXPECT_FALSE(allowed_in(v, authorization)) << verb_name(v);
    EXPECT_TRUE(allowed_in(v, transaction)) << verb_name(v);
  }
  // Both: QUIT (RFC 1939 §4, §6), CAPA (RFC 2449 §5), LANG (RFC 6856 §3.1).
  for (Verb v : {Verb::quit, Verb::capa, Verb::lang}) {
    EXPECT_TRUE(allowed_in(v, authorization)) << verb_name(v);
    EXPECT_TRUE(allowed_in(v, transaction)) << verb_name(v);
  }
  EXPECT_FALSE(allowed_in(Verb::unknown, authorization));
  EXPECT_FALSE(allowed_in(Verb::unknown, transaction));
  static_assert(allowed_in(Verb::retr, State::transaction), "usable in constant expressions");
  static_assert(verb_name(Verb::top) == "TOP");
}

// ---- parse_msgnum --------------------------------------------------------------------------

TEST(ParseMsgnum, AcceptsInRangeNumbers) {
  const bool del[5] = {false, false, false, false, false};
  EXPECT_EQ(parse_msgnum("1", 5, del), 0u);
  EXPECT_EQ(parse_msgnum("5", 5, del), 4u);
  EXPECT_EQ(parse_msgnum("05", 5, del), 4u);
  EXPECT_EQ(parse_msgnum("0000000000000000000000000000000000000003", 5, del), 2u);
  EXPECT_EQ(parse_msgnum("3", 5, {}), 2u) << "an empty span means nothing is deleted";
}

TEST(ParseMsgnum, RejectsBadSyntax) {
  const bool del[3] = {};
  for (std::string arg : {""s, "+1"s, "-1"s, "1x"s, "x1"s, " 1"s, "1 "s, "0x1"s, "1.0"s, "1e3"s,
                          "\xd9\xa1"s /* ARABIC-INDIC DIGIT ONE */, "1\0"s}) {
    auto r = parse_msgnum(arg, 3, del);
    ASSERT_FALSE(r) << arg;
    EXPECT_EQ(r.error(), "invalid message number") << arg;
  }
}

TEST(ParseMsgnum, RejectsOutOfRange) {
  const bool del[2] = {};
  for (std::string arg : {"0"s, "3"s, "00"s, "18446744073709551615"s, "18446744073709551616"s,
                          "99999999999999999999999"s, std::string(40, '9')}) {
    auto r = parse_msgnum(arg, 2, del);
    ASSERT_FALSE(r) << arg;
    EXPECT_EQ(r.error(), "no such message, only 2 messages in maildrop") << arg;
  }
  auto r = parse_msgnum("2", 1, del);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "no such message, only 1 message in maildrop");
  r = parse_msgnum("1", 0, {});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "no such message, only 0 messages in maildrop");
}

TEST(ParseMsgnum, RejectsDeletedMessages) {
  const bool del[3] = {false, true, false};
  auto r = parse_msgnum("2", 3, del);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error(), "message 2 already deleted");  // RFC 1939 §5 DELE example
  EXPECT_EQ(parse_msgnum("3", 3, del), 2u);
  // A short span: messages past its end are not deleted.
  const bool first_only[1] = {true};
  EXPECT_EQ(parse_msgnum("3", 3, first_only), 2u);
  EXPECT_FALSE(parse_msgnum("1", 3, first_only));
}

TEST(ParseMsgnum, WorksOnTheArgumentsOfParsedCommands) {
  const bool del[3] = {};
  struct Case {
    std::string line;
    bool ok;
  };
  for (const auto& c : std::vector<Case>{{"LIST 0", false},
                                         {"LIST -1", false},
                                         {"LIST 99999999999999999999999", false},
                                         {"RETR 1x", false},
                                         {"RETR +1", false},
                                         {"RETR 1", true},
                                         {"DELE 3", true},
                                         {"UIDL 4", false},
                                         {"TOP 2 5", true}}) {
    auto cmd = parse_command(c.line);
    ASSERT_TRUE(cmd) << c.line;
    EXPECT_EQ(parse_msgnum(cmd->args.at(0), 3, del).has_value(), c.ok) << c.line;
  }
}

// ---- parse_line_count ----------------------------------------------------------------------

TEST(ParseLineCount, AcceptsNonNegativeNumbers) {
  EXPECT_EQ(parse_line_count("0"), 0u);
  EXPECT_EQ(parse_line_count("10"), 10u);
  EXPECT_EQ(parse_line_count("007"), 7u);
  EXPECT_EQ(parse_line_count("18446744073709551615"), 18446744073709551615u);
}

TEST(ParseLineCount, RejectsEverythingElse) {
  for (std::string arg : {""s, "-1"s, "+1"s, "1x"s, " 1"s, "1.5"s, "\0"s}) {
    auto r = parse_line_count(arg);
    ASSERT_FALSE(r) << arg;
    EXPECT_EQ(r.error(), "invalid line count") << arg;
  }
  for (std::string arg : {"18446744073709551616", "99999999999999999999999"}) {
    auto r = parse_line_count(arg);
    ASSERT_FALSE(r) << arg;
    EXPECT_EQ(r.error(), "line count too large") << arg;
  }
}

// ---- is_utf8 -------------------------------------------------------------------------------

TEST(IsUtf8, AcceptsWellFormedText) {
  for (std::string s : {""s, "ascii"s, "b\xc3\xa9la"s, "\xe2\x82\xac"s /* EURO */,
                        "\xf0\x9f\x93\xac"s /* U+1F4EC */, "\xf4\x8f\xbf\xbf"s /* U+10FFFF */,
                        "\xed\x9f\xbf"s /* U+D7FF */, "\xee\x80\x80"s /* U+E000 */}) {
    EXPECT_TRUE(is_utf8(s)) << s;
  }
}

TEST(IsUtf8, RejectsMalformedText) {
  for (std::string s : {"\xff"s, "\x80"s, "\xc3"s, "\xc3\x28"s, "\xc0\xaf"s /* overlong '/' */,
                        "\xc1\xbf"s, "\xe0\x80\xaf"s, "\xf0\x80\x80\xaf"s,
                        "\xed\xa0\x80"s /* surrogate */, "\xf4\x90\x80\x80"s /* > U+10FFFF */,
                        "\xf5\x80\x80\x80"s, "\xf1\xf1o"s /* Latin-1 "ñoñ" */,
                        "\xe2\x82"s /* truncated */}) {
    EXPECT_FALSE(is_utf8(s)) << s;
  }
}

}  // namespace
}  // namespace buzon::pop3
