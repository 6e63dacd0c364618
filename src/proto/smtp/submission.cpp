// proto/smtp/submission.cpp — submission rules (see submission.hpp).
//
// SECURITY  See submission.hpp.
// STANDARDS See submission.hpp.
// LIMITS    See submission.hpp.
#include "proto/smtp/submission.hpp"

#include "proto/smtp/received.hpp"

#include <fmt/format.h>

#include <openssl/rand.h>

#include <algorithm>
#include <array>

namespace buzon::smtp {

namespace {

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

bool iequal(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return (x >= 'A' && x <= 'Z' ? x - 'A' + 'a' : x) == (y >= 'A' && y <= 'Z' ? y - 'A' + 'a' : y);
         });
}

bool wsp(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; }

std::string_view trim(std::string_view s) {
  while (!s.empty() && wsp(s.front())) s.remove_prefix(1);
  while (!s.empty() && wsp(s.back())) s.remove_suffix(1);
  return s;
}

bool listed(const SenderAliases& aliases, std::string_view key, std::string_view user) {
  auto it = aliases.find(key);
  if (it == aliases.end()) return false;
  return std::any_of(it->second.begin(), it->second.end(), [&](const std::string& u) { return iequal(u, user); });
}

}  // namespace

std::string domain_of(std::string_view address) {
  const auto at = address.rfind('@');
  return at == std::string_view::npos ? std::string() : lower(address.substr(at + 1));
}

bool may_send_as(std::string_view user, std::string_view address, const std::vector<std::string>& local_domains,
                 const SenderAliases& aliases) {
  if (user.empty() || address.empty()) return false;
  const std::string a = lower(address);
  const std::string u = lower(user);
  if (u.find('@') != std::string::npos) {
    if (a == u) return true;
  } else {
    for (const auto& d : local_domains)
      if (a == u + "@" + lower(d)) return true;
  }
  if (listed(aliases, a, user)) return true;
  const auto at = a.rfind('@');
  return at != std::string::npos && at > 0 && listed(aliases, std::string_view(a).substr(at), user);
}

std::vector<std::string> parse_address_list(std::string_view value) {
  // Remove comments and split on top-level commas; ':' opens a group (its display name is
  // dropped), ';' closes it.
  std::vector<std::string> items;
  std::string cur;
  int depth = 0;
  bool quoted = false, angle = false;
  for (std::size_t i = 0; i < value.size(); ++i) {
    char c = value[i];
    if (quoted) {
      cur += c;
      if (c == '\\' && i + 1 < value.size()) cur += value[++i];
      else if (c == '"') quoted = false;
      continue;
    }
    if (depth > 0) {
      if (c == '\\') ++i;
      else if (c == '(') ++depth;
      else if (c == ')') --depth;
      continue;
    }
    switch (c) {
      case '(': ++depth; break;
      case '"': quoted = true; cur += c; break;
      case '<': angle = true; cur += c; break;
      case '>': angle = false; cur += c; break;
      case ':':
        if (angle) cur += c;
        else cur.clear();  // group display name
        break;
      case ',':
      case ';':
        if (angle) {
          cur += c;
        } else {
          items.push_back(cur);
          cur.clear();
        }
        break;
      default: cur += c;
    }
  }
  items.push_back(cur);
  std::vector<std::string> out;
  for (auto& it : items) {
    std::string_view s = trim(it);
    auto lt = s.rfind('<');
    if (lt != std::string_view::npos) {
      auto gt = s.find('>', lt);
      s = s.substr(lt + 1, gt == std::string_view::npos ? std::string_view::npos : gt - lt - 1);
      if (auto route = s.find(':'); route != std::string_view::npos && s.starts_with('@')) s = s.substr(route + 1);
      s = trim(s);
    }
    if (s.empty() || (s.find('@') == std::string_view::npos && s.find(' ') != std::string_view::npos)) continue;
    out.emplace_back(s);
  }
  return out;
}

HeaderScan scan_headers(std::string_view m) {
  HeaderScan s;
  std::size_t pos = 0;
  std::string name, value;
  auto field_done = [&] {
    if (name.empty()) return;
    if (iequal(name, "Date")) s.has_date = true;
    else if (iequal(name, "Message-ID")) s.has_message_id = true;
    else if (iequal(name, "From") || iequal(name, "Sender")) {
      const bool from = iequal(name, "From");
      ++(from ? s.from_fields : s.sender_fields);
      auto& list = from ? s.from : s.sender;
      for (auto& a : parse_address_list(value)) list.push_back(std::move(a));
    }
    name.clear();
    value.clear();
  };
  while (pos < m.size()) {
    const auto eol = m.find("\r\n", pos);
    const std::size_t next = eol == std::string_view::npos ? m.size() : eol + 2;
    const std::string_view line = m.substr(pos, (eol == std::string_view::npos ? m.size() : eol) - pos);
    if (line.empty()) break;  // the empty line: the body follows
    if (line.front() == ' ' || line.front() == '\t') {
      if (name.empty()) break;  // a continuation without a field: not a header section
      value += line;            // unfolding (RFC 5322 §2.2.3): CRLF removed
    } else {
      const auto colon = line.find(':');
      if (colon == std::string_view::npos) break;  // not a field: the header section ended
      field_done();
      name = std::string(trim(line.substr(0, colon)));
      value = std::string(line.substr(colon + 1));
    }
    pos = next;
    s.end = pos;
  }
  field_done();
  if (s.end > m.size()) s.end = m.size();
  return s;
}

std::string make_message_id(std::string_view hostname, std::int64_t unix_seconds) {
  std::array<unsigned char, 12> rnd{};
  RAND_bytes(rnd.data(), static_cast<int>(rnd.size()));
  std::string r;
  for (unsigned char c : rnd) r += fmt::format("{:02x}", c);
  return fmt::format("<{}.{}@{}>", r, unix_seconds, hostname);
}

std::string missing_fields(const HeaderScan& scan, std::string_view hostname, std::int64_t unix_seconds) {
  std::string out;
  if (!scan.has_date) out += "Date: " + format_date(unix_seconds) + "\r\n";
  if (!scan.has_message_id) out += "Message-ID: " + make_message_id(hostname, unix_seconds) + "\r\n";
  return out;
}

std::string format_received_hidden(std::string_view by, std::string_view protocol, std::string_view id,
                                   std::string_view tls, std::string_view for_rcpt, std::int64_t unix_seconds) {
  std::string out = fmt::format("Received: by {} (buzon) with {}", by, protocol);
  if (!id.empty()) out += fmt::format(" id {}", id);
  if (!tls.empty()) out += fmt::format("\r\n\t(using {})", tls);
  if (!for_rcpt.empty()) out += fmt::format("\r\n\tfor <{}>", for_rcpt);
  out += "; " + format_date(unix_seconds) + "\r\n";
  return out;
}

}  // namespace buzon::smtp
