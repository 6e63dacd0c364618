// fetch/account.cpp — [fetch] config parsing and account checks (see account.hpp).
#include "fetch/account.hpp"

#include <fmt/format.h>
#include <toml++/toml.h>

#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

namespace buzon::fetch {

std::string_view to_string(TlsMode m) {
  switch (m) {
    case TlsMode::implicit: return "implicit";
    case TlsMode::stls: return "stls";
    case TlsMode::none: return "none";
  }
  return "?";
}

std::optional<TlsMode> parse_tls_mode(std::string_view s) {
  if (s == "implicit") return TlsMode::implicit;
  if (s == "stls" || s == "starttls") return TlsMode::stls;
  if (s == "none") return TlsMode::none;
  return std::nullopt;
}

std::string_view to_string(DestKind d) {
  switch (d) {
    case DestKind::maildir: return "maildir";
    case DestKind::mbox: return "mbox";
    case DestKind::mda: return "mda";
  }
  return "?";
}

std::string Account::label() const {
  if (!name.empty()) return name;
  return fmt::format("{}@{}:{}", user, host, effective_port());
}

std::string Account::state_id() const {
  std::string raw = name.empty() ? fmt::format("{}@{}:{}", user, host, effective_port()) : name;
  std::string out;
  for (unsigned char c : raw) {
    if (std::isalnum(c) || c == '@' || c == '.' || c == '-' || c == '_' || c == ':' || c == '+')
      out += static_cast<char>(c);
    else
      out += fmt::format("%{:02X}", c);
  }
  if (out.empty() || out[0] == '.') out = "_" + out;
  return out;
}

std::filesystem::path default_state_dir() {
  if (const char* x = std::getenv("XDG_STATE_HOME"); x && *x) return std::filesystem::path(x) / "buzon" / "fetch";
  if (const char* h = std::getenv("HOME"); h && *h) return std::filesystem::path(h) / ".local" / "state" / "buzon" / "fetch";
  return std::filesystem::absolute(".buzon-fetch");
}

std::expected<std::string, std::string> normalize_fingerprint(std::string_view fp) {
  std::string_view hex = fp;
  if (hex.size() > 7 && (hex.substr(0, 7) == "sha256:" || hex.substr(0, 7) == "SHA256:")) hex.remove_prefix(7);
  std::string digits;
  for (char c : hex) {
    if (c == ':') continue;
    if (!std::isxdigit(static_cast<unsigned char>(c)))
      return std::unexpected("fingerprint must be hex digits (with optional ':'), e.g. sha256:AB:CD:...");
    digits += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  if (digits.size() != 64)
    return std::unexpected(fmt::format("a SHA-256 fingerprint has 64 hex digits, this one has {} "
                                       "(get it with: openssl x509 -noout -fingerprint -sha256)",
                                       digits.size()));
  std::string out = "sha256:";
  for (std::size_t i = 0; i < digits.size(); i += 2) {
    if (i) out += ':';
    out += digits.substr(i, 2);
  }
  return out;
}

std::expected<void, std::string> validate(const Account& a) {
  if (a.host.empty()) return std::unexpected("no host (fix: host = \"pop.example.org\" / --host)");
  if (a.user.empty()) return std::unexpected("no user (fix: user = \"name\" / --user)");
  if (a.password_file.empty() && a.password_command.empty())
    return std::unexpected("no password source (fix: password_file or password_command / --password-file)");
  if (!a.password_file.empty() && !a.password_command.empty())
    return std::unexpected("both password_file and password_command are set (fix: keep one)");
  if (a.dest_path.empty())
    return std::unexpected("no destination (fix: maildir = \"DIR\", mbox = \"FILE\" or mda = \"COMMAND\" / "
                           "--maildir, --mbox, --mda)");
  if (a.host.find_first_of(" \r\n/") != std::string::npos) return std::unexpected("host contains a space or '/'");
  return {};
}

std::expected<std::string, std::string> read_secret(const std::filesystem::path& file, const std::string& command) {
  auto first_line = [](std::string s) {
    auto nl = s.find('\n');
    if (nl != std::string::npos) s.resize(nl);
    if (!s.empty() && s.back() == '\r') s.pop_back();
    return s;
  };
  if (!file.empty()) {
    std::ifstream in(file, std::ios::binary);
    if (!in) return std::unexpected(fmt::format("cannot read password file {}", file.string()));
    std::ostringstream ss;
    ss << in.rdbuf();
    auto pw = first_line(ss.str());
    if (pw.empty()) return std::unexpected(fmt::format("password file {} is empty", file.string()));
    return pw;
  }
  FILE* p = ::popen(command.c_str(), "r");
  if (!p) return std::unexpected(fmt::format("cannot run password_command \"{}\"", command));
  std::string out;
  char buf[4096];
  std::size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0 && out.size() < (1 << 20)) out.append(buf, n);
  int st = ::pclose(p);
  if (st == -1 || !WIFEXITED(st) || WEXITSTATUS(st) != 0)
    return std::unexpected(fmt::format("password_command \"{}\" failed (exit status {})", command,
                                       WIFEXITED(st) ? WEXITSTATUS(st) : -1));
  auto pw = first_line(out);
  if (pw.empty()) return std::unexpected(fmt::format("password_command \"{}\" printed nothing", command));
  return pw;
}

namespace {

struct Ctx {
  std::string file;
  std::filesystem::path dir;
  ConfigError at(const toml::node& n, std::string msg, std::string fix) const {
    return ConfigError{file, static_cast<int>(n.source().begin.line), std::move(msg), std::move(fix)};
  }
  std::expected<std::string, ConfigError> str(const toml::node& n, std::string_view key) const {
    if (!n.is_string()) return std::unexpected(at(n, fmt::format("'{}' must be a string", key), "quote the value"));
    return *n.value<std::string>();
  }
  std::expected<bool, ConfigError> boolean(const toml::node& n, std::string_view key) const {
    if (!n.is_boolean()) return std::unexpected(at(n, fmt::format("'{}' must be true or false", key), "write true or false"));
    return *n.value<bool>();
  }
  std::expected<std::int64_t, ConfigError> integer(const toml::node& n, std::string_view key, std::int64_t lo,
                                                   std::int64_t hi) const {
    if (!n.is_integer() || *n.value<std::int64_t>() < lo || *n.value<std::int64_t>() > hi)
      return std::unexpected(at(n, fmt::format("'{}' must be an integer from {} to {}", key, lo, hi),
                                fmt::format("use a number from {} to {}", lo, hi)));
    return *n.value<std::int64_t>();
  }
  std::filesystem::path path(const std::string& s) const {
    std::filesystem::path p(s);
    if (!s.empty() && s[0] == '~') {
      if (const char* h = std::getenv("HOME")) p = std::filesystem::path(h) / s.substr(s.size() > 1 && s[1] == '/' ? 2 : 1);
    }
    return p.is_absolute() ? p : dir / p;
  }
};

std::expected<Account, ConfigError> parse_account(const Ctx& c, const toml::table& t, const toml::node& where) {
  Account a;
  std::optional<ConfigError> failed;
  // Unwraps a value or remembers the first error (checked after each key).
  auto get = [&](auto r) {
    using V = typename decltype(r)::value_type;
    if (!r) {
      if (!failed) failed = r.error();
      return V{};
    }
    return *r;
  };
  a.origin = fmt::format("{}:{}", c.file, where.source().begin.line);
  int dests = 0;
  bool tls_set = false;
  for (auto&& [k, v] : t) {
    const std::string key(k.str());
    if (key == "name") a.name = get(c.str(v, key));
    else if (key == "host") a.host = get(c.str(v, key));
    else if (key == "port") a.port = static_cast<std::uint16_t>(get(c.integer(v, key, 1, 65535)));
    else if (key == "tls") {
      auto s = get(c.str(v, key));
      if (failed) return std::unexpected(*failed);
      auto m = parse_tls_mode(s);
      if (!m) return std::unexpected(c.at(v, fmt::format("unknown tls mode '{}'", s), "use \"implicit\", \"stls\" or \"none\""));
      a.tls = *m;
      tls_set = true;
    } else if (key == "user") a.user = get(c.str(v, key));
    else if (key == "password_file") a.password_file = c.path(get(c.str(v, key)));
    else if (key == "password_command") a.password_command = get(c.str(v, key));
    else if (key == "auth") {
      if (!v.is_array()) return std::unexpected(c.at(v, "'auth' must be an array", "write auth = [\"scram-sha-256\", \"plain\"]"));
      a.auth.clear();
      for (auto& el : *v.as_array()) {
        auto s = get(c.str(el, key));
        if (failed) return std::unexpected(*failed);
        auto m = pop3::parse_auth_method(s);
        if (!m)
          return std::unexpected(c.at(el, fmt::format("unknown auth method '{}'", s),
                                      "use scram-sha-256, plain, login, apop or user"));
        a.auth.push_back(*m);
      }
      if (a.auth.empty()) return std::unexpected(c.at(v, "'auth' is empty", "list at least one method"));
    } else if (key == "allow_plaintext") a.allow_plaintext = get(c.boolean(v, key));
    else if (key == "ca_file") a.ca_file = c.path(get(c.str(v, key)));
    else if (key == "fingerprint") {
      auto s = get(c.str(v, key));
      if (failed) return std::unexpected(*failed);
      auto fp = normalize_fingerprint(s);
      if (!fp) return std::unexpected(c.at(v, "bad fingerprint", fp.error()));
      a.fingerprint = *fp;
    } else if (key == "keep") a.keep = get(c.boolean(v, key));
    else if (key == "limit") a.limit = static_cast<std::uint64_t>(get(c.integer(v, key, 0, std::int64_t{1} << 50)));
    else if (key == "maildir" || key == "mbox" || key == "mda") {
      auto s = get(c.str(v, key));
      if (failed) return std::unexpected(*failed);
      if (s.empty()) return std::unexpected(c.at(v, fmt::format("'{}' is empty", key), "give a path or command"));
      a.dest = key == "maildir" ? DestKind::maildir : key == "mbox" ? DestKind::mbox : DestKind::mda;
      a.dest_path = key == "mda" ? s : c.path(s).string();
      ++dests;
    } else if (key == "pipelining") a.pipelining = get(c.boolean(v, key));
    else if (key == "timeout") a.timeout = std::chrono::seconds(get(c.integer(v, key, 1, 86400)));
    else
      return std::unexpected(ConfigError{c.file, static_cast<int>(k.source().begin.line),
                                         fmt::format("unknown key '{}' in [[fetch.account]]", key),
                                         "use name, host, port, tls, user, password_file, password_command, auth, "
                                         "allow_plaintext, ca_file, fingerprint, keep, limit, maildir, mbox, mda, "
                                         "pipelining or timeout"});
    if (failed) return std::unexpected(*failed);
  }
  (void)tls_set;
  if (dests > 1)
    return std::unexpected(c.at(where, "more than one destination in one account", "keep one of maildir, mbox, mda"));
  if (auto ok = validate(a); !ok) return std::unexpected(c.at(where, "[[fetch.account]] " + a.label(), ok.error()));
  return a;
}

}  // namespace

std::expected<FetchConfig, ConfigError> parse_fetch_config(std::string_view text, const std::filesystem::path& file) {
  Ctx c{file.string(), std::filesystem::absolute(file.has_parent_path() ? file.parent_path() : ".").lexically_normal()};
  toml::table root;
  try {
    root = toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    return std::unexpected(ConfigError{file.string(), static_cast<int>(e.source().begin.line),
                                       std::string(e.description()), "fix the TOML syntax"});
  }
  FetchConfig fc;
  auto* fetch = root.get("fetch");
  if (!fetch) return fc;
  if (!fetch->is_table()) return std::unexpected(c.at(*fetch, "'fetch' must be a table", "write [fetch]"));
  for (auto&& [k, v] : *fetch->as_table()) {
    if (k.str() == "state_dir") {
      auto s = c.str(v, "state_dir");
      if (!s) return std::unexpected(s.error());
      fc.state_dir = c.path(*s);
    } else if (k.str() == "account") {
      if (!v.is_array_of_tables())
        return std::unexpected(c.at(v, "'fetch.account' must be an array of tables", "write [[fetch.account]]"));
      for (auto& el : *v.as_array()) {
        auto a = parse_account(c, *el.as_table(), el);
        if (!a) return std::unexpected(a.error());
        fc.accounts.push_back(std::move(*a));
      }
    } else {
      return std::unexpected(ConfigError{c.file, static_cast<int>(k.source().begin.line),
                                         fmt::format("unknown key '{}' in [fetch]", k.str()),
                                         "use state_dir or [[fetch.account]]"});
    }
  }
  // Two accounts with one state id would share (and corrupt) one state file.
  for (std::size_t i = 0; i < fc.accounts.size(); ++i)
    for (std::size_t j = i + 1; j < fc.accounts.size(); ++j)
      if (fc.accounts[i].state_id() == fc.accounts[j].state_id())
        return std::unexpected(ConfigError{c.file, 0, fmt::format("two accounts are both called '{}'", fc.accounts[i].label()),
                                           "give each [[fetch.account]] its own name"});
  return fc;
}

std::expected<FetchConfig, ConfigError> load_fetch_config(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) return std::unexpected(ConfigError{file.string(), 0, "cannot read the config file", "check the path (--config)"});
  std::ostringstream ss;
  ss << in.rdbuf();
  return parse_fetch_config(ss.str(), file);
}

}  // namespace buzon::fetch
