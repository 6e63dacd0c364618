// proto/sasl/mechanism.hpp — SASL mechanisms as pure step machines (no I/O, no asio): the server
// side that the POP3 (and later SMTP submission) sessions drive, and the client side for
// `buzon fetch`/`buzon send` and tests.
//
// A server mechanism is fed the client's DECODED responses (the protocol layer owns base64, "*"
// and line limits) and answers with a ServerStep: a challenge to send, a request to the caller
// (check a password, check a digest, supply stored SCRAM keys — the caller does that on its worker
// pool, where the user directory and the hashing live), or the outcome. Nothing here blocks on a
// directory or a file, so mechanisms are tested with RFC vectors byte for byte.
//
// SECURITY  Every octet from the client is untrusted; each mechanism parses strictly and fails
//           with a Failure on anything outside its grammar (never throws for client input). The
//           authorization identity is reported, never acted on: callers must refuse an authzid
//           that differs from the authenticated identity (we support no proxy authorization).
//           Mechanisms that carry the password itself (PLAIN, LOGIN) say so via is_plaintext() so
//           the caller can refuse them on unencrypted connections (RFC 4616 §6, RFC 5034 §4).
// STANDARDS RFC 4422 (SASL framework: §3.3 initial response, §3.6 additional data with success),
//           RFC 4616 (PLAIN), draft-murchison-sasl-login (LOGIN), RFC 2195 (CRAM-MD5), RFC 5802 and
//           RFC 7677 (SCRAM-SHA-256, -PLUS), RFC 5929 (tls-unique), RFC 9266 (tls-exporter).
// LIMITS    Input sizes are bounded by the caller (pop3 kMaxAuthLine); see each mechanism's header.
#pragma once

#include <cstdint>
#include <expected>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace buzon::sasl {

inline constexpr std::string_view kPlain = "PLAIN";
inline constexpr std::string_view kLogin = "LOGIN";
inline constexpr std::string_view kCramMd5 = "CRAM-MD5";
inline constexpr std::string_view kScramSha256 = "SCRAM-SHA-256";
inline constexpr std::string_view kScramSha256Plus = "SCRAM-SHA-256-PLUS";

// Every mechanism buzon implements, strongest first (the order CAPA and "AUTH" list them in).
inline constexpr std::string_view kAllMechanisms[] = {kScramSha256Plus, kScramSha256, kCramMd5, kPlain, kLogin};

// True for a name above (exact, upper case).
bool is_known(std::string_view name);
// The mechanism sends the password itself (PLAIN, LOGIN): only over TLS or from trusted networks.
bool is_plaintext(std::string_view name);
// The mechanism needs TLS channel binding (the -PLUS variants).
bool needs_channel_binding(std::string_view name);

enum class Errc {
  malformed,             // the message does not follow the mechanism's grammar
  initial_response,      // an initial response to a mechanism that starts with a challenge
  empty_identity,        // empty user name (or password)
  extension,             // a mandatory extension we do not support (SCRAM "m=")
  channel_binding,       // channel binding refused: missing, of an unsupported type, not matching,
                         // or the client claims the server does not support it while it does
  nonce,                 // SCRAM: the nonce in the final message is not the one we built
  bad_proof,             // wrong password (proof, digest) — the only "wrong credentials" outcome
  server_signature,      // client side: the server did not prove it knows the credentials
  server_error,          // client side: the server sent an error ("e=...")
  iterations,            // client side: an iteration count out of bounds
  state,                 // a step after the exchange ended, or a call in the wrong order
};

std::string_view to_string(Errc e);

// ---- Server side --------------------------------------------------------------------------

// Send `data` (raw octets; the protocol base64-encodes it) and feed the answer to step().
struct Challenge {
  std::string data;
};
// PLAIN, LOGIN: the client sent a password; verify it and finish (no further step()).
struct CheckPassword {
  std::string authcid, authzid, password;
};
// CRAM-MD5: verify `digest` (lower-case hex HMAC-MD5 of `challenge`) with the stored secret.
struct CheckDigest {
  std::string authcid, challenge, digest;
};
// SCRAM: look up `authcid` and call credentials() with the stored keys (nullopt when the user is
// unknown or the stored scheme cannot serve SCRAM: the exchange then continues and fails at the
// proof, so a client cannot tell unknown users from wrong passwords).
struct NeedCredentials {
  std::string authcid, authzid;
};
// Authenticated. `server_final`: additional data to send with success (SCRAM "v="); protocols
// without that feature (POP3, RFC 5034 §4) send it as a last challenge and expect an empty answer.
struct Success {
  std::string authcid, authzid, server_final;
};
struct Failure {
  Errc code;
};

using ServerStep = std::variant<Challenge, CheckPassword, CheckDigest, NeedCredentials, Success, Failure>;

// TLS channel-binding data of the connection (RFC 5056): type "tls-exporter" or "tls-unique".
struct ChannelBinding {
  std::string type;
  std::string data;
};

// Stored SCRAM keys (RFC 5802 §3): what a server needs, without the password.
struct ScramCredentials {
  std::uint32_t iterations = 4096;
  std::string salt;        // raw octets
  std::string stored_key;  // H(ClientKey), 32 octets
  std::string server_key;  // HMAC(SaltedPassword, "Server Key"), 32 octets
};

struct ServerContext {
  std::string hostname = "localhost";            // in the CRAM-MD5 challenge
  std::vector<ChannelBinding> channel_bindings;  // offered by this connection (TLS only)
  bool plus_advertised = false;                  // SCRAM-SHA-256-PLUS was offered to this client
  std::string fake_salt_key;                     // secret keying the salts shown for unknown users
  std::function<std::string(std::size_t)> random;  // random octets (tests); default: the CSPRNG
  std::function<std::string()> nonce;              // SCRAM server nonce (RFC vectors); default: random
  std::function<std::int64_t()> unix_time;         // for the CRAM-MD5 challenge; default: now
};

class ServerMechanism {
 public:
  virtual ~ServerMechanism() = default;
  virtual std::string_view name() const = 0;
  // The first step: with the client's initial response (RFC 4422 §3.3; "" is an empty one) or
  // without any.
  virtual ServerStep start(std::optional<std::string_view> initial_response) = 0;
  // The client's answer to the last Challenge.
  virtual ServerStep step(std::string_view response) = 0;
  // The answer to NeedCredentials.
  virtual ServerStep credentials(const std::optional<ScramCredentials>& creds);
};

// A fresh server mechanism, or nullptr for an unknown name. `ctx` must outlive it.
std::unique_ptr<ServerMechanism> make_server(std::string_view name, const ServerContext& ctx);

// ---- Client side --------------------------------------------------------------------------

struct ClientCredentials {
  std::string authcid;   // the user name
  std::string password;
  std::string authzid;   // usually empty
};

struct ClientContext {
  std::optional<ChannelBinding> channel_binding;   // for -PLUS (and to say "y" otherwise)
  bool server_offers_plus = false;                 // the server listed a -PLUS mechanism
  std::function<std::string(std::size_t)> random;  // random octets (tests); default: the CSPRNG
  std::function<std::string()> nonce;              // SCRAM client nonce (RFC vectors); default: random
  std::string scram_extension;                     // optional "a=value" appended to client-first
                                                   // (RFC 5802 §7 extensions; servers ignore them)
};

class ClientMechanism {
 public:
  virtual ~ClientMechanism() = default;
  virtual std::string_view name() const = 0;
  // The initial response (RFC 4422 §3.3), or nullopt when the mechanism waits for a challenge.
  virtual std::optional<std::string> initial() = 0;
  // The answer to a server challenge. An error means the client must cancel ("*").
  virtual std::expected<std::string, Errc> respond(std::string_view challenge) = 0;
  // True once the client is satisfied (SCRAM: the server proved it holds the keys). A server that
  // says +OK while this is false must not be trusted.
  virtual bool complete() const = 0;
};

std::unique_ptr<ClientMechanism> make_client(std::string_view name, ClientCredentials creds, ClientContext ctx = {});

// The context's random source, or the CSPRNG.
std::string random_from(const std::function<std::string(std::size_t)>& random, std::size_t n);

}  // namespace buzon::sasl
