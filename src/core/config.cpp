#include "core/config.hpp"

#include <fmt/format.h>

#include <toml++/toml.h>

#include <arpa/inet.h>

#include <charconv>
#include <fstream>
#include <functional>
#include <map>
#include <sstream>

namespace buzon {

std::string ConfigError::str() const {
  std::string s = file;
  if (line > 0) s += fmt::format(":{}", line);
  s += ": " + message;
  if (!fix.empty()) s += " (fix: " + fix + ")";
  return s;
}

std::string ListenAddress::str() const {
  if (host.find(':') != std::string::npos) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

std::expected<ListenAddress, std::string> parse_listen_address(std::string_view text) {
  std::string_view host, port;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':')
      return std::unexpected("expected \"[ipv6]:port\"");
    host = text.substr(1, close - 1);
    port = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::unexpected("expected \"address:port\"");
    host = text.substr(0, colon);
    port = text.substr(colon + 1);
  }
  unsigned p = 0;
  auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), p);
  if (ec != std::errc() || ptr != port.data() + port.size() || p == 0 || p > 65535)
    return std::unexpected("port must be a number from 1 to 65535");
  std::string h(host);
  unsigned char buf[16];
  if (inet_pton(AF_INET, h.c_str(), buf) != 1 && inet_pton(AF_INET6, h.c_str(), buf) != 1)
    return std::unexpected("address must be a numeric IPv4 or IPv6 address");
  return ListenAddress{h, static_cast<std::uint16_t>(p)};
}

std::filesystem::path Config::resolve(const std::filesystem::path& p) const {
  if (p.is_absolute()) return p;
  return dir / p;
}

namespace {

// Walks a TOML table against a schema of known keys, so that unknown keys and wrong types fail
// with the line they are on.
class Reader {
 public:
  Reader(const std::filesystem::path& file) : file_(file.string()) {}

  ConfigError error_at(const toml::node& n, std::string msg, std::string fix) const {
    return ConfigError{file_, static_cast<int>(n.source().begin.line), std::move(msg), std::move(fix)};
  }

  template <class Fn>
  std::optional<ConfigError> table(const toml::table& t, std::string_view section,
                                   const std::map<std::string, Fn, std::less<>>& keys) const {
    for (auto&& [k, v] : t) {
      auto it = keys.find(k.str());
      if (it == keys.end()) {
        std::string known;
        for (auto& [name, _] : keys) known += (known.empty() ? "" : ", ") + name;
        return ConfigError{file_, static_cast<int>(k.source().begin.line),
                           fmt::format("unknown key '{}' in [{}]", k.str(), section),
                           fmt::format("remove it or use one of: {}", known)};
      }
      if (auto e = it->second(v)) return e;
    }
    return std::nullopt;
  }

  std::optional<ConfigError> str(const toml::node& n, std::string& out, std::string_view key) const {
    auto v = n.value<std::string>();
    if (!n.is_string() || !v) return error_at(n, fmt::format("'{}' must be a string", key), "quote the value");
    out = *v;
    return std::nullopt;
  }
  std::optional<ConfigError> boolean(const toml::node& n, bool& out, std::string_view key) const {
    if (!n.is_boolean()) return error_at(n, fmt::format("'{}' must be true or false", key), "write true or false");
    out = *n.value<bool>();
    return std::nullopt;
  }
  std::optional<ConfigError> uint(const toml::node& n, unsigned& out, std::string_view key, std::int64_t lo,
                                  std::int64_t hi) const {
    if (!n.is_integer())
      return error_at(n, fmt::format("'{}' must be an integer", key), fmt::format("use a number from {} to {}", lo, hi));
    auto v = *n.value<std::int64_t>();
    if (v < lo || v > hi)
      return error_at(n, fmt::format("'{}' = {} is out of range", key, v), fmt::format("use a number from {} to {}", lo, hi));
    out = static_cast<unsigned>(v);
    return std::nullopt;
  }

 private:
  std::string file_;
};

using Handler = std::function<std::optional<ConfigError>(const toml::node&)>;
using Keys = std::map<std::string, Handler, std::less<>>;

}  // namespace

std::expected<Config, ConfigError> parse_config(std::string_view text, const std::filesystem::path& file) {
  Config c;
  c.file = file;
  c.dir = file.has_parent_path() ? file.parent_path() : std::filesystem::path(".");
  c.dir = std::filesystem::absolute(c.dir).lexically_normal();
  Reader r(file);

  toml::table root;
  try {
    root = toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    return std::unexpected(ConfigError{file.string(), static_cast<int>(e.source().begin.line),
                                       std::string(e.description()), "fix the TOML syntax"});
  }

  auto section = [&](const toml::node& n, std::string_view name, const Keys& keys) -> std::optional<ConfigError> {
    if (!n.is_table()) return r.error_at(n, fmt::format("'{}' must be a table", name), fmt::format("write [{}]", name));
    return r.table(*n.as_table(), name, keys);
  };

  Keys server{
      {"hostname", [&](const toml::node& n) { return r.str(n, c.server.hostname, "hostname"); }},
      {"io_threads", [&](const toml::node& n) { return r.uint(n, c.server.io_threads, "io_threads", 0, 256); }},
      {"worker_threads", [&](const toml::node& n) { return r.uint(n, c.server.worker_threads, "worker_threads", 1, 1024); }},
      {"max_connections", [&](const toml::node& n) { return r.uint(n, c.server.max_connections, "max_connections", 1, 1000000); }},
      {"max_connections_per_ip",
       [&](const toml::node& n) { return r.uint(n, c.server.max_connections_per_ip, "max_connections_per_ip", 1, 1000000); }},
      {"shutdown_grace", [&](const toml::node& n) { return r.uint(n, c.server.shutdown_grace, "shutdown_grace", 0, 3600); }},
  };
  Keys log{
      {"level",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.log.level, "level")) return e;
         static const char* levels[] = {"trace", "debug", "info", "warn", "error", "off"};
         for (auto l : levels)
           if (c.log.level == l) return std::nullopt;
         return r.error_at(n, fmt::format("unknown log level '{}'", c.log.level),
                           "use trace, debug, info, warn, error or off");
       }},
      {"file", [&](const toml::node& n) { return r.str(n, c.log.file, "file"); }},
  };
  Keys users{
      {"passwd_file",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         std::string s;
         if (auto e = r.str(n, s, "passwd_file")) return e;
         if (s.empty()) return r.error_at(n, "'passwd_file' is empty", "give the path of the passwd-file");
         c.users.passwd_file = s;
         return std::nullopt;
       }},
      {"default_domain",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.users.default_domain, "default_domain")) return e;
         for (char& ch : c.users.default_domain) {
           if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
           if (!(std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-'))
             return r.error_at(n, "'default_domain' is not a domain name", "use letters, digits, '.' and '-' only");
         }
         return std::nullopt;
       }},
      {"lowercase", [&](const toml::node& n) { return r.boolean(n, c.users.lowercase, "lowercase"); }},
      {"default_scheme",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.users.default_scheme, "default_scheme")) return e;
         static const char* ok[] = {"SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2ID", "ARGON2I", "PLAIN", "CRYPT"};
         for (auto s : ok)
           if (c.users.default_scheme == s) return std::nullopt;
         return r.error_at(n, fmt::format("unknown password scheme '{}'", c.users.default_scheme),
                           "use SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, ARGON2ID, ARGON2I or PLAIN");
       }},
  };
  Keys mail{
      {"location",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.mail.location, "location")) return e;
         if (c.mail.location.empty())
           return r.error_at(n, "'location' is empty", "use a template such as \"mail/%d/%n/Maildir\"");
         for (std::size_t i = 0; i < c.mail.location.size(); ++i) {
           if (c.mail.location[i] != '%') continue;
           char nx = i + 1 < c.mail.location.size() ? c.mail.location[i + 1] : '\0';
           if (nx != 'u' && nx != 'n' && nx != 'd' && nx != '%')
             return r.error_at(n, "unknown variable in 'location'", "use %u (user), %n (local part), %d (domain) or %%");
           ++i;
         }
         return std::nullopt;
       }},
      {"uidl_format",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.mail.uidl_format, "uidl_format")) return e;
         if (c.mail.uidl_format == "buzon" || c.mail.uidl_format == "dovecot" || c.mail.uidl_format == "x-uidl")
           return std::nullopt;
         return r.error_at(n, fmt::format("unknown uidl_format '{}'", c.mail.uidl_format),
                           "use \"buzon\", \"dovecot\" or \"x-uidl\"");
       }},
  };
  Keys pop3{
      {"listen",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (!n.is_array()) return r.error_at(n, "'listen' must be an array", "write listen = [\"127.0.0.1:1110\"]");
         c.pop3.listen.clear();
         for (auto& el : *n.as_array()) {
           std::string s;
           if (auto e = r.str(el, s, "listen")) return e;
           auto a = parse_listen_address(s);
           if (!a) return r.error_at(el, fmt::format("bad listen address '{}': {}", s, a.error()),
                                     "write \"127.0.0.1:1110\" or \"[::1]:1110\"");
           c.pop3.listen.push_back(*a);
         }
         return std::nullopt;
       }},
      {"apop", [&](const toml::node& n) { return r.boolean(n, c.pop3.apop, "apop"); }},
      {"autologout",
       [&](const toml::node& n) { return r.uint(n, c.pop3.autologout, "autologout", 1, 86400); }},
      {"max_session_time", [&](const toml::node& n) { return r.uint(n, c.pop3.max_session_time, "max_session_time", 1, 604800); }},
      {"max_bad_commands", [&](const toml::node& n) { return r.uint(n, c.pop3.max_bad_commands, "max_bad_commands", 1, 1000); }},
      {"login_delay", [&](const toml::node& n) { return r.uint(n, c.pop3.login_delay, "login_delay", 0, 86400); }},
      {"expire",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (n.is_string() && n.value<std::string>() == "never") {
           c.pop3.expire_days.reset();
           return std::nullopt;
         }
         unsigned d = 0;
         if (!n.is_integer())
           return r.error_at(n, "'expire' must be \"never\" or a number of days", "write expire = \"never\" or expire = 30");
         if (auto e = r.uint(n, d, "expire", 0, 36500)) return e;
         c.pop3.expire_days = d;
         return std::nullopt;
       }},
  };

  Keys top{
      {"server", [&](const toml::node& n) { return section(n, "server", server); }},
      {"log", [&](const toml::node& n) { return section(n, "log", log); }},
      {"users", [&](const toml::node& n) { return section(n, "users", users); }},
      {"mail", [&](const toml::node& n) { return section(n, "mail", mail); }},
      {"pop3", [&](const toml::node& n) { return section(n, "pop3", pop3); }},
  };
  for (auto&& [k, v] : root) {
    auto it = top.find(k.str());
    if (it == top.end())
      return std::unexpected(ConfigError{file.string(), static_cast<int>(k.source().begin.line),
                                         fmt::format("unknown section [{}]", k.str()),
                                         "use [server], [log], [users], [mail] or [pop3]"});
    if (auto e = it->second(v)) return std::unexpected(*e);
  }
  if (c.pop3.autologout < 600 && c.pop3.autologout != 0) {
    // Allowed (tests use short timers) but below RFC 1939 §3's recommended minimum; doctor warns.
  }
  return c;
}

std::expected<Config, ConfigError> load_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in)
    return std::unexpected(ConfigError{file.string(), 0, "cannot read the config file",
                                       "check the path, or create one (make run writes var/buzon.toml)"});
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_config(ss.str(), file);
}

}  // namespace buzon
