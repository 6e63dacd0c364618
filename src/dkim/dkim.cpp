// dkim/dkim.cpp — DKIM signing (see dkim.hpp).
//
// SECURITY  The private key lives in an EVP_PKEY shared read-only by every signature (OpenSSL 3
//           allows concurrent use; each signature has its own EVP_MD_CTX). Error texts never
//           contain key material. d= and s= are checked so that they cannot inject tags.
// STANDARDS RFC 6376 §3.4.2/§3.4.4 (relaxed), §3.5 (tags), §3.7 (hash input: the signed fields
//           in h= order, each instance picked from the bottom, then the DKIM-Signature field with
//           an empty b= and no final CRLF), §5.4.2 (over-signing: a name listed once more than it
//           occurs contributes nothing); RFC 8463 §3 (ed25519-sha256 signs the SHA-256 of that
//           input with PureEdDSA), §4.2 (p= is the raw 32-octet public key).
// LIMITS    Linear in the message size; the message is not copied beyond its canonical body.
#include "dkim/dkim.hpp"

#include "core/base64.hpp"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>

#include <array>
#include <fstream>
#include <sstream>
#include <vector>

namespace buzon::dkim {

struct Key::Impl {
  EVP_PKEY* pkey = nullptr;
  Algorithm algorithm = Algorithm::rsa_sha256;
  Impl() = default;
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;
  ~Impl() { EVP_PKEY_free(pkey); }
};

namespace {

bool is_wsp(char c) { return c == ' ' || c == '\t'; }

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c; }

bool iequals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i)
    if (lower(a[i]) != lower(b[i])) return false;
  return true;
}

// RFC 6376 §5.4.1's recommended set, in the order they go into h=.
constexpr std::array<std::string_view, 12> kSignedFields{
    "From",       "To",           "Cc",           "Subject",      "Date",         "Message-ID",
    "Reply-To",   "In-Reply-To",  "References",   "MIME-Version", "Content-Type", "Content-Transfer-Encoding"};

struct Field {
  std::string_view name;   // as written, without trailing WSP
  std::string_view value;  // everything after the colon, folding included, without the final CRLF
};

// Splits the header section into fields and returns the offset of the body (after the empty line;
// the message's size when there is none).
std::size_t parse_header(std::string_view msg, std::vector<Field>& fields) {
  std::size_t pos = 0;
  while (pos < msg.size()) {
    std::size_t eol = msg.find('\n', pos);
    std::size_t next = eol == std::string_view::npos ? msg.size() : eol + 1;
    std::string_view line = msg.substr(pos, (eol == std::string_view::npos ? msg.size() : eol) - pos);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) return next;  // the empty line ends the header
    if (is_wsp(line[0])) {
      if (!fields.empty()) {  // a continuation: extend the previous field's value over it
        auto& f = fields.back();
        f.value = msg.substr(f.value.data() - msg.data(), line.data() + line.size() - f.value.data());
      }
    } else if (auto colon = line.find(':'); colon != std::string_view::npos) {
      std::string_view name = line.substr(0, colon);
      while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
      fields.push_back({name, line.substr(colon + 1)});
    }
    pos = next;
  }
  return msg.size();
}

bool valid_tag_value(std::string_view s, bool dots) {
  if (s.empty() || s.size() > 253) return false;
  for (char c : s) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' ||
              (dots && c == '.');
    if (!ok) return false;
  }
  return true;
}

std::string openssl_error(std::string_view what) { return std::string(what) + " (OpenSSL error)"; }

std::string sha256(std::string_view data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  return std::string(reinterpret_cast<char*>(md), len);
}

std::expected<std::string, std::string> sign_bytes(const Key::Impl& key, std::string_view input) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  if (!ctx) return std::unexpected(openssl_error("cannot allocate a signing context"));
  std::string data;
  const EVP_MD* md = EVP_sha256();
  if (key.algorithm == Algorithm::ed25519_sha256) {
    data = sha256(input);  // RFC 8463 §3: Ed25519 over the SHA-256 of the hash input
    input = data;
    md = nullptr;
  }
  std::string sig;
  std::size_t len = 0;
  bool ok = EVP_DigestSignInit(ctx, nullptr, md, nullptr, key.pkey) == 1 &&
            EVP_DigestSign(ctx, nullptr, &len, reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  if (ok) {
    sig.resize(len);
    ok = EVP_DigestSign(ctx, reinterpret_cast<unsigned char*>(sig.data()), &len,
                        reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
    sig.resize(len);
  }
  EVP_MD_CTX_free(ctx);
  if (!ok) return std::unexpected(openssl_error("signing failed"));
  return sig;
}

// Appends `atom` to a folded field, starting a new line ("\r\n\t") when the current one would pass
// 78 columns. `glue` is what joins it to the previous atom on the same line.
void fold_append(std::string& out, std::size_t& column, std::string_view atom, std::string_view glue) {
  if (column + glue.size() + atom.size() > 78 && column > 1) {
    out += "\r\n\t";
    column = 8;  // a tab, as mail readers show it
  } else {
    out += glue;
    column += glue.size();
  }
  out += atom;
  column += atom.size();
}

}  // namespace

std::string relaxed_header(std::string_view name, std::string_view value) {
  std::string out;
  out.reserve(name.size() + value.size() + 1);
  while (!name.empty() && is_wsp(name.back())) name.remove_suffix(1);
  for (char c : name) out.push_back(lower(c));
  out.push_back(':');
  bool pending_space = false;
  bool started = false;
  for (char c : value) {
    if (c == '\r' || c == '\n') continue;  // unfold
    if (is_wsp(c)) {
      pending_space = started;  // WSP after the colon is dropped; runs become one SP
      continue;
    }
    if (pending_space) out.push_back(' ');
    pending_space = false;
    started = true;
    out.push_back(c);
  }
  return out;  // trailing WSP is never written
}

std::string relaxed_body(std::string_view body) {
  std::string out;
  out.reserve(body.size());
  std::size_t empty_lines = 0;  // held back: empty lines at the end of the body are removed
  std::size_t pos = 0;
  while (pos < body.size()) {
    std::size_t eol = body.find('\n', pos);
    std::size_t end = eol == std::string_view::npos ? body.size() : eol;
    std::string_view line = body.substr(pos, end - pos);
    if (eol != std::string_view::npos && !line.empty() && line.back() == '\r') line.remove_suffix(1);
    pos = eol == std::string_view::npos ? body.size() : eol + 1;
    std::string canon;
    bool pending_space = false;
    for (char c : line) {
      if (is_wsp(c)) {
        pending_space = true;
        continue;
      }
      if (pending_space) canon.push_back(' ');
      pending_space = false;
      canon.push_back(c);
    }
    if (canon.empty()) {
      ++empty_lines;
      continue;
    }
    for (; empty_lines > 0; --empty_lines) out += "\r\n";
    out += canon;
    out += "\r\n";
  }
  return out;
}

std::expected<Key, std::string> Key::from_pem(std::string_view pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  if (!bio) return std::unexpected(openssl_error("cannot read the key"));
  EVP_PKEY* pkey = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  if (!pkey)
    return std::unexpected(std::string(
        "not a PEM private key (fix: an unencrypted \"-----BEGIN PRIVATE KEY-----\" RSA or Ed25519 key, "
        "such as `buzon dkim keygen` writes)"));
  auto impl = std::make_shared<Impl>();
  impl->pkey = pkey;
  int id = EVP_PKEY_get_base_id(pkey);
  if (id == EVP_PKEY_ED25519) {
    impl->algorithm = Algorithm::ed25519_sha256;
  } else if (id == EVP_PKEY_RSA) {
    impl->algorithm = Algorithm::rsa_sha256;
    if (EVP_PKEY_get_bits(pkey) < 1024)
      return std::unexpected("RSA key of " + std::to_string(EVP_PKEY_get_bits(pkey)) +
                             " bits is too short for DKIM (fix: 2048 bits, RFC 8301 §3.2)");
  } else {
    return std::unexpected(std::string("unsupported key type (fix: an RSA or Ed25519 private key)"));
  }
  Key key;
  key.impl = std::move(impl);
  return key;
}

std::expected<Key, std::string> Key::load(const std::filesystem::path& pem) {
  std::ifstream in(pem, std::ios::binary);
  if (!in) return std::unexpected(pem.string() + ": cannot open the DKIM key");
  std::ostringstream text;
  text << in.rdbuf();
  auto key = from_pem(text.str());
  if (!key) return std::unexpected(pem.string() + ": " + key.error());
  return key;
}

Algorithm Key::algorithm() const { return impl->algorithm; }

std::string Key::dns_record() const {
  std::string pub;
  if (impl->algorithm == Algorithm::ed25519_sha256) {
    std::size_t len = 0;
    EVP_PKEY_get_raw_public_key(impl->pkey, nullptr, &len);
    pub.resize(len);
    EVP_PKEY_get_raw_public_key(impl->pkey, reinterpret_cast<unsigned char*>(pub.data()), &len);
    pub.resize(len);
    return "v=DKIM1; k=ed25519; p=" + base64_encode(pub);
  }
  unsigned char* der = nullptr;
  int len = i2d_PUBKEY(impl->pkey, &der);  // SubjectPublicKeyInfo, as RFC 6376 §3.6.1 wants
  if (len > 0) pub.assign(reinterpret_cast<char*>(der), static_cast<std::size_t>(len));
  OPENSSL_free(der);
  return "v=DKIM1; k=rsa; p=" + base64_encode(pub);
}

std::expected<std::string, std::string> sign(const Signer& signer, std::string_view message, long long now) {
  if (!signer.key.impl) return std::unexpected(std::string("no DKIM key"));
  if (!valid_tag_value(signer.domain, true)) return std::unexpected("invalid DKIM domain \"" + signer.domain + "\"");
  if (!valid_tag_value(signer.selector, true))
    return std::unexpected("invalid DKIM selector \"" + signer.selector + "\"");
  std::vector<Field> fields;
  std::size_t body_at = parse_header(message, fields);
  std::string_view body = message.substr(body_at);

  // h=: each recommended field present, once; From once more (over-signing, §5.4.2).
  std::vector<std::string_view> names;
  for (auto want : kSignedFields)
    for (auto& f : fields)
      if (iequals(f.name, want)) {
        names.push_back(want);
        break;
      }
  if (names.empty() || names.front() != "From")
    return std::unexpected(std::string("the message has no From field (RFC 6376 §5.4: From must be signed)"));
  names.push_back("From");

  // The signed fields, each instance taken from the bottom up (§5.4.2).
  std::string input;
  std::vector<bool> used(fields.size(), false);
  for (auto name : names) {
    for (std::size_t i = fields.size(); i-- > 0;) {
      if (used[i] || !iequals(fields[i].name, name)) continue;
      used[i] = true;
      input += relaxed_header(fields[i].name, fields[i].value);
      input += "\r\n";
      break;
    }  // none left: the over-signed name contributes nothing
  }

  const bool ed = signer.key.impl->algorithm == Algorithm::ed25519_sha256;
  std::string field = "DKIM-Signature:";
  std::size_t column = field.size();
  auto tag = [&](std::string_view t) { fold_append(field, column, t, " "); };
  tag("v=1;");
  tag(ed ? "a=ed25519-sha256;" : "a=rsa-sha256;");
  tag("c=relaxed/relaxed;");
  tag("d=" + signer.domain + ";");
  tag("s=" + signer.selector + ";");
  tag("t=" + std::to_string(now) + ";");
  for (std::size_t i = 0; i < names.size(); ++i) {
    std::string atom = i == 0 ? "h=" : "";
    for (char c : names[i]) atom.push_back(lower(c));
    atom += i + 1 == names.size() ? ";" : ":";
    fold_append(field, column, atom, i == 0 ? " " : "");
  }
  tag("bh=" + base64_encode(sha256(relaxed_body(body))) + ";");
  tag("b=");

  input += relaxed_header("DKIM-Signature", std::string_view(field).substr(field.find(':') + 1));
  auto sig = sign_bytes(*signer.key.impl, input);
  if (!sig) return std::unexpected(sig.error());
  std::string b = base64_encode(*sig);
  for (std::size_t i = 0; i < b.size();) {
    std::size_t room = column >= 76 ? 0 : 76 - column;
    if (room < 8) {
      field += "\r\n\t";
      column = 8;
      continue;
    }
    std::string_view chunk = std::string_view(b).substr(i, room);
    field += chunk;
    column += chunk.size();
    i += chunk.size();
  }
  field += "\r\n";
  return field;
}

std::expected<std::string, std::string> generate_key_pem(Algorithm algorithm, unsigned rsa_bits) {
  EVP_PKEY* pkey = nullptr;
  if (algorithm == Algorithm::ed25519_sha256) {
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  } else {
    if (rsa_bits < 1024 || rsa_bits > 8192)
      return std::unexpected("RSA key size " + std::to_string(rsa_bits) + " is out of range (fix: 1024..8192, 2048 recommended)");
    pkey = EVP_PKEY_Q_keygen(nullptr, nullptr, "RSA", static_cast<std::size_t>(rsa_bits));
  }
  if (!pkey) return std::unexpected(openssl_error("key generation failed"));
  BIO* bio = BIO_new(BIO_s_mem());
  bool ok = bio && PEM_write_bio_PrivateKey(bio, pkey, nullptr, nullptr, 0, nullptr, nullptr) == 1;
  std::string pem;
  if (ok) {
    char* data = nullptr;
    long len = BIO_get_mem_data(bio, &data);
    pem.assign(data, static_cast<std::size_t>(len));
  }
  BIO_free(bio);
  EVP_PKEY_free(pkey);
  if (!ok) return std::unexpected(openssl_error("cannot write the key"));
  return pem;
}

}  // namespace buzon::dkim
