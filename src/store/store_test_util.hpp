// store/store_test_util.hpp — helpers shared by the store tests (temporary directories, reading a
// MessageReader to the end). Test-only; not part of buzon_store.
//
// SECURITY  Tests only.
// STANDARDS None.
// LIMITS    None.
#pragma once

#include <gtest/gtest.h>

#include <stdlib.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "store/maildrop.hpp"

namespace buzon::store::testing {

// A fresh directory under $TMPDIR (or /tmp), removed with its contents on destruction.
class TempDir {
 public:
  TempDir() {
    const char* base = std::getenv("TMPDIR");
    std::string templ = std::string(base != nullptr && *base != '\0' ? base : "/tmp") +
                        "/buzon-store-test-XXXXXX";
    std::vector<char> buf(templ.begin(), templ.end());
    buf.push_back('\0');
    if (::mkdtemp(buf.data()) == nullptr) throw std::runtime_error("mkdtemp failed");
    path_ = buf.data();
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

inline void write_file(const std::string& path, std::string_view data) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!f) throw std::runtime_error("write_file failed: " + path);
}

inline std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::ostringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Names of the entries of a directory (no "." and "..").
inline std::vector<std::string> list_names(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    out.push_back(e.path().filename().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Reads message `i` completely with reads of `chunk` octets.
inline Result<std::string> read_message(Maildrop& drop, std::size_t i, std::size_t chunk = 4096) {
  auto reader = drop.open_message(i);
  if (!reader) return std::unexpected(reader.error());
  std::string out;
  std::vector<char> buf(chunk);
  for (;;) {
    auto n = (*reader)->read(buf);
    if (!n) return std::unexpected(n.error());
    if (*n == 0) break;
    out.append(buf.data(), *n);
  }
  return out;
}

inline std::vector<std::string> uidls_of(const Maildrop& drop) {
  std::vector<std::string> out;
  for (const auto& m : drop.messages()) out.push_back(m.uidl);
  return out;
}

}  // namespace buzon::store::testing
