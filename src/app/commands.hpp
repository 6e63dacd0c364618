#pragma once

#include <string>

namespace buzon::app {

inline constexpr const char* kVersion = "0.1.0";

struct Options {
  std::string config = "var/buzon.toml";
};

struct UserOptions {
  std::string name;
  std::string password_file;
  std::string scheme;
};

int cmd_serve(const Options& opt);
int cmd_doctor(const Options& opt);
int cmd_user_add(const Options& opt, const UserOptions& u);
int cmd_user_passwd(const Options& opt, const UserOptions& u);
int cmd_user_del(const Options& opt, const UserOptions& u);
int cmd_user_list(const Options& opt);
int cmd_user_show(const Options& opt, const UserOptions& u);

}  // namespace buzon::app
