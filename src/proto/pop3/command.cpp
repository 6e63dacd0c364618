// proto/pop3/command.cpp — POP3 command parser and argument parsers (see command.hpp).
//
// SECURITY: untrusted input; no message text produced here echoes the peer's octets, so an
//   error reply can never carry CR, LF or 8-bit data back to the client or into a log line.
// STANDARDS: RFC 1939 §3, §5, §7; RFC 2449 §3-§4; RFC 5034 §4; RFC 6856 §2-§3; RFC 3629 §4.
// LIMITS: kMaxArgLength (limits.hpp); numbers must fit in 64 bits.
#include "proto/pop3/command.hpp"

#include <limits>
#include <string>
#include <utility>
#include <optional>

#include "proto/pop3/limits.hpp"

namespace buzon::pop3 {

namespace {

constexpr bool table_is_indexed_by_verb() {
  for (std::size_t i = 0; i < kVerbs.size(); ++i) {
    if (static_cast<std::size_t>(kVerbs[i].verb) != i) return false;
  }
  return kVerbs.back().verb == Verb::unknown;
}
static_assert(table_is_indexed_by_verb(), "kVerbs must be in Verb order");

constexpr bool is_ascii_alnum(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

constexpr bool is_control(char c) {
  const auto u = static_cast<unsigned char>(c);
  return u < 0x20 || u == 0x7F;
}

constexpr char to_upper(char c) { return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 32) : c; }

bool has_control(std::string_view s) {
  for (char c : s) {
    if (is_control(c)) return true;
  }
  return false;
}

// The longest an argument may be, or nullopt when only the line bounds it.
std::optional<std::size_t> max_arg_length(Verb v, std::size_t index) {
  switch (v) {
    case Verb::user:  // user names: RFC 2449 §4 lifted RFC 1939's 40 octets (see limits.hpp)
      return std::nullopt;
    case Verb::apop:
      if (index == 0) return std::nullopt;
      return kMaxArgLength;
    case Verb::auth:  // RFC 5034 §4: the initial response is bounded by the 255-octet line
      if (index == 1) return std::nullopt;
      return kMaxArgLength;
    default:
      return kMaxArgLength;
  }
}

ParseError make_error(ParseErrc code, Verb verb, std::string message) {
  return ParseError{.code = code, .verb = verb, .message = std::move(message)};
}

std::string no_such_message(std::size_t count) {
  std::string s = "no such message, only " + std::to_string(count);
  s += count == 1 ? " message in maildrop" : " messages in maildrop";
  return s;
}

// Decimal digits to a 64-bit value: nullopt for an empty string or a non-digit; `overflow` set
// (and nullopt returned) when the value does not fit.
std::optional<std::uint64_t> parse_digits(std::string_view s, bool& overflow) {
  overflow = false;
  if (s.empty()) return std::nullopt;
  for (char c : s) {
    if (c < '0' || c > '9') return std::nullopt;
  }
  constexpr auto kMax = std::numeric_limits<std::uint64_t>::max();
  std::uint64_t value = 0;
  for (char c : s) {
    const auto d = static_cast<std::uint64_t>(c - '0');
    if (value > (kMax - d) / 10) {
      overflow = true;
      return std::nullopt;
    }
    value = value * 10 + d;
  }
  return value;
}

}  // namespace

std::expected<Command, ParseError> parse_command(std::string_view line) {
  if (line.empty()) {
    return std::unexpected(make_error(ParseErrc::empty, Verb::unknown, "empty command"));
  }

  // keyword = 3*4VCHAR (RFC 2449 §3); every defined keyword is letters and digits ("UTF8"), so
  // anything else (':', 8-bit, NUL, TAB) is rejected before a table lookup.
  const auto space = line.find(' ');
  const std::string_view word = line.substr(0, space);
  if (word.size() < 3 || word.size() > 4) {
    return std::unexpected(make_error(ParseErrc::bad_keyword, Verb::unknown, "invalid command"));
  }
  for (char c : word) {
    if (!is_ascii_alnum(c)) {
      return std::unexpected(make_error(ParseErrc::bad_keyword, Verb::unknown, "invalid command"));
    }
  }

  Command cmd;
  cmd.keyword.reserve(word.size());
  for (char c : word) cmd.keyword += to_upper(c);
  for (const auto& spec : kVerbs) {
    if (spec.verb != Verb::unknown && spec.name == cmd.keyword) {
      cmd.verb = spec.verb;
      break;
    }
  }
  if (space != std::string_view::npos) cmd.rest.assign(line.substr(space + 1));
  const VerbSpec& spec = verb_spec(cmd.verb);

  // PASS: the argument is the rest of the line, spaces included (RFC 1939 §7, PASS discussion:
  // "the server may treat spaces in the argument as part of the password").
  if (cmd.verb == Verb::pass) {
    if (cmd.rest.empty()) {
      return std::unexpected(
          make_error(ParseErrc::bad_arguments, cmd.verb, std::string(spec.usage)));
    }
    if (has_control(cmd.rest)) {
      return std::unexpected(
          make_error(ParseErrc::bad_arguments, cmd.verb, "invalid character in argument"));
    }
    cmd.args.push_back(cmd.rest);
    return cmd;
  }

  // Arguments are separated by a single space (RFC 1939 §3); runs of spaces are tolerated.
  std::string_view rest = cmd.rest;
  while (!rest.empty()) {
    const auto start = rest.find_first_not_of(' ');
    if (start == std::string_view::npos) break;
    rest.remove_prefix(start);
    const auto end = rest.find(' ');
    cmd.args.emplace_back(rest.substr(0, end));
    rest.remove_prefix(end == std::string_view::npos ? rest.size() : end);
  }

  // An unknown command is not a parse error: the session answers -ERR and counts it.
  if (cmd.verb == Verb::unknown) return cmd;

  for (const auto& arg : cmd.args) {
    if (has_control(arg)) {
      return std::unexpected(
          make_error(ParseErrc::bad_arguments, cmd.verb, "invalid character in argument"));
    }
  }
  if (cmd.args.size() < spec.min_args || cmd.args.size() > spec.max_args) {
    return std::unexpected(make_error(ParseErrc::bad_arguments, cmd.verb, std::string(spec.usage)));
  }
  for (std::size_t i = 0; i < cmd.args.size(); ++i) {
    const auto limit = max_arg_length(cmd.verb, i);
    if (limit && cmd.args[i].size() > *limit) {
      return std::unexpected(make_error(
          ParseErrc::bad_arguments, cmd.verb,
          "argument too long (at most " + std::to_string(*limit) + " octets)"));
    }
  }
  return cmd;
}

std::expected<std::size_t, std::string> parse_msgnum(std::string_view arg, std::size_t count,
                                                     std::span<const bool> deleted) {
  // Only digits: "+1", "-1", " 1", "1x", "0x1" and "1.0" are all rejected here.
  bool overflow = false;
  const auto value = parse_digits(arg, overflow);
  if (overflow) return std::unexpected(no_such_message(count));
  if (!value) return std::unexpected(std::string("invalid message number"));
  if (*value == 0 || *value > count) return std::unexpected(no_such_message(count));
  const auto index = static_cast<std::size_t>(*value - 1);
  // RFC 1939 §5: a message marked as deleted may not be referred to ("-ERR message 2 already
  // deleted" in the DELE example).
  if (index < deleted.size() && deleted[index]) {
    return std::unexpected("message " + std::to_string(*value) + " already deleted");
  }
  return index;
}

std::expected<std::uint64_t, std::string> parse_line_count(std::string_view arg) {
  bool overflow = false;
  const auto value = parse_digits(arg, overflow);
  if (overflow) return std::unexpected(std::string("line count too large"));
  if (!value) return std::unexpected(std::string("invalid line count"));
  return *value;
}

bool is_utf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    std::size_t len = 0;
    std::uint32_t cp = 0;
    std::uint32_t min = 0;
    if (c >= 0xC2 && c <= 0xDF) {  // 0xC0, 0xC1 only start overlong forms
      len = 2;
      cp = c & 0x1F;
      min = 0x80;
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      cp = c & 0x0F;
      min = 0x800;
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      cp = c & 0x07;
      min = 0x10000;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return false;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += len;
  }
  return true;
}

}  // namespace buzon::pop3
