// core/config.hpp — buzon's TOML configuration (docs/CONTRACT.md, README "Configuration").
//
// SECURITY  The config file is trusted (root-owned in production) but still validated strictly:
//           unknown keys and bad values fail start-up with "file:line: what (fix: how)".
// LIMITS    Every number has a range check; durations are whole seconds.
#pragma once

#include <cstdint>
#include <expected>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace buzon {

struct ConfigError {
  std::string file;
  int line = 0;  // 0 when not tied to a line
  std::string message;
  std::string fix;
  std::string str() const;  // "file:line: message (fix: ...)"
};

struct ListenAddress {
  std::string host;  // numeric IPv4/IPv6 address
  std::uint16_t port = 0;
  std::string str() const;
};
std::expected<ListenAddress, std::string> parse_listen_address(std::string_view text);

struct ServerConfig {
  std::string hostname = "localhost";
  unsigned io_threads = 0;        // 0 = one per core
  unsigned worker_threads = 4;    // blocking pool
  unsigned max_connections = 1000;
  unsigned max_connections_per_ip = 100;
  unsigned shutdown_grace = 10;   // seconds
  // Started as root: bind, read secrets, then run as this user (docs/SECURITY.md). "root" keeps
  // root on purpose (demo, tests); started as another user, no change happens.
  std::string user = "buzon";
  std::string group;              // empty = the user's primary group
};

struct LogConfig {
  std::string level = "info";
  std::string file;  // empty = stderr
  std::string format = "text";  // text | json (one JSON object per line)
};

struct MetricsConfig {
  bool enabled = true;
  ListenAddress listen{"127.0.0.1", 9110};  // HTTP: /metrics (Prometheus), /status
};

// PROXY protocol v1/v2 (HAProxy): listen addresses (of any service) that expect the header, and
// the proxies allowed to send it ("10.0.0.0/8", "::1").
struct ProxyConfig {
  std::vector<ListenAddress> listeners;
  std::vector<std::string> trusted;  // validated CIDR networks
  unsigned timeout = 5;              // seconds for the header to arrive
};

struct UsersConfig {
  std::filesystem::path passwd_file = "passwd";
  std::string default_domain;
  bool lowercase = true;
  std::string default_scheme = "SHA512-CRYPT";
};

struct MailConfig {
  std::string location = "mail/%d/%n/Maildir";  // relative to the config dir unless absolute
  std::string uidl_format = "buzon";             // buzon | dovecot | x-uidl
};

struct Pop3Config {
  std::vector<ListenAddress> listen{{"127.0.0.1", 1110}};
  bool apop = false;
  unsigned autologout = 600;          // RFC 1939 §3: at least 10 minutes
  unsigned max_session_time = 7200;
  unsigned max_bad_commands = 20;
  unsigned login_delay = 0;           // seconds; 0 = not advertised (RFC 2449 §6.8)
  std::optional<unsigned> expire_days;  // nullopt = NEVER (RFC 2449 §6.7)
  std::vector<ListenAddress> listen_tls;  // POP3S, implicit TLS (RFC 8314); needs [tls]
  bool stls = true;                       // offer STLS on `listen` when [tls] is configured
  int listen_tls_line = 0;                // where listen_tls is, for errors
};

// [tls] and [[tls.sni]]: certificates and protocol settings shared by every TLS listener.
struct TlsCertConfig {
  std::filesystem::path cert, key, chain;  // PEM; relative to the config's directory
  std::vector<std::string> names;          // [[tls.sni]] only: host names, "*.example.org"
  int line = 0;                            // where it is configured, for start-up errors
};

struct TlsConfig {
  TlsCertConfig main;                      // [tls] cert/key/chain; no cert = no TLS
  std::vector<TlsCertConfig> sni;          // [[tls.sni]], first matching name wins
  std::string min_version = "TLSv1.2";     // TLSv1.2 | TLSv1.3
  std::string ciphers;                     // TLS 1.2 OpenSSL cipher list; "" = built-in modern list
  std::string ciphersuites;                // TLS 1.3 suites; "" = built-in
  unsigned handshake_timeout = 30;         // seconds
  bool enabled() const { return !main.cert.empty(); }
};

// [auth]: authentication policy for every protocol that logs users in.
struct AuthConfig {
  std::vector<std::string> mechanisms{"PLAIN", "LOGIN"};  // SASL offered, in this order
  bool plaintext_requires_tls = true;     // USER/PASS, PLAIN, LOGIN: TLS or trusted_networks only
  std::vector<std::string> trusted_networks{"127.0.0.0/8", "::1/128"};  // validated CIDR
  unsigned failure_delay_ms = 2000;       // first penalty delay per source address; 0 = off
  unsigned failure_delay_max_ms = 15000;  // the doubling stops here
  unsigned hash_threads = 2;              // worker threads for password hashing only
};

// [smtp]: the MX server (RFC 5321) for the local domains. Empty listen = no SMTP server.
struct SmtpConfig {
  std::vector<ListenAddress> listen;
  std::string hostname;                     // greeting, Received:; "" = [server] hostname
  std::vector<std::string> local_domains;   // lower case; mail for other domains is refused (no relay)
  unsigned max_message_size = 10485760;     // octets (RFC 1870 SIZE), enforced while receiving
  unsigned max_recipients = 100;            // per message (RFC 5321 §4.5.3.1.8: at least 100)
  unsigned max_errors = 20;                 // then 421 and close
  unsigned max_line_length = 1000;          // octets incl. CRLF of a message line (§4.5.3.1.6)
  unsigned command_timeout = 300;           // seconds (RFC 5321 §4.5.3.2.7: at least 5 minutes)
  unsigned data_timeout = 300;              // seconds per read while receiving message data
  unsigned max_session_time = 3600;         // seconds, whatever the client does
  unsigned greet_pause = 0;                 // seconds before the greeting; early talkers are refused
  bool vrfy = false;                        // false: VRFY answers 252 (no user enumeration)
  bool starttls = true;                     // offer STARTTLS (RFC 3207) when [tls] is configured
  std::string recipient_delimiter = "+";    // plus-addressing: each character separates user+tag; "" = off
  unsigned max_hops = 50;                   // Received: fields before 554 5.4.6 (RFC 5321 §6.3)
};

// [quota]: the Maildir++ quota written into a mailbox that has no maildirsize yet (README "Quotas");
// `buzon quota USER` sets one mailbox's own limits, which this never overwrites.
struct QuotaConfig {
  std::uint64_t default_bytes = 0;  // 0 = no limit
  unsigned default_messages = 0;    // 0 = no limit
  struct Limits {
    std::uint64_t bytes = 0;
    unsigned messages = 0;
  };
  std::map<std::string, Limits> domains;  // lower case: per-domain defaults instead of the above
  // Over quota: "temporary" = 452 4.2.2 (the sender retries; RFC 3463 X.2.2 is usually transient),
  // "permanent" = 552 5.2.2 (bounces at once).
  bool over_quota_permanent = false;
};

// [aliases]: virtual aliases and address routing (README "Addresses and aliases").
struct AliasesConfig {
  std::filesystem::path file;                  // "alias@domain: target, ..." lines; "" = no aliases
  std::string postmaster;                      // where postmaster@/abuse@ of every local domain go;
                                               // "" = postmaster@<first local domain>
  std::map<std::string, std::string> domains;  // lower case: alias domain -> real domain (both local)
  int line = 0;                                // where [aliases] is, for errors
};

// [lmtp]: LMTP (RFC 2033) for an MTA in front (Postfix virtual_transport = lmtp:...). Shares the
// limits of [smtp]. Empty listen and socket = no LMTP server.
struct LmtpConfig {
  std::vector<ListenAddress> listen;        // TCP
  std::filesystem::path socket;             // unix socket path ("" = none)
  unsigned socket_mode = 0660;              // permissions of the socket file
};

// [queue]: the outbound spool (docs/QUEUE.md) and its retry schedule. Times in seconds.
struct QueueConfig {
  std::filesystem::path dir = "queue";  // relative to the config's directory
  unsigned retry_first = 300;           // after the first failed round; then doubled...
  unsigned retry_max_interval = 14400;  // ...up to this (RFC 5321 §4.5.4.1: at least 30 minutes)
  unsigned max_age = 432000;            // 5 days: then every pending recipient is bounced
  unsigned delay_warning = 14400;       // 4 hours: one delay DSN (NOTIFY=DELAY); 0 = never
  unsigned scan_interval = 5;           // how often the live relay rescans the spool (flush, new entries)
  int line = 0;                         // where [queue] is, for errors
};

// [relay]: outbound delivery of the spool (docs/RELAY.md). [[relay.transport]] overrides the route
// of one domain.
struct RelayTransport {
  std::string domain;   // lower case
  std::string host;     // name or numeric address
  std::uint16_t port = 25;
  int line = 0;
};

struct RelayConfig {
  std::string helo_name;              // "" = [server] hostname
  std::uint16_t port = 25;            // port of MX hosts (tests use a high one)
  std::string tls = "may";            // none | may (opportunistic, unverified) | verify
  std::string smarthost;              // "host:port"; "" = MX routing
  std::uint16_t smarthost_port = 25;
  std::string user;                   // AUTH at the smarthost ("" = none)
  std::filesystem::path password_file;
  std::vector<RelayTransport> transports;
  unsigned max_connections = 20;      // outbound connections at once
  unsigned max_per_domain = 4;        // per destination domain
  unsigned connect_timeout = 30;      // seconds
  unsigned command_timeout = 300;     // seconds per reply (RFC 5321 §4.5.3.2)
  std::string source_address;         // numeric address outbound connections come from; "" = any
};

// [dns]: the resolver of the relay. servers empty = /etc/resolv.conf.
struct DnsConfig {
  std::vector<std::string> servers;   // "127.0.0.1:5353", "[::1]:53", "10.0.0.1"
  unsigned timeout = 5;               // seconds per try
  unsigned tries = 2;
};

// [submission]: message submission (RFC 6409) for authenticated users, delivering locally and
// queueing for the relay. Shares [smtp]'s hostname, local_domains and limits. Empty listen and
// listen_tls = no submission server.
struct SubmissionConfig {
  std::vector<ListenAddress> listen;      // port 587: STARTTLS offered when [tls] is configured
  std::vector<ListenAddress> listen_tls;  // port 465: implicit TLS (RFC 8314); needs [tls]
  int listen_tls_line = 0;                // where listen_tls is, for errors
  bool require_tls = true;                // PLAIN/LOGIN only over TLS, even from trusted_networks
  bool hide_client = false;               // Received: without the client's address and name
  // Sender address (lower case) or "@domain" -> the users allowed to send as it, besides their own.
  std::map<std::string, std::vector<std::string>> sender_aliases;
};

// [[dkim.key]]: DKIM signing keys (RFC 6376); messages submitted for `domain` are signed.
struct DkimKeyConfig {
  std::string domain;         // lower case, d=
  std::string selector;       // s=
  std::filesystem::path key;  // PEM private key (RSA or Ed25519); relative to the config dir
  int line = 0;               // for start-up errors (the key is loaded by the server)
};

struct Config {
  std::filesystem::path file;  // the config file itself
  std::filesystem::path dir;   // its directory: base for relative paths
  ServerConfig server;
  LogConfig log;
  UsersConfig users;
  MailConfig mail;
  Pop3Config pop3;
  SmtpConfig smtp;
  LmtpConfig lmtp;
  MetricsConfig metrics;
  ProxyConfig proxy;
  TlsConfig tls;
  AuthConfig auth;
  QueueConfig queue;
  RelayConfig relay;
  DnsConfig dns;
  SubmissionConfig submission;
  std::vector<DkimKeyConfig> dkim_keys;
  AliasesConfig aliases;
  QuotaConfig quota;

  // A path from the config, made absolute against the config's directory.
  std::filesystem::path resolve(const std::filesystem::path& p) const;
};

// Parses TOML text; `file` is used for error messages and to resolve relative paths.
std::expected<Config, ConfigError> parse_config(std::string_view text, const std::filesystem::path& file);
std::expected<Config, ConfigError> load_config(const std::filesystem::path& file);

}  // namespace buzon
