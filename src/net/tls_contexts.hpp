// net/tls_contexts.hpp — (internal to net/tls_*) one immutable set of OpenSSL contexts: the
// default certificate's and one per SNI entry. The default context's servername callback points
// at this object, so a handshake keeps it alive (TlsStream holds a shared_ptr).
#pragma once

#include <asio/ssl/context.hpp>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

namespace buzon::net {

struct TlsContexts {
  struct Named {
    std::vector<std::string> patterns;  // lower case
    std::unique_ptr<asio::ssl::context> ctx;
  };
  std::unique_ptr<asio::ssl::context> main;
  std::vector<Named> sni;
  std::vector<std::string> descriptions;  // per certificate, for logs
  std::chrono::milliseconds handshake_timeout{30'000};
};

}  // namespace buzon::net
