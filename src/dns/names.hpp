// dns/names.hpp — host name validation for names that come from DNS answers or from addresses.
//
// SECURITY  A name that passes is only ASCII letters, digits, '-' and '.', in labels of 1..63
//           octets that neither start nor end with '-', at most 253 octets in all: no escapes, no
//           control characters, no empty label, so it is safe in logs, DSNs and as a TLS SNI name.
// STANDARDS RFC 1035 §2.3.1 (LDH), RFC 1123 §2.1 (labels may start with a digit).
#pragma once

#include <optional>
#include <string>
#include <string_view>

namespace buzon::dns {

// The canonical form (lower case, trailing dot removed) of a valid host name; nullopt otherwise.
std::optional<std::string> normalize_hostname(std::string_view name);

}  // namespace buzon::dns
