// proto/pop3/reply.cpp — POP3 reply formatting (see reply.hpp).
//
// SECURITY: all free text passes through append_text(), which removes control characters and
//   bounds the line; nothing here can emit a CR or LF except the line terminators it adds.
// STANDARDS: RFC 1939 §3, §5, §7; RFC 2449 §3-§8; RFC 3206; RFC 5034 §4; RFC 6856 §2, §5.
// LIMITS: kMaxReplyLine octets per line, CRLF included.
#include "proto/pop3/reply.hpp"

#include "proto/pop3/limits.hpp"

namespace buzon::pop3 {

namespace {

constexpr std::string_view kCrlf = "\r\n";

// Appends `text` with every control character (CR, LF, NUL, TAB, DEL, ...) turned into a space,
// cut to at most `budget` octets at a UTF-8 character boundary.
void append_text(std::string& out, std::string_view text, std::size_t budget) {
  if (text.size() > budget) {
    std::size_t cut = budget;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text = text.substr(0, cut);
  }
  for (char c : text) {
    const auto u = static_cast<unsigned char>(c);
    out += (u < 0x20 || u == 0x7F) ? ' ' : c;
  }
}

// "<status>[ <text>]\r\n". Without a response code, text must not begin with '[' (RFC 2449 §6.4:
// with RESP-CODES announced, such text IS a response code), so a leading '[' becomes '('.
std::string status_line(std::string_view status, RespCode code, std::string_view text) {
  std::string out(status);
  const std::string_view name = resp_code_name(code);
  if (!name.empty()) {
    out += " [";
    out += name;
    out += ']';
  }
  if (!text.empty()) {
    out += ' ';
    const std::size_t used = out.size() + kCrlf.size();
    const std::size_t budget = used < kMaxReplyLine ? kMaxReplyLine - used : 0;
    const std::size_t start = out.size();
    append_text(out, text, budget);
    if (name.empty() && out.size() > start && out[start] == '[') out[start] = '(';
    if (out.size() == start) out.pop_back();  // nothing fit: no dangling space
  }
  out += kCrlf;
  return out;
}

// RFC 4422 §3.1: sasl-mech = 1*20mech-char, mech-char = UPPER-ALPHA / DIGIT / HYPHEN / UNDERSCORE.
std::optional<std::string> sasl_name(std::string_view name) {
  if (name.empty() || name.size() > kMaxSaslMechanismName) return std::nullopt;
  std::string out;
  for (char c : name) {
    if (c >= 'a' && c <= 'z') c = static_cast<char>(c - 32);
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return std::nullopt;
    out += c;
  }
  return out;
}

}  // namespace

std::string_view resp_code_name(RespCode code) {
  switch (code) {
    case RespCode::none: return "";
    case RespCode::in_use: return "IN-USE";
    case RespCode::login_delay: return "LOGIN-DELAY";
    case RespCode::sys_temp: return "SYS/TEMP";
    case RespCode::sys_perm: return "SYS/PERM";
    case RespCode::auth: return "AUTH";
    case RespCode::utf8: return "UTF8";
  }
  return "";
}

std::string ok(std::string_view text) { return status_line("+OK", RespCode::none, text); }

std::string err(std::string_view text) { return status_line("-ERR", RespCode::none, text); }

std::string err(RespCode code, std::string_view text) { return status_line("-ERR", code, text); }

std::string challenge(std::string_view base64) {
  // RFC 5034 §4: "+" SP base64 and nothing else; the text is cut at the first octet that cannot
  // belong to base64 text (a space or a control character), so it can never end the line early.
  std::string out = "+ ";
  for (char c : base64) {
    const auto u = static_cast<unsigned char>(c);
    if (u <= 0x20 || u == 0x7F) break;
    out += c;
  }
  out += kCrlf;
  return out;
}

void append_line(std::string& out, std::string_view line) {
  std::size_t budget = kMaxReplyLine - kCrlf.size();
  if (!line.empty() && line.front() == '.') {  // RFC 1939 §3 byte-stuffing
    out += '.';
    --budget;
  }
  append_text(out, line, budget);
  out += kCrlf;
}

void append_end(std::string& out) { out += kMultiLineEnd; }

std::string multiline(std::string_view first, std::span<const std::string> lines) {
  std::string out = ok(first);
  for (const auto& line : lines) append_line(out, line);
  append_end(out);
  return out;
}

std::string scan_listing(std::size_t number, std::uint64_t octets) {
  return std::to_string(number) + ' ' + std::to_string(octets);
}

std::string uid_listing(std::size_t number, std::string_view uid) {
  std::string out = std::to_string(number);
  out += ' ';
  out += uid;
  return out;
}

std::string drop_listing(std::size_t count, std::uint64_t octets) {
  return std::to_string(count) + ' ' + std::to_string(octets);
}

bool valid_uid(std::string_view uid) {
  if (uid.size() < kMinUidLength || uid.size() > kMaxUidLength) return false;
  for (char c : uid) {
    const auto u = static_cast<unsigned char>(c);
    if (u < 0x21 || u > 0x7E) return false;
  }
  return true;
}

std::string format_capa(const CapaOptions& o) {
  std::string out = ok("Capability list follows");
  append_line(out, "TOP");
  if (o.user) append_line(out, "USER");
  append_line(out, "UIDL");
  append_line(out, "RESP-CODES");
  if (o.pipelining) append_line(out, "PIPELINING");
  append_line(out, "AUTH-RESP-CODE");  // RFC 3206 §6

  // RFC 2449 §6.7: "EXPIRE NEVER" means the server never deletes; "USER" after a number says a
  // per-user value is available after login (meaningless after NEVER, so not added there).
  if (!o.expire_days || *o.expire_days < 0) {
    append_line(out, "EXPIRE NEVER");
  } else {
    std::string line = "EXPIRE " + std::to_string(*o.expire_days);
    if (o.expire_per_user) line += " USER";
    append_line(out, line);
  }
  if (o.login_delay > 0) append_line(out, "LOGIN-DELAY " + std::to_string(o.login_delay));

  std::string sasl = "SASL";
  bool any = false;
  for (const auto& mech : o.sasl) {
    const auto name = sasl_name(mech);
    if (!name || sasl.size() + 1 + name->size() + kCrlf.size() > kMaxReplyLine) continue;
    sasl += ' ';
    sasl += *name;
    any = true;
  }
  if (any) append_line(out, sasl);

  if (o.stls) append_line(out, "STLS");
  if (o.utf8) append_line(out, "UTF8 USER");
  if (o.lang) append_line(out, "LANG");  // RFC 6856 §3
  if (!o.implementation.empty()) append_line(out, "IMPLEMENTATION " + o.implementation);
  append_end(out);
  return out;
}

}  // namespace buzon::pop3
