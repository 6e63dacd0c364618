// dns/names.cpp — host name validation (see names.hpp).
#include "dns/names.hpp"

namespace buzon::dns {

std::optional<std::string> normalize_hostname(std::string_view name) {
  if (!name.empty() && name.back() == '.') name.remove_suffix(1);
  if (name.empty() || name.size() > 253) return std::nullopt;
  std::string out;
  out.reserve(name.size());
  std::size_t label = 0;
  char prev = '.';
  for (char c : name) {
    if (c == '.') {
      if (label == 0 || prev == '-') return std::nullopt;
      label = 0;
    } else {
      bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
      bool digit = c >= '0' && c <= '9';
      if (!alpha && !digit && c != '-') return std::nullopt;
      if (c == '-' && label == 0) return std::nullopt;
      if (++label > 63) return std::nullopt;
      if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
    }
    out.push_back(c);
    prev = c;
  }
  if (prev == '-') return std::nullopt;
  return out;
}

}  // namespace buzon::dns
