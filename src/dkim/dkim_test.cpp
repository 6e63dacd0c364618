// dkim/dkim_test.cpp — canonicalization (RFC 6376 §3.4.5 byte for byte), body hashes, the RFC 8463
// Appendix A keys and signatures checked with OpenSSL directly, and our signatures verified by an
// independent reconstruction of the hash input.
#include "dkim/dkim.hpp"

#include "core/base64.hpp"

#include <gtest/gtest.h>

#include <openssl/evp.h>
#include <openssl/pem.h>

#include <regex>

namespace buzon::dkim {
namespace {

std::string sha256_b64(std::string_view s) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned len = 0;
  EVP_Digest(s.data(), s.size(), md, &len, EVP_sha256(), nullptr);
  return base64_encode(std::string_view(reinterpret_cast<char*>(md), len));
}

TEST(Canonicalization, Rfc6376Section345Example) {
  // Header: "A: X\r\nB : Y\t\r\n\tZ  \r\n"  ->  "a:X\r\nb:Y Z\r\n"
  EXPECT_EQ(relaxed_header("A", " X") + "\r\n" + relaxed_header("B ", " Y\t\r\n\tZ  ") + "\r\n", "a:X\r\nb:Y Z\r\n");
  // Body: " C \r\nD \t E\r\n\r\n\r\n"  ->  " C\r\nD E\r\n"
  EXPECT_EQ(relaxed_body(" C \r\nD \t E\r\n\r\n\r\n"), " C\r\nD E\r\n");
}

TEST(Canonicalization, RelaxedBodyEdges) {
  EXPECT_EQ(relaxed_body(""), "");
  EXPECT_EQ(relaxed_body("\r\n"), "");
  EXPECT_EQ(relaxed_body("\r\n\r\n \t\r\n"), "");
  EXPECT_EQ(relaxed_body("abc"), "abc\r\n");  // a last line without CRLF gets one
  EXPECT_EQ(relaxed_body("a\r\n\r\nb\r\n"), "a\r\n\r\nb\r\n");  // inner empty lines stay
  EXPECT_EQ(relaxed_body("a\n\nb\n"), "a\r\n\r\nb\r\n");  // bare LF read as a line end
  EXPECT_EQ(sha256_b64(relaxed_body("")), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
  EXPECT_EQ(sha256_b64(relaxed_body("\r\n\r\n")), "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=");
}

TEST(Canonicalization, RelaxedHeaderEdges) {
  EXPECT_EQ(relaxed_header("SUBJECT", "\t  hello   world \t"), "subject:hello world");
  EXPECT_EQ(relaxed_header("X", ""), "x:");
  EXPECT_EQ(relaxed_header("To", " a@b,\r\n  c@d"), "to:a@b, c@d");
}

// ---- RFC 8463 Appendix A ----------------------------------------------------------------------

// The Ed25519 seed of RFC 8463 A.1 (RFC 8032 §7.1 test 1) as PKCS#8.
std::string ed25519_pem() {
  auto seed = base64_decode("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=");
  std::string der = std::string("\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x70\x04\x22\x04\x20", 16) + *seed;
  std::string b64 = base64_encode(der);
  return "-----BEGIN PRIVATE KEY-----\n" + b64 + "\n-----END PRIVATE KEY-----\n";
}

const char* kRsaPem =
    "-----BEGIN RSA PRIVATE KEY-----\n"
    "MIICXQIBAAKBgQDkHlOQoBTzWRiGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQi\n"
    "Y/J16JYi0Qvx/byYzCNb3W91y3FutACDfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqM\n"
    "KrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3Ip3G+2kryOTIKT+l/K4w3QIDAQAB\n"
    "AoGAH0cxOhFZDgzXWhDhnAJDw5s4roOXN4OhjiXa8W7Y3rhX3FJqmJSPuC8N9vQm\n"
    "6SVbaLAE4SG5mLMueHlh4KXffEpuLEiNp9Ss3O4YfLiQpbRqE7Tm5SxKjvvQoZZe\n"
    "zHorimOaChRL2it47iuWxzxSiRMv4c+j70GiWdxXnxe4UoECQQDzJB/0U58W7RZy\n"
    "6enGVj2kWF732CoWFZWzi1FicudrBFoy63QwcowpoCazKtvZGMNlPWnC7x/6o8Gc\n"
    "uSe0ga2xAkEA8C7PipPm1/1fTRQvj1o/dDmZp243044ZNyxjg+/OPN0oWCbXIGxy\n"
    "WvmZbXriOWoSALJTjExEgraHEgnXssuk7QJBALl5ICsYMu6hMxO73gnfNayNgPxd\n"
    "WFV6Z7ULnKyV7HSVYF0hgYOHjeYe9gaMtiJYoo0zGN+L3AAtNP9huqkWlzECQE1a\n"
    "licIeVlo1e+qJ6Mgqr0Q7Aa7falZ448ccbSFYEPD6oFxiOl9Y9se9iYHZKKfIcst\n"
    "o7DUw1/hz2Ck4N5JrgUCQQCyKveNvjzkkd8HjYs0SwM0fPjK16//5qDZ2UiDGnOe\n"
    "uEzxBDAr518Z8VFbR41in3W4Y3yCDgQlLlcETrS+zYcL\n"
    "-----END RSA PRIVATE KEY-----\n";

const std::string kHeaders =
    "From: Joe SixPack <joe@football.example.com>\r\n"
    "To: Suzie Q <suzie@shopping.example.net>\r\n"
    "Subject: Is dinner ready?\r\n"
    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n";
const std::string kBody = "Hi.\r\n\r\nWe lost the game.  Are you hungry yet?\r\n\r\nJoe.\r\n\r\n";
const std::string kMessage = kHeaders + "\r\n" + kBody;

// The canonical signed fields of the Appendix A message (h=from:to:subject:date:message-id, the
// over-signed names add nothing).
std::string canonical_rfc_headers() {
  return "from:Joe SixPack <joe@football.example.com>\r\n"
         "to:Suzie Q <suzie@shopping.example.net>\r\n"
         "subject:Is dinner ready?\r\n"
         "date:Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
         "message-id:<20030712040037.46341.5F8J@football.example.com>\r\n";
}

EVP_PKEY* read_pem(const std::string& pem) {
  BIO* bio = BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size()));
  EVP_PKEY* k = PEM_read_bio_PrivateKey(bio, nullptr, nullptr, nullptr);
  BIO_free(bio);
  return k;
}

// Verifies a DKIM b= value over `input` with OpenSSL alone (not through the code under test).
bool ossl_verify(EVP_PKEY* key, bool ed, std::string_view input, const std::string& b64sig) {
  auto sig = base64_decode(b64sig);
  if (!sig) return false;
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned mdlen = 0;
  if (ed) {
    EVP_Digest(input.data(), input.size(), md, &mdlen, EVP_sha256(), nullptr);
    input = std::string_view(reinterpret_cast<char*>(md), mdlen);
  }
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = EVP_DigestVerifyInit(ctx, nullptr, ed ? nullptr : EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx, reinterpret_cast<const unsigned char*>(sig->data()), sig->size(),
                             reinterpret_cast<const unsigned char*>(input.data()), input.size()) == 1;
  EVP_MD_CTX_free(ctx);
  return ok;
}

TEST(Rfc8463, KeysGiveTheDnsRecordsOfAppendixA2) {
  auto ed = Key::from_pem(ed25519_pem());
  ASSERT_TRUE(ed) << ed.error();
  EXPECT_EQ(ed->algorithm(), Algorithm::ed25519_sha256);
  EXPECT_EQ(ed->dns_record(), "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=");
  auto rsa = Key::from_pem(kRsaPem);
  ASSERT_TRUE(rsa) << rsa.error();
  EXPECT_EQ(rsa->algorithm(), Algorithm::rsa_sha256);
  EXPECT_EQ(rsa->dns_record(),
            "v=DKIM1; k=rsa; p=MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDkHlOQoBTzWR"
            "iGs5V6NpP3idY6Wk08a5qhdR6wy5bdOKb2jLQiY/J16JYi0Qvx/byYzCNb3W91y3FutAC"
            "DfzwQ/BC/e/8uBsCR+yz1Lxj+PL6lHvqMKrM3rG4hstT5QjvHO9PzoxZyVYLzBfO2EeC3"
            "Ip3G+2kryOTIKT+l/K4w3QIDAQAB");
}

TEST(Rfc8463, AppendixA3SignaturesVerifyOverOurCanonicalization) {
  EXPECT_EQ(sha256_b64(relaxed_body(kBody)), "2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=");
  std::string ed_field =
      " v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n d=football.example.com; i=@football.example.com;\r\n"
      " q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n subject : date : message-id : from : subject : date;\r\n"
      " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n b=";
  std::string ed_input = canonical_rfc_headers() + relaxed_header("DKIM-Signature", ed_field);
  EVP_PKEY* ed = read_pem(ed25519_pem());
  ASSERT_TRUE(ed);
  const std::string ed_b = "/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11BusFa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==";
  EXPECT_TRUE(ossl_verify(ed, true, ed_input, ed_b));
  EXPECT_FALSE(ossl_verify(ed, true, ed_input + "x", ed_b));
  EVP_PKEY_free(ed);

  std::string rsa_field =
      " v=1; a=rsa-sha256; c=relaxed/relaxed;\r\n d=football.example.com; i=@football.example.com;\r\n"
      " q=dns/txt; s=test; t=1528637909; h=from : to : subject :\r\n date : message-id : from : subject : date;\r\n"
      " bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n b=";
  EVP_PKEY* rsa = read_pem(kRsaPem);
  ASSERT_TRUE(rsa);
  EXPECT_TRUE(ossl_verify(rsa, false, canonical_rfc_headers() + relaxed_header("DKIM-Signature", rsa_field),
                          "F45dVWDfMbQDGHJFlXUNB2HKfbCeLRyhDXgFpEL8GwpsRe0IeIixNTe3DhCVlUrSjV4BwcVcOF6+FF3Zo9Rpo1tFOeS9mPYQTnGd"
                          "aSGsgeefOsk2JzdA+L10TeYt9BgDfQNZtKdN1WO//KgIqXP7OdEFE4LjFYNcUxZQ4FADY+8="));
  EVP_PKEY_free(rsa);
}

// Splits our DKIM-Signature field into the value with b= emptied and the b= value.
std::pair<std::string, std::string> split_b(const std::string& field) {
  EXPECT_TRUE(field.starts_with("DKIM-Signature:"));
  EXPECT_TRUE(field.ends_with("\r\n"));
  std::string value = field.substr(15, field.size() - 17);
  std::smatch m;
  EXPECT_TRUE(std::regex_search(value, m, std::regex("([ \t;]b=)([^;]*)$")));
  std::string b = m[2].str();
  std::erase_if(b, [](char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n'; });
  return {value.substr(0, static_cast<std::size_t>(m.position(2))), b};
}

void expect_verifies(const std::string& pem, bool ed, const std::string& message, const std::string& canonical) {
  auto key = Key::from_pem(pem);
  ASSERT_TRUE(key) << key.error();
  auto field = sign({"football.example.com", "brisbane", *key}, message, 1528637909);
  ASSERT_TRUE(field) << field.error();
  for (auto line_end = field->find("\r\n"); line_end != std::string::npos; line_end = field->find("\r\n", line_end + 2)) {
    auto start = field->rfind('\n', line_end - 1);
    EXPECT_LE(line_end - (start == std::string::npos ? 0 : start + 1), 80u) << *field;  // folded
  }
  std::string unfolded = std::regex_replace(*field, std::regex("\r\n\t"), "");
  EXPECT_NE(unfolded.find(ed ? "a=ed25519-sha256;" : "a=rsa-sha256;"), std::string::npos);
  EXPECT_NE(unfolded.find("h=from:to:subject:date:message-id:from;"), std::string::npos) << *field;
  EXPECT_NE(unfolded.find("bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;"), std::string::npos);
  EXPECT_NE(unfolded.find("t=1528637909;"), std::string::npos);
  EXPECT_EQ(unfolded.find(" l="), std::string::npos);
  auto [value, b] = split_b(*field);
  EVP_PKEY* k = read_pem(pem);
  EXPECT_TRUE(ossl_verify(k, ed, canonical + relaxed_header("DKIM-Signature", value), b)) << *field;
  EVP_PKEY_free(k);
  auto again = sign({"football.example.com", "brisbane", *key}, message, 1528637909);
  EXPECT_EQ(*again, *field);  // Ed25519 and PKCS#1 v1.5 are deterministic
}

TEST(Sign, Ed25519VerifiesWithOpenSsl) { expect_verifies(ed25519_pem(), true, kMessage, canonical_rfc_headers()); }

TEST(Sign, RsaVerifiesWithOpenSsl) { expect_verifies(kRsaPem, false, kMessage, canonical_rfc_headers()); }

TEST(Sign, PicksTheLastInstanceAndIgnoresOtherFields) {
  std::string msg = "Received: x\r\nTo: first@x\r\nFROM :  Joe  <joe@football.example.com>\r\nX-Other: y\r\n"
                    "To: Suzie Q <suzie@shopping.example.net>\r\nSubject: Is dinner\r\n ready?\r\n"
                    "Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
                    "Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n\r\n" + kBody;
  std::string canonical = "from:Joe <joe@football.example.com>\r\n"
                          "to:Suzie Q <suzie@shopping.example.net>\r\n"
                          "subject:Is dinner ready?\r\n"
                          "date:Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
                          "message-id:<20030712040037.46341.5F8J@football.example.com>\r\n";
  expect_verifies(ed25519_pem(), true, msg, canonical);
}

TEST(Sign, Errors) {
  auto key = Key::from_pem(ed25519_pem());
  ASSERT_TRUE(key);
  auto no_from = sign({"a.test", "s", *key}, "To: x@y\r\n\r\nbody\r\n", 1);
  ASSERT_FALSE(no_from);
  EXPECT_NE(no_from.error().find("no From"), std::string::npos);
  EXPECT_FALSE(sign({"a.test; x=y", "s", *key}, kMessage, 1));
  EXPECT_FALSE(sign({"a.test", "s;", *key}, kMessage, 1));
  EXPECT_FALSE(sign({"a.test", "s", Key{}}, kMessage, 1));
}

TEST(Key, BadPemIsAnError) {
  auto k = Key::from_pem("-----BEGIN PRIVATE KEY-----\nnot base64 at all\n-----END PRIVATE KEY-----\n");
  ASSERT_FALSE(k);
  EXPECT_NE(k.error().find("not a PEM private key"), std::string::npos) << k.error();
  EXPECT_FALSE(Key::from_pem(""));
  auto missing = Key::load("/nonexistent/dkim.pem");
  ASSERT_FALSE(missing);
  EXPECT_NE(missing.error().find("/nonexistent/dkim.pem"), std::string::npos);
}

TEST(Key, GenerateRoundTrips) {
  for (auto alg : {Algorithm::ed25519_sha256, Algorithm::rsa_sha256}) {
    auto pem = generate_key_pem(alg, 1024);
    ASSERT_TRUE(pem) << pem.error();
    EXPECT_TRUE(pem->starts_with("-----BEGIN PRIVATE KEY-----"));
    auto key = Key::from_pem(*pem);
    ASSERT_TRUE(key) << key.error();
    EXPECT_EQ(key->algorithm(), alg);
    EXPECT_TRUE(key->dns_record().starts_with(alg == Algorithm::rsa_sha256 ? "v=DKIM1; k=rsa; p=MI" : "v=DKIM1; k=ed25519; p="));
  }
  EXPECT_FALSE(generate_key_pem(Algorithm::rsa_sha256, 512));
}

}  // namespace
}  // namespace buzon::dkim
