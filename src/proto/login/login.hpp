// proto/login/login.hpp — the server side of one SASL login, shared by POP3 AUTH (RFC 5034) and
// SMTP AUTH (RFC 4954): which mechanisms a connection offers (the plaintext-needs-TLS policy), and
// the coroutine that drives a pure sasl:: mechanism through its challenges and checks the
// credentials against the user directory on a worker pool. The protocol supplies only its framing
// (how a challenge is written, how a response is read and decoded) through a Conversation.
//
// SECURITY  Plaintext mechanisms (PLAIN, LOGIN) are offered only over TLS, from trusted_networks,
//           or when plaintext_requires_tls is off; -PLUS only over TLS with channel-binding data.
//           Password checks, digest checks and SCRAM key lookups run on the given worker pool,
//           never on the event loop; unknown users cost the same hashing work as known ones
//           (auth::verify_dummy) and SCRAM shows them a keyed fake salt. An authorization identity
//           different from the authenticated one is refused (no proxy authorization). The
//           failure penalty wait happens before every check (Conversation::before_check).
// STANDARDS RFC 4422 (SASL; §3.6 success data sent as a last challenge where the protocol has no
//           "success with data": POP3 RFC 5034 §4, SMTP RFC 4954 §4), RFC 4616, RFC 5802/7677.
// THREADS   The coroutine runs on the session's executor; checks hop to `pool` and back.
// LIMITS    Responses are bounded by the protocol's line limit (the Conversation).
#pragma once

#include "auth/directory.hpp"
#include "core/ip_network.hpp"
#include "net/stream.hpp"
#include "net/worker_pool.hpp"
#include "proto/sasl/mechanism.hpp"

#include <asio/awaitable.hpp>

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::login {

// [auth] as the sessions use it (pop3::Settings and smtp::Settings derive from it).
struct Policy {
  // SASL mechanisms offered (upper case, in this order), subject to the policy below:
  // PLAIN and LOGIN only where plaintext is allowed, SCRAM-SHA-256-PLUS only over TLS.
  std::vector<std::string> sasl_mechanisms{"PLAIN", "LOGIN"};
  // Plaintext passwords only over TLS or from trusted_networks (Dovecot's
  // disable_plaintext_auth); false allows them everywhere.
  bool plaintext_requires_tls = true;
  // Peers allowed plaintext without TLS and exempt from the failure penalty.
  std::vector<IpNetwork> trusted_networks = loopback_networks();
};

// What one connection is, for the policy (recomputed after STARTTLS/STLS).
struct Channel {
  bool tls = false;
  bool trusted = false;       // the peer is in trusted_networks (also: no failure penalty)
  bool plaintext_ok = false;  // PLAIN/LOGIN (and POP3 USER/PASS) allowed here
  std::vector<sasl::ChannelBinding> bindings;  // TLS channel-binding data, empty without TLS
};

// `require_tls_always`: plaintext needs TLS even from trusted networks (submission's require_tls).
Channel channel_of(const net::Stream& s, const Policy& p, bool require_tls_always = false);

// The mechanisms this connection offers, in the configured order.
std::vector<std::string> offered_mechanisms(const Policy& p, const Channel& c);

// True when `mech` is configured and plaintext but refused here for lack of TLS (the caller
// answers "encryption required" instead of "unsupported mechanism").
bool refused_for_plaintext(const Policy& p, const Channel& c, std::string_view mech);

// The outcome of one credential check.
struct Verdict {
  bool ok = false;
  bool temp = false;      // the check itself failed (not the credentials): try again later
  std::string canonical;  // the user, canonicalised
  std::string why;        // for the log only
};

// What the checks need.
struct Backend {
  const auth::Directory* directory = nullptr;
  auth::NameRules names;
  net::WorkerPool* pool = nullptr;  // password hashing and lookups
  std::string hostname = "localhost";
  std::string fake_salt_key;        // per-process secret for SCRAM salts of unknown users
};

// The client's answer to a challenge.
struct Answer {
  enum class Kind { data, cancelled, ended } kind = Kind::ended;
  std::string data;  // decoded octets (Kind::data)
};

class Conversation {
 public:
  virtual ~Conversation() = default;
  // Sends `data` (raw octets; the protocol encodes it) as a challenge and reads the answer.
  // cancelled: the client sent "*". ended: the exchange cannot go on (undecodable or overlong
  // response, already answered by the protocol; or the connection is gone).
  virtual asio::awaitable<Answer> challenge(std::string_view data) = 0;
  // Before each credential check: the failure-penalty wait for untrusted peers.
  virtual asio::awaitable<void> before_check() = 0;
};

struct Outcome {
  enum class Kind { ok, failed, cancelled, ended } kind = Kind::failed;
  Verdict verdict;   // ok/failed: the details (canonical user on success)
  std::string user;  // the name as the client typed it, for logs
};

// Runs the exchange of `mech` (which must be offered) from its optional initial response.
// `plus_advertised`: SCRAM-SHA-256-PLUS was offered to this client.
asio::awaitable<Outcome> authenticate(std::string_view mech, std::optional<std::string> initial, const Channel& ch,
                                      bool plus_advertised, const Backend& b, Conversation& conv);

// A password check (PLAIN, LOGIN, POP3 PASS) on the backend's pool. No penalty wait here.
asio::awaitable<Verdict> verify_password(const Backend& b, std::string typed, std::string password);

// The same check, synchronous: for a caller that is already on a pool thread and does more work in
// the same job (POP3 PASS opens the maildrop right after, one hand-off instead of two). Blocks
// (hashing, directory lookup): never on an event loop. Throws what the directory throws.
Verdict check_password(const Backend& b, std::string_view typed, std::string_view password);

// Decodes a SASL response line: "=" and "" are empty (RFC 4954 §4, RFC 5034 §4); nullopt when
// it is not valid base64.
std::optional<std::string> decode_response(std::string_view line);

}  // namespace buzon::login
