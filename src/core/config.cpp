#include "core/config.hpp"

#include "core/ip_network.hpp"

#include <fmt/format.h>

#include <toml++/toml.h>

#include <arpa/inet.h>

#include <algorithm>
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
      {"user", [&](const toml::node& n) { return r.str(n, c.server.user, "user"); }},
      {"group", [&](const toml::node& n) { return r.str(n, c.server.group, "group"); }},
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
      {"format",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.log.format, "format")) return e;
         if (c.log.format == "text" || c.log.format == "json") return std::nullopt;
         return r.error_at(n, fmt::format("unknown log format '{}'", c.log.format), "use \"text\" or \"json\"");
       }},
  };
  // One listen address (a string) or a list of them, checked the same way everywhere.
  auto listen_list = [&](const toml::node& n, std::vector<ListenAddress>& out, std::string_view key,
                         std::string_view example) -> std::optional<ConfigError> {
    if (!n.is_array())
      return r.error_at(n, fmt::format("'{}' must be an array", key), fmt::format("write {} = [\"{}\"]", key, example));
    out.clear();
    for (auto& el : *n.as_array()) {
      std::string s;
      if (auto e = r.str(el, s, key)) return e;
      auto a = parse_listen_address(s);
      if (!a) return r.error_at(el, fmt::format("bad listen address '{}': {}", s, a.error()),
                                fmt::format("write \"{}\" or \"[::1]:{}\"", example, example.substr(example.rfind(':') + 1)));
      out.push_back(*a);
    }
    return std::nullopt;
  };
  Keys metrics{
      {"enabled", [&](const toml::node& n) { return r.boolean(n, c.metrics.enabled, "enabled"); }},
      {"listen",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         std::string s;
         if (auto e = r.str(n, s, "listen")) return e;
         auto a = parse_listen_address(s);
         if (!a) return r.error_at(n, fmt::format("bad listen address '{}': {}", s, a.error()),
                                   "write \"127.0.0.1:9110\" (or set enabled = false)");
         c.metrics.listen = *a;
         return std::nullopt;
       }},
  };
  Keys proxy{
      {"listeners", [&](const toml::node& n) { return listen_list(n, c.proxy.listeners, "listeners", "127.0.0.1:1110"); }},
      {"trusted",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (!n.is_array()) return r.error_at(n, "'trusted' must be an array", "write trusted = [\"127.0.0.1\", \"10.0.0.0/8\"]");
         c.proxy.trusted.clear();
         for (auto& el : *n.as_array()) {
           std::string s;
           if (auto e = r.str(el, s, "trusted")) return e;
           if (auto net = parse_ip_network(s); !net)
             return r.error_at(el, fmt::format("bad network '{}' in 'trusted': {}", s, net.error()),
                               "write an address or a network such as \"10.0.0.0/8\" or \"::1\"");
           c.proxy.trusted.push_back(s);
         }
         return std::nullopt;
       }},
      {"timeout", [&](const toml::node& n) { return r.uint(n, c.proxy.timeout, "timeout", 1, 300); }},
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
         static const char* ok[] = {"SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "ARGON2ID", "ARGON2I", "PLAIN", "CRYPT",
                                    "SCRAM-SHA-256", "CRAM-MD5"};
         for (auto s : ok)
           if (c.users.default_scheme == s) return std::nullopt;
         return r.error_at(n, fmt::format("unknown password scheme '{}'", c.users.default_scheme),
                           "use SHA512-CRYPT, SHA256-CRYPT, BLF-CRYPT, ARGON2ID, ARGON2I, SCRAM-SHA-256, CRAM-MD5 or "
                           "PLAIN");
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
      {"listen_tls",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         c.pop3.listen_tls_line = static_cast<int>(n.source().begin.line);
         return listen_list(n, c.pop3.listen_tls, "listen_tls", "127.0.0.1:1995");
       }},
      {"stls", [&](const toml::node& n) { return r.boolean(n, c.pop3.stls, "stls"); }},
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

  auto bounded = [&](unsigned& out, std::string_view key, std::int64_t lo, std::int64_t hi) {
    return [&out, &r, key, lo, hi](const toml::node& n) { return r.uint(n, out, key, lo, hi); };
  };
  Keys smtp{
      {"listen", [&](const toml::node& n) { return listen_list(n, c.smtp.listen, "listen", "127.0.0.1:25"); }},
      {"hostname", [&](const toml::node& n) { return r.str(n, c.smtp.hostname, "hostname"); }},
      {"local_domains",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (!n.is_array())
           return r.error_at(n, "'local_domains' must be an array", "write local_domains = [\"example.org\"]");
         c.smtp.local_domains.clear();
         for (auto& el : *n.as_array()) {
           std::string d;
           if (auto e = r.str(el, d, "local_domains")) return e;
           for (char& ch : d) {
             if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
             const auto u = static_cast<unsigned char>(ch);
             if (!(std::isalnum(u) || ch == '.' || ch == '-' || u >= 0x80))
               return r.error_at(el, fmt::format("'{}' in 'local_domains' is not a domain name", d),
                                 "use letters, digits, '.' and '-' only, e.g. \"example.org\"");
           }
           if (d.empty() || d.front() == '.' || d.back() == '.' || d.find("..") != std::string::npos)
             return r.error_at(el, fmt::format("'{}' in 'local_domains' is not a domain name", d),
                               "write the domain without leading or trailing dots");
           c.smtp.local_domains.push_back(d);
         }
         return std::nullopt;
       }},
      {"max_message_size", bounded(c.smtp.max_message_size, "max_message_size", 1024, 1073741824)},
      {"max_recipients", bounded(c.smtp.max_recipients, "max_recipients", 1, 100000)},
      {"max_errors", bounded(c.smtp.max_errors, "max_errors", 1, 1000)},
      {"max_line_length", bounded(c.smtp.max_line_length, "max_line_length", 1000, 1048576)},
      {"command_timeout", bounded(c.smtp.command_timeout, "command_timeout", 1, 3600)},
      {"data_timeout", bounded(c.smtp.data_timeout, "data_timeout", 1, 3600)},
      {"max_session_time", bounded(c.smtp.max_session_time, "max_session_time", 1, 604800)},
      {"greet_pause", bounded(c.smtp.greet_pause, "greet_pause", 0, 60)},
      {"vrfy", [&](const toml::node& n) { return r.boolean(n, c.smtp.vrfy, "vrfy"); }},
      {"starttls", [&](const toml::node& n) { return r.boolean(n, c.smtp.starttls, "starttls"); }},
      {"recipient_delimiter",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.smtp.recipient_delimiter, "recipient_delimiter")) return e;
         for (char ch : c.smtp.recipient_delimiter)
           if (ch == '@' || static_cast<unsigned char>(ch) <= 0x20 || static_cast<unsigned char>(ch) >= 0x7f || ch == '"')
             return r.error_at(n, "'recipient_delimiter' must be printable ASCII other than '@'", "write \"+\" (or \"\" to turn it off)");
         return std::nullopt;
       }},
      {"max_hops", bounded(c.smtp.max_hops, "max_hops", 1, 1000)},
  };
  Keys lmtp{
      {"listen", [&](const toml::node& n) { return listen_list(n, c.lmtp.listen, "listen", "127.0.0.1:24"); }},
      {"socket",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         std::string s;
         if (auto e = r.str(n, s, "socket")) return e;
         c.lmtp.socket = s;
         return std::nullopt;
       }},
      {"socket_mode",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         std::string s;
         if (auto e = r.str(n, s, "socket_mode")) return e;
         unsigned mode = 0;
         auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), mode, 8);
         if (s.empty() || ec != std::errc() || ptr != s.data() + s.size() || mode > 0777)
           return r.error_at(n, fmt::format("'socket_mode' = \"{}\" is not an octal mode", s), "write e.g. \"0660\"");
         c.lmtp.socket_mode = mode;
         return std::nullopt;
       }},
  };

  // [queue] (issue 8): the spool directory and the retry schedule.
  Keys queue{
      {"dir",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         std::string s;
         if (auto e = r.str(n, s, "dir")) return e;
         if (s.empty()) return r.error_at(n, "'dir' is empty", "give the spool directory, e.g. dir = \"queue\"");
         c.queue.dir = s;
         return std::nullopt;
       }},
      {"retry_first", [&](const toml::node& n) { return r.uint(n, c.queue.retry_first, "retry_first", 1, 86400); }},
      {"retry_max_interval",
       [&](const toml::node& n) { return r.uint(n, c.queue.retry_max_interval, "retry_max_interval", 1, 604800); }},
      {"max_age", [&](const toml::node& n) { return r.uint(n, c.queue.max_age, "max_age", 60, 5184000); }},
      {"delay_warning", [&](const toml::node& n) { return r.uint(n, c.queue.delay_warning, "delay_warning", 0, 5184000); }},
      {"scan_interval", [&](const toml::node& n) { return r.uint(n, c.queue.scan_interval, "scan_interval", 1, 3600); }},
  };

  // [tls] (issue 3). Paths stay as written; Config::resolve() makes them absolute when used.
  auto pem_path = [&](std::filesystem::path& out, int& line, std::string_view key) -> Handler {
    return [&out, &line, &r, key](const toml::node& n) -> std::optional<ConfigError> {
      std::string s;
      if (auto e = r.str(n, s, key)) return e;
      if (s.empty()) return r.error_at(n, fmt::format("'{}' is empty", key), "give the path of a PEM file, or remove the key");
      out = s;
      if (line == 0 || key == "cert") line = static_cast<int>(n.source().begin.line);
      return std::nullopt;
    };
  };
  Keys tls{
      {"cert", pem_path(c.tls.main.cert, c.tls.main.line, "cert")},
      {"key", pem_path(c.tls.main.key, c.tls.main.line, "key")},
      {"chain", pem_path(c.tls.main.chain, c.tls.main.line, "chain")},
      {"min_version",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.tls.min_version, "min_version")) return e;
         if (c.tls.min_version == "TLSv1.2" || c.tls.min_version == "TLSv1.3") return std::nullopt;
         return r.error_at(n, fmt::format("unsupported min_version '{}'", c.tls.min_version),
                           "write \"TLSv1.2\" or \"TLSv1.3\" (older versions are not offered)");
       }},
      {"ciphers", [&](const toml::node& n) { return r.str(n, c.tls.ciphers, "ciphers"); }},
      {"ciphersuites", [&](const toml::node& n) { return r.str(n, c.tls.ciphersuites, "ciphersuites"); }},
      {"handshake_timeout",
       [&](const toml::node& n) { return r.uint(n, c.tls.handshake_timeout, "handshake_timeout", 1, 600); }},
      {"sni",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (!n.is_array_of_tables())
           return r.error_at(n, "'sni' must be a list of tables", "write [[tls.sni]] sections with names, cert and key");
         for (auto& el : *n.as_array()) {
           TlsCertConfig t;
           t.line = static_cast<int>(el.source().begin.line);
           int ignored = 0;
           Keys entry{
               {"cert", pem_path(t.cert, ignored, "cert")},
               {"key", pem_path(t.key, ignored, "key")},
               {"chain", pem_path(t.chain, ignored, "chain")},
               {"names",
                [&](const toml::node& v) -> std::optional<ConfigError> {
                  if (!v.is_array()) return r.error_at(v, "'names' must be an array", "write names = [\"mail.example.org\"]");
                  for (auto& name : *v.as_array()) {
                    std::string h;
                    if (auto e = r.str(name, h, "names")) return e;
                    for (char& ch : h)
                      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
                    const auto host = h.starts_with("*.") ? std::string_view(h).substr(2) : std::string_view(h);
                    bool ok = !host.empty() && host.front() != '.' && host.back() != '.';
                    for (char ch : host) ok = ok && (std::isalnum(static_cast<unsigned char>(ch)) || ch == '.' || ch == '-');
                    if (!ok)
                      return r.error_at(name, fmt::format("'{}' in 'names' is not a host name", h),
                                        "write a host name such as \"mail.example.org\" or \"*.example.org\"");
                    t.names.push_back(h);
                  }
                  return std::nullopt;
                }},
           };
           if (auto e = r.table(*el.as_table(), "tls.sni", entry)) return e;
           if (t.names.empty() || t.cert.empty() || t.key.empty())
             return ConfigError{file.string(), t.line, "a [[tls.sni]] entry needs names, cert and key",
                                "add names = [\"host\"], cert = \"...pem\" and key = \"...pem\""};
           c.tls.sni.push_back(std::move(t));
         }
         return std::nullopt;
       }},
  };
  // [auth] (issue 3).
  Keys auth{
      {"mechanisms",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         static const char* known[] = {"PLAIN", "LOGIN", "CRAM-MD5", "SCRAM-SHA-256", "SCRAM-SHA-256-PLUS"};
         if (!n.is_array()) return r.error_at(n, "'mechanisms' must be an array", "write mechanisms = [\"PLAIN\", \"LOGIN\"]");
         c.auth.mechanisms.clear();
         for (auto& el : *n.as_array()) {
           std::string m;
           if (auto e = r.str(el, m, "mechanisms")) return e;
           for (char& ch : m)
             if (ch >= 'a' && ch <= 'z') ch = static_cast<char>(ch - 'a' + 'A');
           if (std::find(std::begin(known), std::end(known), m) == std::end(known))
             return r.error_at(el, fmt::format("unknown SASL mechanism '{}'", m),
                               "use PLAIN, LOGIN, CRAM-MD5, SCRAM-SHA-256 or SCRAM-SHA-256-PLUS");
           if (std::find(c.auth.mechanisms.begin(), c.auth.mechanisms.end(), m) != c.auth.mechanisms.end())
             return r.error_at(el, fmt::format("'{}' is listed twice in 'mechanisms'", m), "list each mechanism once");
           c.auth.mechanisms.push_back(m);
         }
         return std::nullopt;
       }},
      {"plaintext_requires_tls",
       [&](const toml::node& n) { return r.boolean(n, c.auth.plaintext_requires_tls, "plaintext_requires_tls"); }},
      {"trusted_networks",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (!n.is_array())
           return r.error_at(n, "'trusted_networks' must be an array", "write trusted_networks = [\"127.0.0.0/8\", \"::1/128\"]");
         c.auth.trusted_networks.clear();
         for (auto& el : *n.as_array()) {
           std::string s;
           if (auto e = r.str(el, s, "trusted_networks")) return e;
           if (auto net = parse_ip_network(s); !net)
             return r.error_at(el, fmt::format("bad network '{}' in 'trusted_networks': {}", s, net.error()),
                               "write an address or a network such as \"10.0.0.0/8\" or \"::1/128\"");
           c.auth.trusted_networks.push_back(s);
         }
         return std::nullopt;
       }},
      {"failure_delay_ms",
       [&](const toml::node& n) { return r.uint(n, c.auth.failure_delay_ms, "failure_delay_ms", 0, 60000); }},
      {"failure_delay_max_ms",
       [&](const toml::node& n) { return r.uint(n, c.auth.failure_delay_max_ms, "failure_delay_max_ms", 0, 600000); }},
      {"hash_threads", [&](const toml::node& n) { return r.uint(n, c.auth.hash_threads, "hash_threads", 1, 256); }},
  };
  // [relay] and [dns] (issue 8, docs/RELAY.md).
  // "host:port" or "[v6]:port" where host may be a name; the port may be left out (25).
  auto host_port = [&](const toml::node& n, std::string& host, std::uint16_t& port,
                       std::string_view key) -> std::optional<ConfigError> {
    std::string s;
    if (auto e = r.str(n, s, key)) return e;
    std::string_view t = s, p;
    if (!t.empty() && t.front() == '[') {
      auto close = t.find(']');
      if (close == std::string_view::npos) return r.error_at(n, fmt::format("bad '{}' \"{}\"", key, s), "write \"[::1]:25\"");
      host = std::string(t.substr(1, close - 1));
      if (close + 1 < t.size()) {
        if (t[close + 1] != ':') return r.error_at(n, fmt::format("bad '{}' \"{}\"", key, s), "write \"[::1]:25\"");
        p = t.substr(close + 2);
      }
    } else if (auto colon = t.rfind(':'); colon != std::string_view::npos) {
      host = std::string(t.substr(0, colon));
      p = t.substr(colon + 1);
    } else {
      host = s;
    }
    port = 25;
    if (!p.empty()) {
      unsigned v = 0;
      auto [ptr, ec] = std::from_chars(p.data(), p.data() + p.size(), v);
      if (ec != std::errc() || ptr != p.data() + p.size() || v == 0 || v > 65535)
        return r.error_at(n, fmt::format("bad port in '{}' \"{}\"", key, s), "write \"host:port\" with a port from 1 to 65535");
      port = static_cast<std::uint16_t>(v);
    }
    if (host.empty() || host.find_first_of(" \t/@") != std::string::npos)
      return r.error_at(n, fmt::format("bad host in '{}' \"{}\"", key, s), "write \"mail.example.org:587\"");
    return std::nullopt;
  };
  Keys relay{
      {"helo_name", [&](const toml::node& n) { return r.str(n, c.relay.helo_name, "helo_name"); }},
      {"port",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         unsigned v = 0;
         if (auto e = r.uint(n, v, "port", 1, 65535)) return e;
         c.relay.port = static_cast<std::uint16_t>(v);
         return std::nullopt;
       }},
      {"tls",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.relay.tls, "tls")) return e;
         if (c.relay.tls == "none" || c.relay.tls == "may" || c.relay.tls == "verify") return std::nullopt;
         return r.error_at(n, fmt::format("unknown relay tls policy '{}'", c.relay.tls), "use \"none\", \"may\" or \"verify\"");
       }},
      {"smarthost",
       [&](const toml::node& n) { return host_port(n, c.relay.smarthost, c.relay.smarthost_port, "smarthost"); }},
      {"user", [&](const toml::node& n) { return r.str(n, c.relay.user, "user"); }},
      {"password_file",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         std::string s;
         if (auto e = r.str(n, s, "password_file")) return e;
         c.relay.password_file = s;
         return std::nullopt;
       }},
      {"max_connections",
       [&](const toml::node& n) { return r.uint(n, c.relay.max_connections, "max_connections", 1, 10000); }},
      {"max_per_domain", [&](const toml::node& n) { return r.uint(n, c.relay.max_per_domain, "max_per_domain", 1, 10000); }},
      {"connect_timeout",
       [&](const toml::node& n) { return r.uint(n, c.relay.connect_timeout, "connect_timeout", 1, 3600); }},
      {"command_timeout",
       [&](const toml::node& n) { return r.uint(n, c.relay.command_timeout, "command_timeout", 1, 3600); }},
      {"source_address",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.relay.source_address, "source_address")) return e;
         unsigned char buf[16];
         const auto& a = c.relay.source_address;
         if (a.empty() || inet_pton(AF_INET, a.c_str(), buf) == 1 || inet_pton(AF_INET6, a.c_str(), buf) == 1)
           return std::nullopt;
         return r.error_at(n, fmt::format("bad source_address '{}'", a), "write a numeric address such as \"192.0.2.25\"");
       }},
      {"transport",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (!n.is_array_of_tables())
           return r.error_at(n, "'transport' must be a list of tables",
                             "write [[relay.transport]] sections with domain and host");
         for (auto& el : *n.as_array()) {
           RelayTransport t;
           t.line = static_cast<int>(el.source().begin.line);
           Keys tk{
               {"domain",
                [&](const toml::node& d) -> std::optional<ConfigError> {
                  if (auto e = r.str(d, t.domain, "domain")) return e;
                  for (char& ch : t.domain)
                    if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
                  return std::nullopt;
                }},
               {"host", [&](const toml::node& h) { return host_port(h, t.host, t.port, "host"); }},
           };
           if (auto e = r.table(*el.as_table(), "relay.transport", tk)) return e;
           if (t.domain.empty() || t.host.empty())
             return r.error_at(el, "[[relay.transport]] needs domain and host", "write domain = \"x.test\" and host = \"h:25\"");
           c.relay.transports.push_back(std::move(t));
         }
         return std::nullopt;
       }},
  };
  Keys dns{
      {"servers",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (!n.is_array()) return r.error_at(n, "'servers' must be an array", "write servers = [\"127.0.0.1:53\"]");
         c.dns.servers.clear();
         for (auto& el : *n.as_array()) {
           std::string s;
           if (auto e = r.str(el, s, "servers")) return e;
           unsigned char buf[16];
           const bool bare = inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
           if (!bare && !parse_listen_address(s))
             return r.error_at(el, fmt::format("bad DNS server '{}'", s), "write \"127.0.0.1\", \"127.0.0.1:5353\" or \"[::1]:53\"");
           c.dns.servers.push_back(s);
         }
         return std::nullopt;
       }},
      {"timeout", [&](const toml::node& n) { return r.uint(n, c.dns.timeout, "timeout", 1, 300); }},
      {"tries", [&](const toml::node& n) { return r.uint(n, c.dns.tries, "tries", 1, 10); }},
  };
  // [submission] and [[dkim.key]] (issue 8).
  auto lower_ascii = [](std::string& v) {
    for (char& ch : v)
      if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
  };
  Keys submission{
      {"listen", [&](const toml::node& n) { return listen_list(n, c.submission.listen, "listen", "127.0.0.1:587"); }},
      {"listen_tls",
       [&](const toml::node& n) {
         c.submission.listen_tls_line = static_cast<int>(n.source().begin.line);
         return listen_list(n, c.submission.listen_tls, "listen_tls", "127.0.0.1:465");
       }},
      {"require_tls", [&](const toml::node& n) { return r.boolean(n, c.submission.require_tls, "require_tls"); }},
      {"hide_client", [&](const toml::node& n) { return r.boolean(n, c.submission.hide_client, "hide_client"); }},
      {"sender_aliases",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         const char* fix = "write sender_aliases = { \"sales@example.org\" = [\"ana\", \"bob\"], \"@example.net\" = [\"ana\"] }";
         if (!n.is_table()) return r.error_at(n, "'sender_aliases' must be a table of address = [users]", fix);
         c.submission.sender_aliases.clear();
         for (auto&& [k, v] : *n.as_table()) {
           std::string address(k.str());
           lower_ascii(address);
           const auto at = address.rfind('@');
           if (at == std::string::npos || at + 1 == address.size() || address.find_first_of(" \t<>,") != std::string::npos)
             return r.error_at(v, fmt::format("'{}' in 'sender_aliases' is not an address or \"@domain\"", k.str()), fix);
           if (!v.is_array()) return r.error_at(v, fmt::format("sender_aliases '{}' must be a list of user names", k.str()), fix);
           auto& users = c.submission.sender_aliases[address];
           for (auto& el : *v.as_array()) {
             std::string u;
             if (auto e = r.str(el, u, "sender_aliases")) return e;
             if (u.empty()) return r.error_at(el, "empty user name in 'sender_aliases'", fix);
             users.push_back(u);
           }
         }
         return std::nullopt;
       }},
  };
  Keys dkim{
      {"key",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         const char* fix = "write [[dkim.key]] sections with domain, selector and key (a PEM file)";
         if (!n.is_array_of_tables()) return r.error_at(n, "'key' must be a list of tables", fix);
         for (auto& el : *n.as_array()) {
           DkimKeyConfig k;
           k.line = static_cast<int>(el.source().begin.line);
           std::string path;
           Keys kk{
               {"domain",
                [&](const toml::node& d) -> std::optional<ConfigError> {
                  if (auto e = r.str(d, k.domain, "domain")) return e;
                  lower_ascii(k.domain);
                  return std::nullopt;
                }},
               {"selector", [&](const toml::node& d) { return r.str(d, k.selector, "selector"); }},
               {"key", [&](const toml::node& d) { return r.str(d, path, "key"); }},
           };
           if (auto e = r.table(*el.as_table(), "dkim.key", kk)) return e;
           k.key = path;
           if (k.domain.empty() || k.selector.empty() || path.empty())
             return r.error_at(el, "a [[dkim.key]] entry needs domain, selector and key", fix);
           c.dkim_keys.push_back(std::move(k));
         }
         return std::nullopt;
       }},
  };
  // [aliases] (issue 10): the aliases file, the postmaster address, domain aliases.
  Keys aliases{
      {"file",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         std::string s;
         if (auto e = r.str(n, s, "file")) return e;
         c.aliases.file = s;
         return std::nullopt;
       }},
      {"postmaster",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         if (auto e = r.str(n, c.aliases.postmaster, "postmaster")) return e;
         const auto at = c.aliases.postmaster.find('@');
         if (!c.aliases.postmaster.empty() && (at == 0 || at == std::string::npos || at + 1 == c.aliases.postmaster.size() ||
                                              c.aliases.postmaster.find_first_of(" <>,", 0) != std::string::npos))
           return r.error_at(n, fmt::format("'postmaster' = \"{}\" is not an address", c.aliases.postmaster),
                             "write postmaster = \"admin@example.org\"");
         return std::nullopt;
       }},
      {"domains",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         const char* fix = "write domains = { \"example.net\" = \"example.com\" } (both in [smtp] local_domains)";
         if (!n.is_table()) return r.error_at(n, "'domains' must be a table of alias domain = real domain", fix);
         c.aliases.domains.clear();
         for (auto&& [k, v] : *n.as_table()) {
           std::string to;
           if (auto e = r.str(v, to, "domains")) return e;
           std::string from(k.str());
           for (char& ch : from)
             if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
           for (char& ch : to)
             if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
           if (from.empty() || to.empty() || from == to)
             return r.error_at(v, fmt::format("domain alias '{}' -> '{}' is not two different domains", from, to), fix);
           c.aliases.domains[from] = to;
         }
         return std::nullopt;
       }},
  };
  // [quota] (issue 10): limits for mailboxes without a maildirsize.
  Keys quota{
      {"default_bytes",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         const char* fix = "write the limit in octets, e.g. 1073741824 (1 GiB); 0 = none";
         if (!n.is_integer()) return r.error_at(n, "'default_bytes' must be an integer", fix);
         const auto v = *n.value<std::int64_t>();
         if (v < 0 || v > (std::int64_t{1} << 50)) return r.error_at(n, fmt::format("'default_bytes' = {} is out of range", v), fix);
         c.quota.default_bytes = static_cast<std::uint64_t>(v);
         return std::nullopt;
       }},
      {"default_messages", [&](const toml::node& n) { return r.uint(n, c.quota.default_messages, "default_messages", 0, 100000000); }},
      {"over_quota",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         std::string v;
         if (auto e = r.str(n, v, "over_quota")) return e;
         if (v != "temporary" && v != "permanent")
           return r.error_at(n, fmt::format("unknown over_quota '{}'", v),
                             "write \"temporary\" (452 4.2.2, the default) or \"permanent\" (552 5.2.2)");
         c.quota.over_quota_permanent = v == "permanent";
         return std::nullopt;
       }},
      {"domains",
       [&](const toml::node& n) -> std::optional<ConfigError> {
         const char* fix = "write domains = { \"example.org\" = { bytes = 1073741824, messages = 10000 } }";
         if (!n.is_table()) return r.error_at(n, "'domains' must be a table of domain = { bytes, messages }", fix);
         c.quota.domains.clear();
         for (auto&& [k, v] : *n.as_table()) {
           if (!v.is_table()) return r.error_at(v, fmt::format("quota for '{}' must be a table", k.str()), fix);
           std::string d(k.str());
           for (char& ch : d)
             if (ch >= 'A' && ch <= 'Z') ch = static_cast<char>(ch - 'A' + 'a');
           auto& l = c.quota.domains[d];
           Keys kk{
               {"bytes",
                [&](const toml::node& b) -> std::optional<ConfigError> {
                  if (!b.is_integer() || *b.value<std::int64_t>() < 0 || *b.value<std::int64_t>() > (std::int64_t{1} << 50))
                    return r.error_at(b, "'bytes' must be a number of octets", fix);
                  l.bytes = static_cast<std::uint64_t>(*b.value<std::int64_t>());
                  return std::nullopt;
                }},
               {"messages", [&](const toml::node& m) { return r.uint(m, l.messages, "messages", 0, 100000000); }},
           };
           if (auto e = r.table(*v.as_table(), "quota.domains", kk)) return e;
         }
         return std::nullopt;
       }},
  };
  int auth_line = 0;

  Keys top{
      {"server", [&](const toml::node& n) { return section(n, "server", server); }},
      {"tls", [&](const toml::node& n) { return section(n, "tls", tls); }},
      {"auth",
       [&](const toml::node& n) {
         auth_line = static_cast<int>(n.source().begin.line);
         return section(n, "auth", auth);
       }},
      {"log", [&](const toml::node& n) { return section(n, "log", log); }},
      {"users", [&](const toml::node& n) { return section(n, "users", users); }},
      {"mail", [&](const toml::node& n) { return section(n, "mail", mail); }},
      {"pop3", [&](const toml::node& n) { return section(n, "pop3", pop3); }},
      {"smtp", [&](const toml::node& n) { return section(n, "smtp", smtp); }},
      {"lmtp", [&](const toml::node& n) { return section(n, "lmtp", lmtp); }},
      {"queue",
       [&](const toml::node& n) {
         c.queue.line = static_cast<int>(n.source().begin.line);
         return section(n, "queue", queue);
       }},
      {"metrics", [&](const toml::node& n) { return section(n, "metrics", metrics); }},
      {"proxy", [&](const toml::node& n) { return section(n, "proxy", proxy); }},
      {"relay", [&](const toml::node& n) { return section(n, "relay", relay); }},
      {"dns", [&](const toml::node& n) { return section(n, "dns", dns); }},
      {"submission", [&](const toml::node& n) { return section(n, "submission", submission); }},
      {"dkim", [&](const toml::node& n) { return section(n, "dkim", dkim); }},
      {"quota", [&](const toml::node& n) { return section(n, "quota", quota); }},
      {"aliases",
       [&](const toml::node& n) {
         c.aliases.line = static_cast<int>(n.source().begin.line);
         return section(n, "aliases", aliases);
       }},
      // The client sections belong to `buzon fetch` and `buzon send`, which validate them strictly
      // (src/fetch/account.cpp, src/send/send_config.cpp); the server only checks their shape.
      {"fetch", [&](const toml::node& n) -> std::optional<ConfigError> {
         if (!n.is_table()) return r.error_at(n, "'fetch' must be a table", "write [fetch] or [[fetch.account]]");
         return std::nullopt;
       }},
      {"send", [&](const toml::node& n) -> std::optional<ConfigError> {
         if (!n.is_table()) return r.error_at(n, "'send' must be a table", "write [send]");
         return std::nullopt;
       }},
  };
  for (auto&& [k, v] : root) {
    auto it = top.find(k.str());
    if (it == top.end())
      return std::unexpected(ConfigError{file.string(), static_cast<int>(k.source().begin.line),
                                         fmt::format("unknown section [{}]", k.str()),
                                         "use [server], [log], [users], [mail], [pop3], [smtp], [lmtp], [tls], [auth], [metrics], [proxy], [relay], [dns], [queue], [submission], [dkim], [aliases], [quota], [fetch] or [send]"});
    if (auto e = it->second(v)) return std::unexpected(*e);
  }
  // [tls] and its users (issue 3).
  if (c.tls.main.cert.empty() != c.tls.main.key.empty())
    return std::unexpected(ConfigError{file.string(), c.tls.main.line, "[tls] needs both cert and key",
                                       "set cert = \"...pem\" and key = \"...pem\" (make run writes var/tls/cert.pem and key.pem)"});
  if (!c.tls.enabled() && (!c.tls.main.chain.empty() || !c.tls.sni.empty()))
    return std::unexpected(ConfigError{file.string(), c.tls.sni.empty() ? c.tls.main.line : c.tls.sni.front().line,
                                       "[tls] chain or [[tls.sni]] without a default certificate",
                                       "set cert and key in [tls]: they serve clients that send no matching name"});
  if (!c.pop3.listen_tls.empty() && !c.tls.enabled())
    return std::unexpected(ConfigError{file.string(), c.pop3.listen_tls_line, "[pop3] listen_tls needs a certificate",
                                       "set cert and key in [tls], or remove listen_tls"});
  if (!c.submission.listen_tls.empty() && !c.tls.enabled())
    return std::unexpected(ConfigError{file.string(), c.submission.listen_tls_line,
                                       "[submission] listen_tls needs a certificate",
                                       "set cert and key in [tls], or remove listen_tls"});
  if (c.queue.retry_max_interval < c.queue.retry_first)
    return std::unexpected(ConfigError{file.string(), c.queue.line, "[queue] retry_max_interval is below retry_first",
                                       "make retry_max_interval at least retry_first"});
  if (c.queue.delay_warning >= c.queue.max_age && c.queue.delay_warning != 0)
    return std::unexpected(ConfigError{file.string(), c.queue.line, "[queue] delay_warning is not below max_age",
                                       "make delay_warning smaller than max_age, or 0 for no delay notices"});
  if (c.auth.failure_delay_max_ms < c.auth.failure_delay_ms)
    return std::unexpected(ConfigError{file.string(), auth_line, "[auth] failure_delay_max_ms is below failure_delay_ms",
                                       "make failure_delay_max_ms at least failure_delay_ms"});
  for (const auto& [from, to] : c.aliases.domains) {
    const auto& ld = c.smtp.local_domains;
    for (const auto& d : {from, to})
      if (std::find(ld.begin(), ld.end(), d) == ld.end())
        return std::unexpected(ConfigError{file.string(), c.aliases.line,
                                           fmt::format("[aliases] domains: '{}' is not a local domain", d),
                                           fmt::format("add \"{}\" to [smtp] local_domains", d)});
    if (c.aliases.domains.contains(to))
      return std::unexpected(ConfigError{file.string(), c.aliases.line,
                                         fmt::format("[aliases] domains: '{}' is itself an alias domain", to),
                                         "point every alias domain at a real domain"});
  }
  if (!c.proxy.listeners.empty() && c.proxy.trusted.empty())
    return std::unexpected(ConfigError{file.string(), 0, "[proxy] listeners is set but [proxy] trusted is empty",
                                       "list the addresses of your proxies in [proxy] trusted"});
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
