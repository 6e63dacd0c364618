// send/sender.cpp — `buzon send` (see sender.hpp).
#include "send/sender.hpp"

#include "fetch/account.hpp"
#include "fetch/connect.hpp"
#include "proto/sasl/mechanism.hpp"
#include "proto/smtp/client_session.hpp"
#include "send/message.hpp"

#include <asio/co_spawn.hpp>
#include <asio/io_context.hpp>

#include <fmt/format.h>
#include <toml++/toml.h>

#include <unistd.h>

#include <charconv>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <sstream>

namespace buzon::send {

namespace {

std::optional<TlsMode> parse_tls(std::string_view s) {
  if (s == "starttls" || s == "stls") return TlsMode::starttls;
  if (s == "implicit") return TlsMode::implicit;
  if (s == "none") return TlsMode::none;
  return std::nullopt;
}

std::vector<std::string> split_list(std::string_view s) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == ',' || c == ' ') {
      if (!cur.empty()) out.push_back(cur);
      cur.clear();
    } else {
      cur += static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

std::string hostname() {
  char buf[256] = {};
  if (::gethostname(buf, sizeof buf - 1) != 0 || !buf[0]) return "localhost";
  return buf;
}

}  // namespace

std::expected<SendConfig, ConfigError> parse_send_config(std::string_view text, const std::filesystem::path& file) {
  SendConfig sc;
  const std::string fname = file.string();
  const auto dir = std::filesystem::absolute(file.has_parent_path() ? file.parent_path() : ".").lexically_normal();
  toml::table root;
  try {
    root = toml::parse(text, fname);
  } catch (const toml::parse_error& e) {
    return std::unexpected(ConfigError{fname, static_cast<int>(e.source().begin.line), std::string(e.description()),
                                       "fix the TOML syntax"});
  }
  auto* send = root.get("send");
  if (!send) return sc;
  auto at = [&](const toml::node& n, std::string m, std::string fix) {
    return std::unexpected(ConfigError{fname, static_cast<int>(n.source().begin.line), std::move(m), std::move(fix)});
  };
  if (!send->is_table()) return at(*send, "'send' must be a table", "write [send]");
  auto path = [&](const std::string& s) {
    std::filesystem::path p(s);
    return p.is_absolute() ? p : dir / p;
  };
  for (auto&& [k, v] : *send->as_table()) {
    const std::string key(k.str());
    auto str = [&]() -> std::optional<std::string> {
      if (!v.is_string()) return std::nullopt;
      return *v.value<std::string>();
    };
    const bool is_str_key = key == "host" || key == "tls" || key == "user" || key == "password_file" ||
                            key == "password_command" || key == "from" || key == "helo" || key == "ca_file" ||
                            key == "fingerprint";
    if (is_str_key && !str()) return at(v, fmt::format("'{}' must be a string", key), "quote the value");
    if (key == "host") sc.host = *str();
    else if (key == "port") {
      if (!v.is_integer() || *v.value<std::int64_t>() < 1 || *v.value<std::int64_t>() > 65535)
        return at(v, "'port' must be an integer from 1 to 65535", "use e.g. 587");
      sc.port = static_cast<std::uint16_t>(*v.value<std::int64_t>());
    } else if (key == "tls") {
      auto m = parse_tls(*str());
      if (!m) return at(v, fmt::format("unknown tls mode '{}'", *str()), "use \"starttls\", \"implicit\" or \"none\"");
      sc.tls = *m;
    } else if (key == "user") sc.user = *str();
    else if (key == "password_file") sc.password_file = path(*str());
    else if (key == "password_command") sc.password_command = *str();
    else if (key == "from") sc.from = *str();
    else if (key == "helo") sc.helo = *str();
    else if (key == "ca_file") sc.ca_file = path(*str());
    else if (key == "fingerprint") {
      auto fp = fetch::normalize_fingerprint(*str());
      if (!fp) return at(v, "bad fingerprint", fp.error());
      sc.fingerprint = *fp;
    } else if (key == "allow_plaintext") {
      if (!v.is_boolean()) return at(v, "'allow_plaintext' must be true or false", "write true or false");
      sc.allow_plaintext = *v.value<bool>();
    } else if (key == "timeout") {
      if (!v.is_integer() || *v.value<std::int64_t>() < 1 || *v.value<std::int64_t>() > 3600)
        return at(v, "'timeout' must be an integer from 1 to 3600", "use e.g. 300");
      sc.timeout = std::chrono::seconds(*v.value<std::int64_t>());
    } else if (key == "auth") {
      if (!v.is_array()) return at(v, "'auth' must be an array", "write auth = [\"scram-sha-256\", \"plain\"]");
      sc.auth.clear();
      for (auto& el : *v.as_array()) {
        if (!el.is_string()) return at(el, "'auth' entries must be strings", "quote the names");
        auto l = split_list(*el.value<std::string>());
        sc.auth.insert(sc.auth.end(), l.begin(), l.end());
      }
    } else {
      return std::unexpected(ConfigError{fname, static_cast<int>(k.source().begin.line),
                                         fmt::format("unknown key '{}' in [send]", key),
                                         "use host, port, tls, user, password_file, password_command, auth, "
                                         "allow_plaintext, from, helo, ca_file, fingerprint or timeout"});
    }
  }
  if (!sc.password_file.empty() && !sc.password_command.empty())
    return std::unexpected(ConfigError{fname, 0, "[send] has both password_file and password_command", "keep one"});
  return sc;
}

std::expected<SendArgs, std::string> parse_send_args(const std::vector<std::string>& args) {
  SendArgs a;
  auto num = [](const std::string& s, unsigned lo, unsigned hi) -> std::optional<unsigned> {
    unsigned v = 0;
    auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || p != s.data() + s.size() || v < lo || v > hi) return std::nullopt;
    return v;
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::string& x = args[i];
    auto value = [&](std::string_view opt) -> std::expected<std::string, std::string> {
      if (x.size() > opt.size() && x[1] != '-') return x.substr(opt.size());  // -fADDR
      if (i + 1 >= args.size()) return std::unexpected(fmt::format("{} needs a value", opt));
      return args[++i];
    };
    if (x == "--") {
      a.recipients.insert(a.recipients.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
      break;
    }
    if (x.empty() || x[0] != '-') {
      a.recipients.push_back(x);
      continue;
    }
    std::expected<std::string, std::string> v;
    if (x.starts_with("--")) {
      static const char* with_value[] = {"--host", "--port", "--tls", "--user", "--password-file", "--password-command",
                                         "--from", "--helo", "--auth", "--timeout", "--file", "--ca-file", "--fingerprint"};
      std::string name = x, val;
      bool has_eq = false;
      if (auto eq = x.find('='); eq != std::string::npos) {
        name = x.substr(0, eq);
        val = x.substr(eq + 1);
        has_eq = true;
      }
      bool takes = std::any_of(std::begin(with_value), std::end(with_value), [&](const char* w) { return name == w; });
      if (takes && !has_eq) {
        if (i + 1 >= args.size()) return std::unexpected(fmt::format("{} needs a value", name));
        val = args[++i];
      }
      if (name == "--host") a.host = val;
      else if (name == "--port") {
        auto p = num(val, 1, 65535);
        if (!p) return std::unexpected("--port must be 1..65535");
        a.port = static_cast<std::uint16_t>(*p);
      } else if (name == "--tls") {
        auto m = parse_tls(val);
        if (!m) return std::unexpected("--tls must be starttls, implicit or none");
        a.tls = *m;
      } else if (name == "--user") a.user = val;
      else if (name == "--password-file") a.password_file = val;
      else if (name == "--password-command") a.password_command = val;
      else if (name == "--from") a.from = val;
      else if (name == "--helo") a.helo = val;
      else if (name == "--auth") a.auth = split_list(val);
      else if (name == "--timeout") {
        auto t = num(val, 1, 3600);
        if (!t) return std::unexpected("--timeout must be 1..3600 seconds");
        a.timeout = *t;
      } else if (name == "--file") a.file = val;
      else if (name == "--ca-file") a.ca_file = val;
      else if (name == "--fingerprint") a.fingerprint = val;
      else if (name == "--allow-plaintext") a.allow_plaintext = true;
      else if (name == "--read-recipients") a.read_recipients = true;
      else return std::unexpected(fmt::format("unknown option {}", x));
      continue;
    }
    switch (x[1]) {
      case 't': if (x == "-t") { a.read_recipients = true; continue; } break;
      case 'i': if (x == "-i") { a.ignore_dots = true; continue; } break;
      case 'v': if (x == "-v") { a.verbose = true; continue; } break;
      case 'f':
      case 'r':
        v = value(x.substr(0, 2));
        if (!v) return std::unexpected(v.error());
        a.from = *v;
        continue;
      case 'F':
        v = value("-F");
        if (!v) return std::unexpected(v.error());
        a.full_name = *v;
        continue;
      case 'o':  // -oi, -oem, -odi, -o i ...: only "i" means something here
        v = value("-o");
        if (!v) return std::unexpected(v.error());
        if (*v == "i") a.ignore_dots = true;
        continue;
      case 'B':  // -B 8BITMIME / -B7BIT: the body type is detected
      case 'N':  // DSN notify: not requested
      case 'R':  // DSN return
      case 'V':  // envelope id
      case 'L':  // syslog label
        if (x.size() == 2) ++i;
        continue;
      case 'b':
        if (x == "-bm") continue;
        return std::unexpected(fmt::format("{} is not supported (buzon send only sends mail)", x));
      default: break;
    }
    return std::unexpected(fmt::format("unknown option {}", x));
  }
  return a;
}

namespace {

struct Job {
  SendConfig cfg;
  SendArgs args;
  std::string password;
  smtp::Envelope env;
  std::string message;
  int code = kExOk;
  std::string error;
  std::string reply;

  void fail(int c, std::string m) {
    code = c;
    error = std::move(m);
  }
  void fail(const smtp::ClientError& e) {
    int c = kExProtocol;
    switch (e.code) {
      case smtp::ClientErrc::network:
      case smtp::ClientErrc::timeout:
      case smtp::ClientErrc::temporary: c = kExTempFail; break;
      case smtp::ClientErrc::tls: c = kExTempFail; break;
      case smtp::ClientErrc::protocol: c = kExProtocol; break;
      case smtp::ClientErrc::auth: c = kExNoPerm; break;
      case smtp::ClientErrc::policy: c = kExConfig; break;
      case smtp::ClientErrc::permanent:
        c = (e.reply_code == 550 || e.reply_code == 551 || e.reply_code == 553) && e.message.find("recipient") != std::string::npos
                ? kExNoUser
                : kExUnavailable;
        break;
    }
    fail(c, e.message);
  }

  asio::awaitable<void> run() {
    auto timeout = std::chrono::duration_cast<std::chrono::milliseconds>(cfg.timeout);
    auto conn = co_await fetch::connect_tcp(cfg.host, cfg.effective_port(), timeout);
    if (!conn) co_return fail(kExTempFail, conn.error().message);
    auto tls = fetch::tls_client(fetch::TlsClientOptions{cfg.host, cfg.ca_file, cfg.fingerprint, timeout});
    std::unique_ptr<net::Stream> stream = std::move(*conn);
    const char* no_tls = "TLS is not available in this build of buzon yet (fix: tls = \"none\" / --tls none for a trusted "
                         "network only)";
    if (cfg.tls == TlsMode::implicit) {
      if (!tls) co_return fail(kExConfig, no_tls);
      auto t = co_await tls(std::move(stream));
      if (!t) co_return fail(kExTempFail, "TLS: " + t.error());
      stream = std::move(*t);
    }
    smtp::ClientSession s(std::move(stream), smtp::ClientOptions{timeout});
    if (auto r = co_await s.greeting(); !r) co_return fail(r.error());
    const std::string helo = cfg.helo.empty() ? hostname() : cfg.helo;
    if (auto r = co_await s.ehlo(helo); !r) co_return fail(r.error());
    if (cfg.tls == TlsMode::starttls) {
      if (!tls) co_return fail(kExConfig, no_tls);
      if (!s.ehlo_info().starttls)
        co_return fail(kExConfig, "the server does not offer STARTTLS (fix: tls = \"implicit\" on port 465, or \"none\")");
      if (auto r = co_await s.starttls(tls); !r) co_return fail(r.error());
      if (auto r = co_await s.ehlo(helo); !r) co_return fail(r.error());
    }
    if (!cfg.user.empty()) {
      smtp::AuthOptions a;
      a.user = cfg.user;
      a.password = password;
      a.preference = cfg.auth;
      a.allow_plaintext = cfg.allow_plaintext;
      a.sasl = [u = cfg.user, p = password](std::string_view mech) {
        return sasl::make_client(mech, sasl::ClientCredentials{u, p, ""});
      };
      if (auto r = co_await s.authenticate(a); !r) co_return fail(r.error());
    }
    auto r = co_await s.send(env, message);
    if (!r) co_return fail(r.error());
    reply = r->str();
    (void)co_await s.quit();
  }
};

}  // namespace

int run_send(const std::filesystem::path& config_file, const std::vector<std::string>& argv) {
  auto err = [](int code, const std::string& m) {
    std::fprintf(stderr, "buzon send: %s\n", m.c_str());
    return code;
  };
  auto args = parse_send_args(argv);
  if (!args) return err(kExUsage, args.error());
  Job job;
  if (!config_file.empty()) {
    std::ifstream in(config_file, std::ios::binary);
    if (!in) return err(kExConfig, fmt::format("cannot read the config file {}", config_file.string()));
    std::ostringstream ss;
    ss << in.rdbuf();
    auto c = parse_send_config(ss.str(), config_file);
    if (!c) return err(kExConfig, c.error().str());
    job.cfg = *c;
  }
  auto& a = *args;
  auto& c = job.cfg;
  if (a.host) c.host = *a.host;
  if (a.port) c.port = *a.port;
  if (a.tls) c.tls = *a.tls;
  if (a.user) c.user = *a.user;
  if (a.password_file) {
    c.password_file = *a.password_file;
    c.password_command.clear();
  }
  if (a.password_command) {
    c.password_command = *a.password_command;
    c.password_file.clear();
  }
  if (a.helo) c.helo = *a.helo;
  if (a.ca_file) c.ca_file = *a.ca_file;
  if (a.fingerprint) {
    auto fp = fetch::normalize_fingerprint(*a.fingerprint);
    if (!fp) return err(kExUsage, fp.error());
    c.fingerprint = *fp;
  }
  if (a.auth) c.auth = *a.auth;
  if (a.allow_plaintext) c.allow_plaintext = true;
  if (a.timeout) c.timeout = std::chrono::seconds(*a.timeout);
  if (c.host.empty()) return err(kExConfig, "no server (fix: [send] host = \"smtp.example.org\" or --host)");
  if (!c.user.empty()) {
    if (c.password_file.empty() && c.password_command.empty())
      return err(kExConfig, "a user is set but no password source (fix: password_file / --password-file)");
    auto pw = fetch::read_secret(c.password_file, c.password_command);
    if (!pw) return err(kExConfig, pw.error());
    job.password = *pw;
  }

  // The message.
  std::string input;
  if (!a.file.empty()) {
    std::ifstream in(a.file, std::ios::binary);
    if (!in) return err(kExIoErr, fmt::format("cannot read {}", a.file));
    std::ostringstream ss;
    ss << in.rdbuf();
    input = ss.str();
  } else {
    char buf[65536];
    std::size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, stdin)) > 0) {
      input.append(buf, n);
      if (input.size() > kMaxMessage) return err(kExDataErr, "message too large");
    }
    if (!a.ignore_dots) input = cut_at_dot_line(input);
  }
  if (input.size() > kMaxMessage) return err(kExDataErr, "message too large");

  std::vector<std::string> rcpts = a.recipients;
  if (a.read_recipients)
    for (auto& r : header_recipients(input))
      if (std::find(rcpts.begin(), rcpts.end(), r) == rcpts.end()) rcpts.push_back(r);
  if (rcpts.empty()) return err(kExDataErr, "no recipients (give them as arguments, or -t to read To/Cc/Bcc)");
  job.env.recipients = rcpts;
  job.env.from = !a.from.empty() ? a.from : !c.from.empty() ? c.from : header_from(input);
  if (job.env.from.empty()) return err(kExUsage, "no sender (fix: -f ADDRESS, [send] from, or a From: field)");
  job.message = strip_bcc(input);
  job.args = a;

  asio::io_context io(1);
  std::exception_ptr ep;
  asio::co_spawn(io, job.run(), [&](std::exception_ptr e) { ep = e; });
  io.run();
  if (ep) {
    try {
      std::rethrow_exception(ep);
    } catch (const std::exception& e) {
      return err(kExSoftware, std::string("internal error: ") + e.what());
    }
  }
  if (job.code != kExOk) return err(job.code, job.error);
  if (a.verbose) std::fprintf(stderr, "buzon send: %s:%u accepted the message for %zu recipient(s): %s\n", c.host.c_str(),
                              c.effective_port(), rcpts.size(), job.reply.c_str());
  return kExOk;
}

}  // namespace buzon::send
