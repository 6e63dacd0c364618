// store/maildrop.cpp — names for the store's error classes (see maildrop.hpp).
//
// SECURITY  No input.
// STANDARDS None.
// LIMITS    None.
#include "store/maildrop.hpp"

namespace buzon::store {

std::string_view to_string(StoreErrc c) {
  switch (c) {
    case StoreErrc::temp: return "temporary failure";
    case StoreErrc::perm: return "permanent failure";
    case StoreErrc::in_use: return "in use";
    case StoreErrc::not_found: return "not found";
    case StoreErrc::too_big: return "too big";
    case StoreErrc::quota: return "over quota";
    case StoreErrc::no_space: return "no space";
  }
  return "unknown";
}

}  // namespace buzon::store
