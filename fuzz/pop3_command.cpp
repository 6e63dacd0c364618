// fuzz/pop3_command.cpp — the POP3 command parser, parse_msgnum, parse_line_count and is_utf8.
//
// Input: [maildrop size octet][deleted-marks octet] then one command line as a client could send
// it (the session strips the terminator and bounds the length; the fuzzer also tries longer lines).
// Invariants checked on top of "no crash, no UB":
//  - a parsed keyword is 3-4 upper-case ASCII letters/digits; a known verb's keyword is its name;
//  - arguments of a known verb hold no control character and respect the table's argument count;
//  - error messages carry no CR, LF or NUL (they become "-ERR <message>" lines);
//  - parse_msgnum agrees with a reference (digits only, 1..count, not deleted) for each argument;
//  - is_utf8 agrees with a reference decoder (RFC 3629 table 3-7 of Unicode).
#include "proto/pop3/command.hpp"

#include "fuzz_check.hpp"

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace {

using namespace buzon::pop3;

bool clean_text(std::string_view s) {
  for (char c : s) {
    if (c == '\r' || c == '\n' || c == '\0') return false;
  }
  return true;
}

// Reference: well-formed UTF-8 by the Unicode table of well-formed byte sequences.
bool ref_utf8(std::string_view s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  std::size_t n = s.size(), i = 0;
  auto in = [&](std::size_t k, unsigned lo, unsigned hi) { return i + k < n && p[i + k] >= lo && p[i + k] <= hi; };
  while (i < n) {
    unsigned c = p[i];
    if (c <= 0x7F) { i += 1; continue; }
    if (c >= 0xC2 && c <= 0xDF) { if (!in(1, 0x80, 0xBF)) return false; i += 2; continue; }
    if (c == 0xE0) { if (!in(1, 0xA0, 0xBF) || !in(2, 0x80, 0xBF)) return false; i += 3; continue; }
    if ((c >= 0xE1 && c <= 0xEC) || c == 0xEE || c == 0xEF) {
      if (!in(1, 0x80, 0xBF) || !in(2, 0x80, 0xBF)) return false;
      i += 3;
      continue;
    }
    if (c == 0xED) { if (!in(1, 0x80, 0x9F) || !in(2, 0x80, 0xBF)) return false; i += 3; continue; }
    if (c == 0xF0) {
      if (!in(1, 0x90, 0xBF) || !in(2, 0x80, 0xBF) || !in(3, 0x80, 0xBF)) return false;
      i += 4;
      continue;
    }
    if (c >= 0xF1 && c <= 0xF3) {
      if (!in(1, 0x80, 0xBF) || !in(2, 0x80, 0xBF) || !in(3, 0x80, 0xBF)) return false;
      i += 4;
      continue;
    }
    if (c == 0xF4) {
      if (!in(1, 0x80, 0x8F) || !in(2, 0x80, 0xBF) || !in(3, 0x80, 0xBF)) return false;
      i += 4;
      continue;
    }
    return false;
  }
  return true;
}

// Reference message-number parser: nullopt = rejected.
std::optional<std::size_t> ref_msgnum(std::string_view arg, std::size_t count, const std::vector<bool>& deleted) {
  if (arg.empty()) return std::nullopt;
  unsigned __int128 v = 0;
  for (char c : arg) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<unsigned>(c - '0');
    if (v > (static_cast<unsigned __int128>(1) << 70)) return std::nullopt;  // far beyond count
  }
  if (v == 0 || v > count) return std::nullopt;
  auto idx = static_cast<std::size_t>(v - 1);
  if (idx < deleted.size() && deleted[idx]) return std::nullopt;
  return idx;
}

void check_msgnum(std::string_view arg, std::size_t count, const std::vector<bool>& deleted) {
  std::unique_ptr<bool[]> del(new bool[deleted.size() + 1]);
  for (std::size_t i = 0; i < deleted.size(); ++i) del[i] = deleted[i];
  auto r = parse_msgnum(arg, count, std::span<const bool>(del.get(), deleted.size()));
  auto ref = ref_msgnum(arg, count, deleted);
  FUZZ_CHECK(r.has_value() == ref.has_value(), "parse_msgnum accepts exactly what the reference accepts");
  if (r) {
    FUZZ_CHECK(*r == *ref, "parse_msgnum returns the 0-based index of the number");
    FUZZ_CHECK(*r < count, "an accepted message number is within the maildrop");
  } else {
    FUZZ_CHECK(!r.error().empty() && clean_text(r.error()), "parse_msgnum errors are one clean line");
  }
  auto lc = parse_line_count(arg);
  if (lc) {
    FUZZ_CHECK(!arg.empty() && arg.find_first_not_of("0123456789") == std::string_view::npos,
               "a line count is digits only");
  } else {
    FUZZ_CHECK(clean_text(lc.error()), "parse_line_count errors are one clean line");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  // The first two octets choose the maildrop size and the deleted marks for the
  // message-number checks; the rest is the line.
  if (size < 2) return 0;
  const std::size_t count = data[0] % 17;
  const std::uint8_t delmask = data[1];
  std::string_view line(reinterpret_cast<const char*>(data + 2), size - 2);

  FUZZ_CHECK(is_utf8(line) == ref_utf8(line), "is_utf8 matches the reference decoder");

  auto parsed = parse_command(line);
  if (!parsed) {
    const auto& e = parsed.error();
    FUZZ_CHECK(!e.message.empty() && clean_text(e.message), "parse errors are one clean line");
    FUZZ_CHECK(e.message.size() < 200, "parse errors are short");
    FUZZ_CHECK(e.code != ParseErrc::empty || line.empty(), "only an empty line is 'empty'");
  } else {
    const Command& c = *parsed;
    FUZZ_CHECK(c.keyword.size() >= 3 && c.keyword.size() <= 4, "keywords are 3-4 characters");
    for (char k : c.keyword) {
      FUZZ_CHECK((k >= 'A' && k <= 'Z') || (k >= '0' && k <= '9'), "keywords are upper-case letters/digits");
    }
    FUZZ_CHECK(c.rest.size() <= line.size(), "rest is part of the line");
    if (c.verb != Verb::unknown) {
      const auto& spec = verb_spec(c.verb);
      FUZZ_CHECK(spec.name == c.keyword, "a known verb's keyword is its table name");
      FUZZ_CHECK(c.args.size() >= spec.min_args && c.args.size() <= spec.max_args,
                 "argument count within the table's bounds");
      for (const auto& a : c.args) {
        for (char ch : a) {
          auto u = static_cast<unsigned char>(ch);
          FUZZ_CHECK(u >= 0x20 && u != 0x7F, "arguments hold no control characters");
        }
      }
      // Every state rule is total: allowed_in must not misbehave for any verb.
      (void)allowed_in(c.verb, State::authorization);
      (void)allowed_in(c.verb, State::transaction);
    } else {
      FUZZ_CHECK(!allowed_in(c.verb, State::authorization) && !allowed_in(c.verb, State::transaction),
                 "an unknown verb is allowed nowhere");
    }
    std::vector<bool> deleted;
    for (std::size_t i = 0; i < count && i < 8; ++i) deleted.push_back(((delmask >> i) & 1) != 0);
    for (const auto& a : c.args) check_msgnum(a, count, deleted);
  }
  // The whole line as one argument too (digits, signs, spaces, huge numbers).
  std::vector<bool> none;
  check_msgnum(line, count, none);
  check_msgnum(line, static_cast<std::size_t>(-1), none);
  return 0;
}
