// net/tls_context.cpp — see tls_context.hpp.
#include "net/tls_context.hpp"

#include "net/tcp_stream.hpp"
#include "net/tls_contexts.hpp"
#include "net/tls_stream.hpp"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <fstream>

namespace buzon::net {

namespace {

// The OpenSSL error queue as one line (and cleared).
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof buf);
    if (!out.empty()) out += "; ";
    out += buf;
  }
  return out.empty() ? "unknown OpenSSL error" : out;
}

std::string where(const TlsCertFiles& f) { return f.origin.empty() ? std::string("[tls]") : f.origin; }

std::string lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::expected<void, std::string> readable(const std::filesystem::path& p, const TlsCertFiles& f, std::string_view what,
                                          std::string_view key) {
  std::ifstream in(p, std::ios::binary);
  if (!in)
    return std::unexpected(fmt::format("{}: cannot read the {} {} (fix: check the path and permissions, or change {})",
                                       where(f), what, p.string(), key));
  return {};
}

std::string describe_cert(SSL_CTX* ctx, const std::filesystem::path& file) {
  X509* cert = SSL_CTX_get0_certificate(ctx);
  if (cert == nullptr) return file.string();
  char subject[256] = {};
  X509_NAME_oneline(X509_get_subject_name(cert), subject, sizeof subject);
  std::string not_after;
  if (BIO* bio = BIO_new(BIO_s_mem())) {
    ASN1_TIME_print(bio, X509_get0_notAfter(cert));
    char buf[64] = {};
    int n = BIO_read(bio, buf, sizeof buf - 1);
    if (n > 0) not_after.assign(buf, static_cast<std::size_t>(n));
    BIO_free(bio);
  }
  if (X509_cmp_current_time(X509_get0_notAfter(cert)) < 0)
    spdlog::warn("tls certificate {} ({}) EXPIRED on {}", file.string(), subject, not_after);
  else if (X509_cmp_current_time(X509_get0_notBefore(cert)) > 0)
    spdlog::warn("tls certificate {} ({}) is not valid yet", file.string(), subject);
  return fmt::format("{} subject={} expires={}", file.string(), subject, not_after);
}

std::expected<std::unique_ptr<asio::ssl::context>, std::string> build(const TlsSettings& s, const TlsCertFiles& f,
                                                                     std::string& description) {
  ERR_clear_error();
  auto ctx = std::make_unique<asio::ssl::context>(asio::ssl::context::tls_server);
  SSL_CTX* c = ctx->native_handle();
  const int floor = s.min_version == "TLSv1.3" ? TLS1_3_VERSION : TLS1_2_VERSION;
  SSL_CTX_set_min_proto_version(c, floor);
  SSL_CTX_set_options(c, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION | SSL_OP_IGNORE_UNEXPECTED_EOF);
  SSL_CTX_set_session_id_context(c, reinterpret_cast<const unsigned char*>("buzon"), 5);
  if (SSL_CTX_set_cipher_list(c, s.ciphers.c_str()) != 1)
    return std::unexpected(fmt::format("{}: [tls] ciphers \"{}\" names no usable TLS 1.2 cipher: {} (fix: use an "
                                       "OpenSSL cipher list, or remove the key for the default)",
                                       where(f), s.ciphers, openssl_errors()));
  if (SSL_CTX_set_ciphersuites(c, s.ciphersuites.c_str()) != 1)
    return std::unexpected(fmt::format("{}: [tls] ciphersuites \"{}\" names no TLS 1.3 suite: {} (fix: e.g. "
                                       "\"TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384\", or remove the key)",
                                       where(f), s.ciphersuites, openssl_errors()));

  if (auto r = readable(f.cert, f, "certificate", "cert"); !r) return std::unexpected(r.error());
  if (auto r = readable(f.key, f, "private key", "key"); !r) return std::unexpected(r.error());
  if (SSL_CTX_use_certificate_chain_file(c, f.cert.c_str()) != 1)
    return std::unexpected(fmt::format("{}: {} is not a PEM certificate: {} (fix: point cert at the PEM file, "
                                       "certificate first, then its chain)",
                                       where(f), f.cert.string(), openssl_errors()));
  // Parse the key first, so "not a key" and "not this certificate's key" get their own messages.
  EVP_PKEY* pkey = nullptr;
  if (BIO* kb = BIO_new_file(f.key.c_str(), "r")) {
    pkey = PEM_read_bio_PrivateKey(kb, nullptr, [](char*, int, int, void*) { return 0; }, nullptr);
    BIO_free(kb);
  }
  if (pkey == nullptr)
    return std::unexpected(fmt::format("{}: {} is not a PEM private key (or is encrypted): {} (fix: point key at "
                                       "an unencrypted PEM key)",
                                       where(f), f.key.string(), openssl_errors()));
  const int used = SSL_CTX_use_PrivateKey(c, pkey);
  EVP_PKEY_free(pkey);
  ERR_clear_error();
  if (used != 1 || SSL_CTX_check_private_key(c) != 1)
    return std::unexpected(fmt::format("{}: the key {} does not belong to the certificate {} (fix: use the key "
                                       "the certificate was issued for)",
                                       where(f), f.key.string(), f.cert.string()));
  if (!f.chain.empty()) {
    if (auto r = readable(f.chain, f, "chain", "chain"); !r) return std::unexpected(r.error());
    BIO* bio = BIO_new_file(f.chain.c_str(), "r");
    if (bio == nullptr)
      return std::unexpected(fmt::format("{}: cannot open the chain {}: {}", where(f), f.chain.string(), openssl_errors()));
    int n = 0;
    while (X509* x = PEM_read_bio_X509(bio, nullptr, nullptr, nullptr)) {
      if (SSL_CTX_add0_chain_cert(c, x) != 1) {
        X509_free(x);
        BIO_free(bio);
        return std::unexpected(fmt::format("{}: cannot add a certificate of {}: {}", where(f), f.chain.string(),
                                           openssl_errors()));
      }
      ++n;
    }
    BIO_free(bio);
    ERR_clear_error();  // the loop ends with a "no start line" error
    if (n == 0)
      return std::unexpected(fmt::format("{}: the chain {} holds no PEM certificate (fix: point chain at the "
                                         "intermediate certificates, or remove it)",
                                         where(f), f.chain.string()));
  }
  description = describe_cert(c, f.cert);
  return ctx;
}

int on_server_name(SSL* ssl, int* /*alert*/, void* arg) {
  const auto* contexts = static_cast<const TlsContexts*>(arg);
  const char* name = SSL_get_servername(ssl, TLSEXT_NAMETYPE_host_name);
  if (name == nullptr) return SSL_TLSEXT_ERR_OK;  // no SNI: the default certificate
  const std::string host = lower(name);
  for (const auto& n : contexts->sni)
    for (const auto& p : n.patterns)
      if (sni_name_matches(p, host)) {
        SSL_set_SSL_CTX(ssl, n.ctx->native_handle());
        return SSL_TLSEXT_ERR_OK;
      }
  return SSL_TLSEXT_ERR_OK;  // unknown name: the default certificate (clients decide)
}

std::expected<std::shared_ptr<TlsContexts>, std::string> load_all(const TlsSettings& s) {
  auto all = std::make_shared<TlsContexts>();
  std::string d;
  auto main = build(s, s.main, d);
  if (!main) return std::unexpected(main.error());
  all->main = std::move(*main);
  all->descriptions.push_back(d);
  for (const auto& f : s.sni) {
    auto ctx = build(s, f, d);
    if (!ctx) return std::unexpected(ctx.error());
    TlsContexts::Named n;
    for (const auto& name : f.names) n.patterns.push_back(lower(name));
    n.ctx = std::move(*ctx);
    all->sni.push_back(std::move(n));
    all->descriptions.push_back(d);
  }
  all->handshake_timeout = s.handshake_timeout;
  SSL_CTX_set_tlsext_servername_callback(all->main->native_handle(), on_server_name);
  SSL_CTX_set_tlsext_servername_arg(all->main->native_handle(), all.get());
  return all;
}

}  // namespace

bool sni_name_matches(std::string_view pattern, std::string_view host) {
  if (pattern.starts_with("*.")) {
    const auto dot = host.find('.');
    return dot != std::string_view::npos && dot > 0 && host.substr(dot) == pattern.substr(1);
  }
  return pattern == host;
}

std::expected<std::shared_ptr<TlsServerContext>, std::string> TlsServerContext::create(TlsSettings settings) {
  auto ctx = std::shared_ptr<TlsServerContext>(new TlsServerContext(std::move(settings)));
  auto all = load_all(ctx->settings_);
  if (!all) return std::unexpected(all.error());
  ctx->contexts_ = std::move(*all);
  return ctx;
}

TlsServerContext::~TlsServerContext() = default;

std::expected<void, std::string> TlsServerContext::reload() {
  auto commit = prepare(settings());
  if (!commit) return std::unexpected(commit.error());
  (*commit)();
  return {};
}

std::expected<std::function<void()>, std::string> TlsServerContext::prepare(TlsSettings next) {
  auto all = load_all(next);
  if (!all) return std::unexpected(all.error());
  return [this, all = std::move(*all), next = std::move(next)]() mutable {
    std::lock_guard lock(mu_);
    contexts_ = std::move(all);
    settings_ = std::move(next);
  };
}

TlsSettings TlsServerContext::settings() const {
  std::lock_guard lock(mu_);
  return settings_;
}

std::shared_ptr<TlsContexts> TlsServerContext::current() const {
  std::lock_guard lock(mu_);
  return contexts_;
}

std::vector<std::string> TlsServerContext::describe() const { return current()->descriptions; }

asio::awaitable<UpgradeResult> TlsServerContext::accept(asio::ip::tcp::socket socket,
                                                        std::optional<asio::ip::tcp::endpoint> client) {
  auto [peer, loopback] = client ? describe_endpoint(*client) : describe_peer(socket);
  asio::error_code ig;
  socket.set_option(asio::ip::tcp::no_delay(true), ig);
  auto ctx = current();
  const auto timeout = ctx->handshake_timeout;
  auto s = std::make_unique<TlsStream>(std::move(socket), std::move(ctx), std::move(peer), loopback);
  if (auto ec = co_await s->handshake(timeout)) co_return std::unexpected(ec);
  co_return StreamPtr(std::move(s));
}

asio::awaitable<UpgradeResult> TlsServerContext::start_tls(StreamPtr plain) {
  auto* tcp = dynamic_cast<TcpStream*>(plain.get());
  if (tcp == nullptr) co_return std::unexpected(std::make_error_code(std::errc::operation_not_supported));
  auto ctx = current();
  const auto timeout = ctx->handshake_timeout;
  auto s = std::make_unique<TlsStream>(std::move(tcp->socket()), std::move(ctx), tcp->peer(), tcp->peer_is_loopback());
  plain.reset();  // the plain stream is gone: nothing can read past the handshake in plaintext
  if (auto ec = co_await s->handshake(timeout)) co_return std::unexpected(ec);
  co_return StreamPtr(std::move(s));
}

}  // namespace buzon::net
