// proto/sasl/sasl_test_util.hpp — drives a client mechanism against a server mechanism in memory,
// answering the server's requests the way a session does (for the *_test.cpp files here).
#pragma once

#include "proto/sasl/cram_md5.hpp"
#include "proto/sasl/mechanism.hpp"
#include "proto/sasl/scram.hpp"

#include <map>
#include <string>
#include <variant>

namespace buzon::sasl::test {

struct Outcome {
  bool ok = false;
  std::optional<Errc> error;  // the server's Failure or the client's refusal
  std::string authcid, authzid;
  bool client_complete = false;
  int round_trips = 0;
};

// Users known to the "directory": name -> password. CRAM-MD5 and SCRAM use the password to build
// what a real store would hold.
inline Outcome drive(ClientMechanism& client, ServerMechanism& server, const std::map<std::string, std::string>& users,
                     bool use_initial = true) {
  Outcome out;
  std::optional<std::string> initial = use_initial ? client.initial() : std::nullopt;
  ServerStep step = server.start(initial ? std::optional<std::string_view>(*initial) : std::nullopt);
  for (int guard = 0; guard < 10; ++guard) {
    if (auto* c = std::get_if<Challenge>(&step)) {
      ++out.round_trips;
      auto r = client.respond(c->data);
      if (!r) {
        out.error = r.error();
        return out;
      }
      step = server.step(*r);
    } else if (auto* p = std::get_if<CheckPassword>(&step)) {
      auto it = users.find(p->authcid);
      out.ok = it != users.end() && it->second == p->password;
      if (!out.ok) out.error = Errc::bad_proof;
      out.authcid = p->authcid;
      out.authzid = p->authzid;
      out.client_complete = client.complete();
      return out;
    } else if (auto* d = std::get_if<CheckDigest>(&step)) {
      auto it = users.find(d->authcid);
      out.ok = it != users.end() && cram_md5_digest(it->second, d->challenge) == d->digest;
      if (!out.ok) out.error = Errc::bad_proof;
      out.authcid = d->authcid;
      out.client_complete = client.complete();
      return out;
    } else if (auto* n = std::get_if<NeedCredentials>(&step)) {
      auto it = users.find(n->authcid);
      std::optional<ScramCredentials> creds;
      if (it != users.end()) creds = scram_credentials(it->second, "salt-of-" + n->authcid, 4096);
      step = server.credentials(creds);
    } else if (auto* s = std::get_if<Success>(&step)) {
      out.authcid = s->authcid;
      out.authzid = s->authzid;
      if (!s->server_final.empty()) {
        auto r = client.respond(s->server_final);
        if (!r) {
          out.error = r.error();
          return out;
        }
      }
      out.ok = true;
      out.client_complete = client.complete();
      return out;
    } else if (auto* f = std::get_if<Failure>(&step)) {
      out.error = f->code;
      return out;
    }
  }
  out.error = Errc::state;
  return out;
}

}  // namespace buzon::sasl::test
