// auth/password_test.cpp — password schemes against vectors made by real tools (mkpasswd from the
// whois package 5.5.17, doveadm pw from Dovecot 2.3.19.1 on Debian 12), round trips, malformed
// input, the RFC 1939 APOP example, and (when doveadm is installed) Dovecot verifying our hashes.

#include "auth/password.hpp"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

namespace buzon::auth {
namespace {

struct Vector {
  const char* stored;
  const char* password;
  const char* made_by;
};

// Each line was produced once by the command in `made_by` and pasted here (salts are random, so
// re-running the command gives another, equally valid, value).
const Vector kVectors[] = {
    // mkpasswd (whois 5.5.17) prints a bare crypt(3) string; Dovecot reads a bare string as CRYPT.
    {"$6$LnRR8c4j4eWVsNrd$TJ94GUMkPwoEmOyOAtlXsUjrqwJidZAAyPhLVB1dlXhN6NAMz4mDlI3ry/aMjamkJq86MLYwJ.0NYR/r2ony6.", "pass",
     "mkpasswd -m sha-512 pass"},
    {"{SHA512-CRYPT}$6$LnRR8c4j4eWVsNrd$TJ94GUMkPwoEmOyOAtlXsUjrqwJidZAAyPhLVB1dlXhN6NAMz4mDlI3ry/aMjamkJq86MLYwJ.0NYR/"
     "r2ony6.",
     "pass", "mkpasswd -m sha-512 pass, with the {SHA512-CRYPT} prefix added"},
    {"$5$Qvwdh.gRcgHTDhU6$8RqIwQl.iIoTbAGoSJqwyQv0b4Y/7ANBKDn8KiJv/74", "pass", "mkpasswd -m sha-256 pass"},
    {"{SHA256-CRYPT}$5$Qvwdh.gRcgHTDhU6$8RqIwQl.iIoTbAGoSJqwyQv0b4Y/7ANBKDn8KiJv/74", "pass",
     "mkpasswd -m sha-256 pass, with the {SHA256-CRYPT} prefix added"},
    {"$2b$05$WCJl4JfIVgx178n7KtNvWOpRZrUlhDhTN.xf557KKA8d9zt7bku/m", "pass", "mkpasswd -m bcrypt pass"},
    {"{BLF-CRYPT}$2b$05$WCJl4JfIVgx178n7KtNvWOpRZrUlhDhTN.xf557KKA8d9zt7bku/m", "pass",
     "mkpasswd -m bcrypt pass, with the {BLF-CRYPT} prefix added"},
    {"$y$j9T$7q1X5Hyi.qGICkQjg1mrt1$/rrcJbr7NOOREFG3ubeYZb2M21R0qr4DmuF6vXxfB9C", "pass",
     "mkpasswd pass (Debian's default method, yescrypt) — generic CRYPT"},
    {"$1$iUCpDJZk$fSUXYh8BUakFrvG5HbSiJ0", "pass", "mkpasswd -m md5crypt pass"},
    {"w/vSTREkStTbw", "pass", "mkpasswd -m descrypt pass"},
    {"{DES-CRYPT}w/vSTREkStTbw", "pass", "mkpasswd -m descrypt pass, with the {DES-CRYPT} prefix added"},
    // doveadm pw (Dovecot 2.3.19.1) runs without a config file for these.
    {"{SHA512-CRYPT}$6$NW5v4Wkw6pHwzROA$/44OxSaf6oeA3rlap54/lF5pIOY30WqG5UedAFRfSjdE7hm8WF1d28TIQ1TMfmrbpn9.9lXnMbhf2Mc3J."
     "ZJD/",
     "secret", "doveadm pw -s SHA512-CRYPT -p secret"},
    {"{SHA256-CRYPT}$5$8MsC5lMC7fzoFSyz$xoFPNm6p9chxXLHqihCEd7nsIL/2.8EUxbGiMBD9Ab0", "secret",
     "doveadm pw -s SHA256-CRYPT -p secret"},
    {"{BLF-CRYPT}$2y$05$mV9k6sAA4Mbp3dmx/jjbG.8qTKTDlLF00P/ErQHIGZaKp/bG835Ge", "secret",
     "doveadm pw -s BLF-CRYPT -p secret"},
    {"{CRYPT}$2y$05$CklGMiZRZZS7rsHXK47aSOTE2UwX7fsv.R0WdvrPDjaA4YcxtTeTG", "secret",
     "doveadm pw -s CRYPT -p secret (Dovecot 2.3 makes bcrypt for CRYPT)"},
    {"{MD5-CRYPT}$1$C/.ipv7l$Y1o8z8n/b.x8OiTG5l3sG1", "secret", "doveadm pw -s MD5-CRYPT -p secret"},
    {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$2uzcarhaGxBj+RimRP1uLA$aJjf1FHm6X7xiQK0ViKPzmbiA84ST3BlnL9F6OznzMQ",
     "secret", "doveadm pw -s ARGON2ID -p secret"},
    {"{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$frqXonKtEgEv1C6txsniAw$myhlixQ7zCBqMLAUbdiqOoqbm1yBWCaCmaxxR/g1sVM",
     "secret", "doveadm pw -s ARGON2I -p secret"},
    {"{PLAIN}secret", "secret", "doveadm pw -s PLAIN -p secret"},
    {"{SCRAM-SHA-256}4096,LHumZYalbUQxPG9IELuL3A==,0eikVICCHztuBOdTn8ZEVPacPXx6ujC1gjIevwC7QZQ=,"
     "qaCxTXT8p6MzcYwQabKLyLGFMK6wgFLqqW0YQXdWLNI=",
     "pencil", "doveadm pw -s SCRAM-SHA-256 -p pencil"},
    {"{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b", "tanstaaftanstaaf",
     "doveadm pw -s CRAM-MD5 -p tanstaaftanstaaf"},
    {"{CLEAR}secret", "secret", "doveadm pw -s CLEAR -p secret"},
    // UTF-8 password "pässwörd" (octets 70 c3 a4 73 73 77 c3 b6 72 64).
    {"{SHA512-CRYPT}$6$6X717vsrPMpgfoDh$7a1nElAjXZhKLQvgZUPOywyrTNqn5LgF4zBRAqJcCnNCC5dHXMY4YJEKWMpmmg87qMueyxMXAn3u5vZ."
     "nE8bv.",
     "p\xc3\xa4ssw\xc3\xb6rd", "doveadm pw -s SHA512-CRYPT -p 'pässwörd'"},
    {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$j8Vfu9GIfDprNGFecZl+Xg$zJdqkoiS4z+gIc2LLfAQo1oyI3WxK5nOlqXW1RZAXv4",
     "p\xc3\xa4ssw\xc3\xb6rd", "doveadm pw -s ARGON2ID -p 'pässwörd'"},
};

TEST(Password, KnownVectorsVerify) {
  for (const auto& v : kVectors) {
    SCOPED_TRACE(v.made_by);
    EXPECT_EQ(check_password(v.stored, v.password), VerifyResult::kMatch);
    EXPECT_TRUE(verify_password(v.stored, v.password));
  }
}

TEST(Password, KnownVectorsRejectWrongPassword) {
  for (const auto& v : kVectors) {
    SCOPED_TRACE(v.made_by);
    EXPECT_EQ(check_password(v.stored, "wrong"), VerifyResult::kMismatch);
    const std::string longer = std::string(v.password) + "x";
    EXPECT_FALSE(verify_password(v.stored, longer));
    const std::string shorter = std::string(v.password).substr(0, std::string(v.password).size() - 1);
    EXPECT_FALSE(verify_password(v.stored, shorter));
  }
}

TEST(Password, SchemeNamesAreCaseInsensitive) {
  EXPECT_TRUE(verify_password("{sha512-crypt}$6$NW5v4Wkw6pHwzROA$/44OxSaf6oeA3rlap54/lF5pIOY30WqG5UedAFRfSjdE7hm8WF1d28TIQ1T"
                              "Mfmrbpn9.9lXnMbhf2Mc3J.ZJD/",
                              "secret"));
  EXPECT_TRUE(verify_password("{plain}secret", "secret"));
  EXPECT_TRUE(verify_password("{CLEARTEXT}secret", "secret"));
}

TEST(Password, SchemeOf) {
  EXPECT_EQ(scheme_of("{SHA512-CRYPT}$6$x$y"), "SHA512-CRYPT");
  EXPECT_EQ(scheme_of("{argon2id}$argon2id$..."), "ARGON2ID");
  EXPECT_EQ(scheme_of("$6$abc$def"), "CRYPT");
  EXPECT_EQ(scheme_of("{SSHA512}abc"), "SSHA512");
  EXPECT_EQ(scheme_of("{broken"), "CRYPT");
  EXPECT_TRUE(can_verify_scheme("md5-crypt"));
  EXPECT_FALSE(can_hash_scheme("MD5-CRYPT"));
  EXPECT_TRUE(can_hash_scheme("blf-crypt"));
  EXPECT_FALSE(can_verify_scheme("SSHA512"));
}

// Every scheme hash_password() offers: the value has Dovecot's shape, verifies, rejects a wrong
// password, and two hashes of one password differ (fresh salt).
TEST(Password, RoundTripEveryScheme) {
  struct Case {
    const char* scheme;
    const char* prefix;
  };
  const Case cases[] = {
      {"PLAIN", "{PLAIN}"},
      {"CLEAR", "{CLEAR}"},
      {"CRYPT", "{CRYPT}$2y$10$"},
      {"SHA256-CRYPT", "{SHA256-CRYPT}$5$"},
      {"SHA512-CRYPT", "{SHA512-CRYPT}$6$"},
      {"sha512-crypt", "{SHA512-CRYPT}$6$"},
      {"BLF-CRYPT", "{BLF-CRYPT}$2y$10$"},
      {"ARGON2I", "{ARGON2I}$argon2i$v=19$m=32768,t=4,p=1$"},
      {"ARGON2ID", "{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$"},
      {"SCRAM-SHA-256", "{SCRAM-SHA-256}4096,"},
      {"CRAM-MD5", "{CRAM-MD5}"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.scheme);
    const auto h = hash_password("correct horse", c.scheme);
    ASSERT_TRUE(h.has_value()) << h.error();
    EXPECT_TRUE(h->starts_with(c.prefix)) << *h;
    EXPECT_EQ(check_password(*h, "correct horse"), VerifyResult::kMatch);
    EXPECT_EQ(check_password(*h, "correct horsf"), VerifyResult::kMismatch);
    EXPECT_FALSE(verify_password(*h, "correct"));
    const std::string_view sc(c.scheme);
    if (sc != "PLAIN" && sc != "CLEAR" && sc != "CRAM-MD5") {  // CRAM-MD5 is unsalted
      const auto again = hash_password("correct horse", c.scheme);
      ASSERT_TRUE(again.has_value());
      EXPECT_NE(*h, *again);
      EXPECT_EQ(plaintext_secret(*h), std::nullopt);
    }
  }
}

TEST(Password, HashPasswordErrors) {
  EXPECT_FALSE(hash_password("x", "SSHA512").has_value());
  EXPECT_FALSE(hash_password("x", "").has_value());
  EXPECT_FALSE(hash_password("x", "MD5-CRYPT").has_value());  // verify-only
  EXPECT_FALSE(hash_password("x", "DES-CRYPT").has_value());
  EXPECT_FALSE(hash_password("", "SHA512-CRYPT").has_value());
  EXPECT_FALSE(hash_password(std::string(kMaxPasswordLength + 1, 'a'), "SHA512-CRYPT").has_value());
  EXPECT_FALSE(hash_password(std::string("a\0b", 3), "SHA512-CRYPT").has_value());
  // A plaintext secret must fit in one passwd-file field.
  EXPECT_FALSE(hash_password("a:b", "PLAIN").has_value());
  EXPECT_FALSE(hash_password("a\nb", "PLAIN").has_value());
  EXPECT_TRUE(hash_password("a:b", "SHA512-CRYPT").has_value());
  EXPECT_TRUE(hash_password(std::string(kMaxPasswordLength, 'a'), "SHA512-CRYPT").has_value());
}

TEST(Password, MalformedStoredValuesNeverVerifyAndNeverCrash) {
  struct Case {
    std::string stored;
    VerifyResult want;
  };
  const std::vector<Case> cases = {
      {"{FOO}bar", VerifyResult::kUnknownScheme},
      {"{SSHA512}abcdef", VerifyResult::kUnknownScheme},
      {"{}secret", VerifyResult::kUnknownScheme},
      {"", VerifyResult::kNoPassword},
      {"{PLAIN}", VerifyResult::kNoPassword},
      {"{CRYPT}", VerifyResult::kNoPassword},
      {"{SHA512-CRYPT}", VerifyResult::kNoPassword},
      {"{ARGON2ID}", VerifyResult::kNoPassword},
      {"!$6$LnRR8c4j4eWVsNrd$TJ94GUMkPwoEmOyOAtlXsUjrqwJidZAAyPhLVB1dlXhN6NAMz4mDlI3ry/aMjamkJq86MLYwJ.0NYR/r2ony6.",
       VerifyResult::kNoPassword},
      {"*", VerifyResult::kNoPassword},
      {"*0", VerifyResult::kNoPassword},
      {"{", VerifyResult::kMalformed},
      {"x", VerifyResult::kMalformed},
      {"$6$", VerifyResult::kMismatch},  // libxcrypt: valid setting with an empty salt, just wrong
      {"{SHA512-CRYPT}$5$Qvwdh.gRcgHTDhU6$8RqIwQl.iIoTbAGoSJqwyQv0b4Y/7ANBKDn8KiJv/74", VerifyResult::kMalformed},
      {"{SHA256-CRYPT}$6$abc$def", VerifyResult::kMalformed},
      {"{BLF-CRYPT}$6$abc$def", VerifyResult::kMalformed},
      {"{BLF-CRYPT}$2y$99$mV9k6sAA4Mbp3dmx/jjbG.8qTKTDlLF00P/ErQHIGZaKp/bG835Ge", VerifyResult::kMalformed},
      {"{BLF-CRYPT}$2y$05$short", VerifyResult::kMalformed},
      {"{MD5-CRYPT}$6$abc$def", VerifyResult::kMalformed},
      {"{DES-CRYPT}toolong-des-value", VerifyResult::kMalformed},
      {"{CRYPT}$9$unknown$method", VerifyResult::kMalformed},
      {std::string("{CRYPT}$6$ab\0cd$ef", 18), VerifyResult::kMalformed},
      {"{CRYPT}" + std::string(500, 'a'), VerifyResult::kMalformed},
      {"{ARGON2ID}garbage", VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2id$", VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$", VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$$", VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$2uzcarhaGxBj+RimRP1uLA$", VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=1$!!!$aJjf1FHm6X7xiQK0ViKPzmbiA84ST3BlnL9F6OznzMQ",
       VerifyResult::kMalformed},
      // Costs above the bounds are refused before libargon2 allocates anything.
      {"{ARGON2ID}$argon2id$v=19$m=4294967295,t=3,p=1$2uzcarhaGxBj+RimRP1uLA$aJjf1FHm6X7xiQK0ViKPzmbiA84ST3BlnL9F6OznzMQ",
       VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2id$v=19$m=99999999999,t=3,p=1$2uzcarhaGxBj+RimRP1uLA$aJjf1FHm6X7xiQK0ViKPzmbiA84ST3BlnL9F6Ozn",
       VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2id$v=19$m=65536,t=100000,p=1$2uzcarhaGxBj+RimRP1uLA$aJjf1FHm6X7xiQK0ViKPzmbiA84ST3BlnL9F6OznzMQ",
       VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2id$v=19$m=65536,t=0,p=1$2uzcarhaGxBj+RimRP1uLA$aJjf1FHm6X7xiQK0ViKPzmbiA84ST3BlnL9F6OznzMQ",
       VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2id$v=19$m=65536,t=3,p=0$2uzcarhaGxBj+RimRP1uLA$aJjf1FHm6X7xiQK0ViKPzmbiA84ST3BlnL9F6OznzMQ",
       VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2id$v=19$m=7,t=3,p=1$2uzcarhaGxBj+RimRP1uLA$aJjf1FHm6X7xiQK0ViKPzmbiA84ST3BlnL9F6OznzMQ",
       VerifyResult::kMalformed},
      {"{ARGON2ID}$argon2d$v=19$m=65536,t=3,p=1$2uzcarhaGxBj+RimRP1uLA$aJjf1FHm6X7xiQK0ViKPzmbiA84ST3BlnL9F6OznzMQ",
       VerifyResult::kMalformed},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.stored);
    EXPECT_EQ(check_password(c.stored, "secret"), c.want) << to_string(check_password(c.stored, "secret"));
    EXPECT_FALSE(verify_password(c.stored, "secret"));
    EXPECT_FALSE(verify_password(c.stored, ""));
  }
}

TEST(Password, ArgonVariantComesFromTheStringAsInDovecot) {
  // libsodium (Dovecot) takes the variant from the PHC string, not from the {SCHEME}.
  EXPECT_TRUE(verify_password(
      "{ARGON2I}$argon2id$v=19$m=65536,t=3,p=1$2uzcarhaGxBj+RimRP1uLA$aJjf1FHm6X7xiQK0ViKPzmbiA84ST3BlnL9F6OznzMQ",
      "secret"));
}

TEST(Password, TypedPasswordLimits) {
  const char* stored = "{PLAIN}secret";
  EXPECT_EQ(check_password(stored, ""), VerifyResult::kPasswordRejected);
  EXPECT_EQ(check_password(stored, std::string("secret\0x", 8)), VerifyResult::kPasswordRejected);
  EXPECT_EQ(check_password(stored, std::string(kMaxPasswordLength + 1, 's')), VerifyResult::kPasswordRejected);
  // crypt(3) would stop at the NUL and accept "pass\0anything": refused before crypt sees it.
  EXPECT_FALSE(verify_password("$6$LnRR8c4j4eWVsNrd$TJ94GUMkPwoEmOyOAtlXsUjrqwJidZAAyPhLVB1dlXhN6NAMz4mDlI3ry/"
                               "aMjamkJq86MLYwJ.0NYR/r2ony6.",
                               std::string("pass\0anything", 13)));
  EXPECT_FALSE(to_string(VerifyResult::kUnknownScheme).empty());
}

TEST(Password, PlaintextSecretOnlyForPlainSchemes) {
  EXPECT_EQ(plaintext_secret("{PLAIN}tanstaaf"), "tanstaaf");
  EXPECT_EQ(plaintext_secret("{CLEAR}tanstaaf"), "tanstaaf");
  EXPECT_EQ(plaintext_secret("{cleartext}tanstaaf"), "tanstaaf");
  EXPECT_EQ(plaintext_secret("{PLAIN}"), std::nullopt);
  EXPECT_EQ(plaintext_secret("tanstaaf"), std::nullopt);  // no prefix = CRYPT
  EXPECT_EQ(plaintext_secret("{SHA512-CRYPT}$6$x$y"), std::nullopt);
  EXPECT_EQ(plaintext_secret("{FOO}tanstaaf"), std::nullopt);
}

TEST(Password, ApopDigestRfc1939Example) {
  // RFC 1939 §7: "APOP mrose c4c9334bac560ecc979e58001b3e22fb" for this banner and secret.
  EXPECT_EQ(apop_digest("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf"), "c4c9334bac560ecc979e58001b3e22fb");
  EXPECT_TRUE(verify_apop("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf", "c4c9334bac560ecc979e58001b3e22fb"));
  EXPECT_TRUE(verify_apop("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf", "C4C9334BAC560ECC979E58001B3E22FB"));
  EXPECT_FALSE(verify_apop("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf", "c4c9334bac560ecc979e58001b3e22fc"));
  EXPECT_FALSE(verify_apop("<1896.697170952@dbc.mtview.ca.us>", "tanstaaX", "c4c9334bac560ecc979e58001b3e22fb"));
  EXPECT_FALSE(verify_apop("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf", "c4c9334bac560ecc979e58001b3e22f"));
  EXPECT_FALSE(verify_apop("<1896.697170952@dbc.mtview.ca.us>", "tanstaaf", ""));
  EXPECT_FALSE(verify_apop("<1.2@x>", "", apop_digest("<1.2@x>", "")));
}

TEST(Password, ConstantTimeEqual) {
  EXPECT_TRUE(constant_time_equal("", ""));
  EXPECT_TRUE(constant_time_equal("abc", "abc"));
  EXPECT_FALSE(constant_time_equal("abc", "abd"));
  EXPECT_FALSE(constant_time_equal("abc", "abcd"));
  EXPECT_FALSE(constant_time_equal("abc", ""));
  EXPECT_TRUE(constant_time_equal(std::string("a\0b", 3), std::string("a\0b", 3)));
  EXPECT_FALSE(constant_time_equal(std::string("a\0b", 3), std::string("a\0c", 3)));
}

TEST(Password, DummyNeverMatches) {
  EXPECT_FALSE(verify_dummy("buzon-dummy-password-never-matches"));
  EXPECT_FALSE(verify_dummy(""));
}

TEST(Password, ConcurrentVerificationIsThreadSafe) {
  std::vector<std::thread> threads;
  std::atomic<int> failures = 0;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 5; ++i) {
        for (const auto& v : {kVectors[0], kVectors[2], kVectors[7], kVectors[10]}) {
          if (!verify_password(v.stored, v.password) || verify_password(v.stored, "nope")) ++failures;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(failures.load(), 0);
}

// Dovecot must accept what buzon writes: `doveadm pw -t HASH -p PASSWORD` exits 0 when verified.
// Skipped where Dovecot is not installed.
int doveadm_verifies(const std::string& stored, const std::string& password) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int devnull = ::open("/dev/null", O_RDWR);
    ::dup2(devnull, 1);
    ::dup2(devnull, 2);
    ::execl("/usr/bin/doveadm", "doveadm", "pw", "-t", stored.c_str(), "-p", password.c_str(),
            static_cast<char*>(nullptr));
    ::_exit(127);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(Password, ScramSecretFromStoredScramOrPlaintextOnly) {
  // The doveadm vector above: the keys come out as stored.
  auto s = scram_secret(
      "{SCRAM-SHA-256}4096,LHumZYalbUQxPG9IELuL3A==,0eikVICCHztuBOdTn8ZEVPacPXx6ujC1gjIevwC7QZQ=,"
      "qaCxTXT8p6MzcYwQabKLyLGFMK6wgFLqqW0YQXdWLNI=");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->iterations, 4096u);
  EXPECT_EQ(s->salt.size(), 16u);
  EXPECT_EQ(s->stored_key.size(), 32u);
  // From a plaintext secret: a fresh salt each time, keys that match a SCRAM hash of the same
  // password made with that salt.
  auto a = scram_secret("{PLAIN}pencil");
  auto b = scram_secret("{PLAIN}pencil");
  ASSERT_TRUE(a && b);
  EXPECT_NE(a->salt, b->salt);
  EXPECT_NE(a->stored_key, b->stored_key);
  // Hashes cannot give SCRAM keys; malformed values give nothing.
  EXPECT_FALSE(scram_secret(*hash_password("pencil", "SHA512-CRYPT")));
  EXPECT_FALSE(scram_secret("{SCRAM-SHA-256}4096,AAAA,short,short"));
  EXPECT_FALSE(scram_secret("{SCRAM-SHA-256}0,LHumZYalbUQxPG9IELuL3A==,0eikVICCHztuBOdTn8ZEVPacPXx6ujC1gjIevwC7QZQ=,"
                            "qaCxTXT8p6MzcYwQabKLyLGFMK6wgFLqqW0YQXdWLNI="));
  EXPECT_FALSE(scram_secret("{SCRAM-SHA-256}99999999,LHumZYalbUQxPG9IELuL3A==,0eikVICCHztuBOdTn8ZEVPacPXx6ujC1gjIevwC7"
                            "QZQ=,qaCxTXT8p6MzcYwQabKLyLGFMK6wgFLqqW0YQXdWLNI="));
  EXPECT_FALSE(scram_secret("{SCRAM-SHA-256}4096,LHumZYalbUQxPG9IELuL3A=="));
  EXPECT_FALSE(scram_secret("{PLAIN}"));
  EXPECT_EQ(check_password("{SCRAM-SHA-256}4096,x,y", "pencil"), VerifyResult::kMalformed);
}

TEST(Password, CramMd5Rfc2195WithPlaintextOrDovecotContext) {
  // RFC 2195 §2: secret "tanstaaftanstaaf", challenge below, digest b913a602c7eda7a495b4e6e7334d3890.
  const std::string challenge = "<1896.697170952@postoffice.reston.mci.net>";
  const std::string digest = "b913a602c7eda7a495b4e6e7334d3890";
  const std::string dovecot = "{CRAM-MD5}d06d4e1b26fccaa4b0b61801132340a354b21152711fb604ca3e035e7015116b";
  EXPECT_EQ(verify_cram_md5("{PLAIN}tanstaaftanstaaf", challenge, digest), VerifyResult::kMatch);
  EXPECT_EQ(verify_cram_md5(dovecot, challenge, digest), VerifyResult::kMatch);
  EXPECT_EQ(verify_cram_md5(dovecot, challenge, "B913A602C7EDA7A495B4E6E7334D3890"), VerifyResult::kMatch);
  EXPECT_EQ(*hash_password("tanstaaftanstaaf", "CRAM-MD5"), dovecot);  // byte-identical to doveadm's
  EXPECT_EQ(verify_cram_md5(dovecot, challenge, "b913a602c7eda7a495b4e6e7334d3891"), VerifyResult::kMismatch);
  EXPECT_EQ(verify_cram_md5(dovecot, "<other@x>", digest), VerifyResult::kMismatch);
  EXPECT_EQ(verify_cram_md5(*hash_password("tanstaaftanstaaf", "SHA512-CRYPT"), challenge, digest),
            VerifyResult::kUnknownScheme);
  EXPECT_EQ(verify_cram_md5("{CRAM-MD5}abcd", challenge, digest), VerifyResult::kMalformed);
  // A secret longer than an MD5 block is hashed first (RFC 2104 §2): context and HMAC agree.
  const std::string long_secret(100, 'k');
  const auto h = hash_password(long_secret, "CRAM-MD5");
  ASSERT_TRUE(h);
  unsigned char mac[16];
  unsigned int len = 0;
  const std::string msg = "<1.2@x>";
  HMAC(EVP_md5(), long_secret.data(), static_cast<int>(long_secret.size()),
       reinterpret_cast<const unsigned char*>(msg.data()), msg.size(), mac, &len);
  std::string hex;
  for (unsigned i = 0; i < len; ++i) hex += fmt::format("{:02x}", mac[i]);
  EXPECT_EQ(verify_cram_md5(*h, msg, hex), VerifyResult::kMatch);
  EXPECT_EQ(verify_cram_md5("{PLAIN}" + long_secret, msg, hex), VerifyResult::kMatch);
}

TEST(Password, DovecotVerifiesOurHashes) {
  if (::access("/usr/bin/doveadm", X_OK) != 0) GTEST_SKIP() << "doveadm not installed";
  for (const char* scheme : {"PLAIN", "CRYPT", "SHA256-CRYPT", "SHA512-CRYPT", "BLF-CRYPT", "ARGON2I", "ARGON2ID",
                             "SCRAM-SHA-256", "CRAM-MD5"}) {
    SCOPED_TRACE(scheme);
    const auto h = hash_password("s3cret p\xc3\xa4ss", scheme);
    ASSERT_TRUE(h.has_value()) << h.error();
    EXPECT_EQ(doveadm_verifies(*h, "s3cret p\xc3\xa4ss"), 0) << *h;
    EXPECT_NE(doveadm_verifies(*h, "wrong"), 0) << *h;
  }
}

}  // namespace
}  // namespace buzon::auth
