// fuzz/dkim_canon.cpp — DKIM relaxed canonicalization (RFC 6376 §3.4.2, §3.4.4) and signing of
// arbitrary messages (the submitted message is untrusted text).
//
// Input: [options octet] then the bytes. Options bit 0: also sign the bytes as a message with a
// fixed Ed25519 key (generated once). The bytes are split at the first ':' into a header name and
// value for relaxed_header; the whole is a body for relaxed_body.
//
// Invariants beyond "no crash, no UB, no leak, no hang":
//  - relaxed_body equals a straightforward reference (split at LF, drop a CR before the LF, WSP
//    runs -> one SP, no WSP at line ends, trailing empty lines removed, CRLF line ends);
//  - it is idempotent, and the same whether the input's lines end in CRLF or LF;
//  - its output is empty or ends in exactly one CRLF after a non-empty line; no tab, no double
//    space, no SP before a CRLF;
//  - relaxed_header: lower-case name, ':', the value unfolded (no CR/LF), no WSP right after
//    the colon or at the end, no tab, no double space; idempotent on its own value;
//  - sign() fails only for a message without a From field (RFC 6376 §5.4), and otherwise returns
//    one "DKIM-Signature: " field ending in CRLF whose continuation lines are folded.
#include "dkim/dkim.hpp"

#include "fuzz_check.hpp"

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

using namespace buzon;

namespace {

bool wsp(char c) { return c == ' ' || c == '\t'; }

std::string reference_body(std::string_view body) {
  std::string out;
  std::string pending;  // empty lines held back
  std::size_t pos = 0;
  while (pos < body.size()) {
    auto eol = body.find('\n', pos);
    std::string line(body.substr(pos, eol == std::string_view::npos ? std::string_view::npos : eol - pos));
    pos = eol == std::string_view::npos ? body.size() : eol + 1;
    if (eol != std::string_view::npos && !line.empty() && line.back() == '\r') line.pop_back();
    std::string c;
    for (char ch : line) {
      if (wsp(ch)) {
        if (c.empty() || c.back() != ' ') c.push_back(' ');
      } else {
        c.push_back(ch);
      }
    }
    if (!c.empty() && c.back() == ' ') c.pop_back();
    if (c.empty()) {
      pending += "\r\n";
      continue;
    }
    out += pending;
    pending.clear();
    out += c + "\r\n";
  }
  return out;
}

const dkim::Signer* signer() {
  static std::optional<dkim::Signer> s = [] () -> std::optional<dkim::Signer> {
    auto pem = dkim::generate_key_pem(dkim::Algorithm::ed25519_sha256);
    if (!pem) return std::nullopt;
    auto key = dkim::Key::from_pem(*pem);
    if (!key) return std::nullopt;
    return dkim::Signer{"example.org", "s1", *key};
  }();
  return s ? &*s : nullptr;
}

}  // namespace

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  FUZZ_CHECK(signer() != nullptr, "an Ed25519 key can be generated");
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size < 1) return 0;
  const std::uint8_t opt = data[0];
  const std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);

  const std::string body = dkim::relaxed_body(in);
  FUZZ_CHECK(body == reference_body(in), "relaxed_body equals the reference");
  FUZZ_CHECK(dkim::relaxed_body(body) == body, "relaxed_body is idempotent");
  // The same body with LF line ends, where dropping the CR of each CRLF makes no new CRLF: in
  // "\r\r\n" the first CR is data before the line end, but without the second one it would form
  // a line end itself (the fuzzer found that the property, not the code, was wrong there).
  if (in.find("\r\r\n") == std::string_view::npos) {
    std::string lf;
    for (std::size_t i = 0; i < in.size(); ++i)
      if (!(in[i] == '\r' && i + 1 < in.size() && in[i + 1] == '\n')) lf.push_back(in[i]);
    FUZZ_CHECK(dkim::relaxed_body(lf) == body, "CRLF and LF line ends canonicalize alike");
  }
  if (!body.empty()) {
    FUZZ_CHECK(body.ends_with("\r\n") && !body.ends_with("\r\n\r\n") && body != "\r\n",
               "the body ends in one CRLF after a non-empty line");
  }
  FUZZ_CHECK(body.find('\t') == std::string::npos, "no tab in a relaxed body");
  FUZZ_CHECK(body.find("  ") == std::string::npos, "no double space in a relaxed body");
  FUZZ_CHECK(body.find(" \r\n") == std::string::npos, "no space before a line end");

  const auto colon = in.find(':');
  const std::string_view name = in.substr(0, colon == std::string_view::npos ? in.size() : colon);
  const std::string_view value = colon == std::string_view::npos ? std::string_view{} : in.substr(colon + 1);
  const std::string h = dkim::relaxed_header(name, value);
  const auto hc = h.find(':');
  FUZZ_CHECK(hc != std::string::npos, "a relaxed header has a colon");
  for (std::size_t i = 0; i < hc && i < name.size(); ++i)
    FUZZ_CHECK(!(h[i] >= 'A' && h[i] <= 'Z'), "the name is lower case");
  if (name.find(':') == std::string_view::npos) {
    const std::string_view v = std::string_view(h).substr(hc + 1);
    FUZZ_CHECK(v.find('\r') == std::string_view::npos && v.find('\n') == std::string_view::npos,
               "the value is unfolded");
    FUZZ_CHECK(v.empty() || (!wsp(v.front()) && !wsp(v.back())), "no WSP after the colon or at the end");
    FUZZ_CHECK(v.find('\t') == std::string_view::npos && v.find("  ") == std::string_view::npos,
               "WSP runs are one SP");
    FUZZ_CHECK(dkim::relaxed_header("x", v) == "x:" + std::string(v), "relaxed_header is idempotent on its value");
  }

  if (opt & 1) {
    auto sig = dkim::sign(*signer(), in, 1795737600);
    if (!sig) {
      FUZZ_CHECK(sig.error().find("no From field") != std::string::npos,
                 "signing fails only for a message without From (RFC 6376 5.4)");
      return 0;
    }
    FUZZ_CHECK(sig->starts_with("DKIM-Signature: ") && sig->ends_with("\r\n"), "one DKIM-Signature field");
    for (std::size_t i = 0; i + 2 < sig->size(); ++i)
      if ((*sig)[i] == '\n') FUZZ_CHECK((*sig)[i + 1] == '\t' || (*sig)[i + 1] == ' ', "continuation lines are folded");
  }
  return 0;
}
