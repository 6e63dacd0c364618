// proto/smtp/submission.hpp — the message submission rules (RFC 6409) as pure functions: who may
// use which sender address, what the header section says (From:, Sender:, Date:, Message-ID:),
// the fields a submission server adds, and the Received: field that hides the client.
//
// SECURITY  Message text and addresses come from an authenticated but untrusted client. Ownership
//           is decided on lower-cased whole addresses only (no pattern matching beyond the
//           "@domain" alias keys), so a client cannot claim an address by quoting or comments:
//           anything the address parser does not reduce to a plain addr-spec simply does not
//           match. Header scanning is linear and bounded by the message size.
// STANDARDS RFC 6409 §6.1 (the submission server may refuse senders it does not authorize),
//           §8.2 (Date:), §8.3 (Message-ID:); RFC 5322 §2.2.3 (unfolding), §3.4 (address lists,
//           groups, angle addresses, comments, quoted strings), §3.6 (fields), §3.6.4 (msg-id);
//           RFC 5321 §4.4 (Received:).
// LIMITS    None beyond the message size bound of the session.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <vector>

namespace buzon::smtp {

// [submission] sender_aliases: an address ("sales@example.org", lower case) or a whole domain
// ("@example.org") -> the user names allowed to send as it.
using SenderAliases = std::map<std::string, std::vector<std::string>, std::less<>>;

struct SubmissionSettings {
  // Plaintext mechanisms (PLAIN, LOGIN) only over TLS, even from [auth] trusted_networks
  // (RFC 8314 §3). false: the [auth] policy decides (trusted networks, plaintext_requires_tls).
  bool require_tls = true;
  // Received: without the client's address and EHLO name (the "by" part and the id stay).
  bool hide_client = false;
  SenderAliases sender_aliases;
};

// May `user` (as authenticated, canonical) use `address`: the user's own address (the user name
// itself when it contains '@', else user@<each local domain>), or an alias listed for the user.
bool may_send_as(std::string_view user, std::string_view address, const std::vector<std::string>& local_domains,
                 const SenderAliases& aliases);

// The addr-specs of an RFC 5322 address list ("Ana <ana@x>, \"B, C\" <b@y>, grp: c@z;"), in order.
// Display names, comments and group names are dropped; source routes are removed; a bare word
// ("root") is kept as it is. Also `buzon send`'s parser (send/message.hpp).
std::vector<std::string> parse_address_list(std::string_view value);

// What the header section of a message (CRLF line ends) says.
struct HeaderScan {
  std::size_t end = 0;  // offset just after the last header field's CRLF (where fields can be added)
  bool has_date = false, has_message_id = false;
  unsigned from_fields = 0, sender_fields = 0;
  std::vector<std::string> from, sender;  // addresses of every From: / Sender: field
};
HeaderScan scan_headers(std::string_view message);

// "<random.time@hostname>" (RFC 5322 §3.6.4): unique without coordination.
std::string make_message_id(std::string_view hostname, std::int64_t unix_seconds);

// The fields to add at HeaderScan::end: Date: and Message-ID: when missing (RFC 6409 §8.2/§8.3).
std::string missing_fields(const HeaderScan& scan, std::string_view hostname, std::int64_t unix_seconds);

// Received: that names no client (hide_client): "Received: by host (buzon) with ESMTPSA id X; date".
std::string format_received_hidden(std::string_view by, std::string_view protocol, std::string_view id,
                                   std::string_view tls, std::string_view for_rcpt, std::int64_t unix_seconds);

// The domain of an address ("" when none), lower case.
std::string domain_of(std::string_view address);

}  // namespace buzon::smtp
