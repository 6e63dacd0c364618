// net/tls_test_certs.hpp — (tests only) self-signed certificates made in-process with OpenSSL 3:
// an EC P-256 key and an X.509 v3 certificate with subjectAltName, written as PEM to a temp dir.
// Equivalent command: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes
//   -subj /CN=<cn> -addext subjectAltName=<san> -days 1 -keyout key.pem -out cert.pem
#pragma once

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>

namespace buzon::net::test {

struct CertFiles {
  std::filesystem::path cert, key;
};

inline CertFiles make_self_signed(const std::filesystem::path& dir, const std::string& stem, const std::string& cn,
                                  const std::string& san = "DNS:localhost,IP:127.0.0.1") {
  std::filesystem::create_directories(dir);
  EVP_PKEY* key = EVP_EC_gen("P-256");
  X509* x = X509_new();
  if (key == nullptr || x == nullptr) throw std::runtime_error("openssl: cannot create key/cert");
  X509_set_version(x, 2);
  static long serial = 1;
  ASN1_INTEGER_set(X509_get_serialNumber(x), serial++);
  X509_gmtime_adj(X509_getm_notBefore(x), -3600);
  X509_gmtime_adj(X509_getm_notAfter(x), 86400);
  X509_set_pubkey(x, key);
  X509_NAME* name = X509_get_subject_name(x);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const unsigned char*>(cn.c_str()), -1, -1, 0);
  X509_set_issuer_name(x, name);
  X509V3_CTX v3;
  X509V3_set_ctx_nodb(&v3);
  X509V3_set_ctx(&v3, x, x, nullptr, nullptr, 0);
  if (X509_EXTENSION* ext = X509V3_EXT_conf_nid(nullptr, &v3, NID_subject_alt_name, san.c_str())) {
    X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
  }
  X509_sign(x, key, EVP_sha256());
  CertFiles f{dir / (stem + "-cert.pem"), dir / (stem + "-key.pem")};
  FILE* c = std::fopen(f.cert.c_str(), "w");
  FILE* k = std::fopen(f.key.c_str(), "w");
  if (c == nullptr || k == nullptr) throw std::runtime_error("cannot write test certificates");
  PEM_write_X509(c, x);
  PEM_write_PrivateKey(k, key, nullptr, nullptr, 0, nullptr, nullptr);
  std::fclose(c);
  std::fclose(k);
  X509_free(x);
  EVP_PKEY_free(key);
  return f;
}

}  // namespace buzon::net::test
