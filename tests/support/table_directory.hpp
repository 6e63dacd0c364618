// tests/support/table_directory.hpp — an auth::Directory from a table in memory: users added by
// name (with a password and Dovecot quota rules if a test needs them), for session and policy tests.
#pragma once

#include "auth/directory.hpp"

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::test {

class TableDirectory final : public auth::Directory {
 public:
  void add(std::string name, std::vector<std::string> quota_rules = {}, std::string password = "{PLAIN}x") {
    auto& u = users_[name];
    u = auth::User{name, std::move(password)};
    u.quota_rules = std::move(quota_rules);
  }
  std::optional<auth::User> lookup(std::string_view name) const override {
    auto it = users_.find(std::string(name));
    if (it == users_.end()) return std::nullopt;
    return it->second;
  }

 private:
  std::map<std::string, auth::User> users_;
};

}  // namespace buzon::test
