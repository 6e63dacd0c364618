// store/maildir/maildir_delivery.hpp — durable delivery of one message into a Maildir, as qmail,
// Postfix and Dovecot do it: write tmp/<unique>, fsync, link into new/<unique>,S=<size>,W=<vsize>,
// fsync new/. Returns only once the message survives a crash.
//
// SECURITY  The message octets are written as given; nothing in them is interpreted. The Maildir
//           path is refused when it contains NUL. Files are created O_EXCL, mode 0600.
// STANDARDS cr.yp.to/proto/maildir.html (tmp/ -> new/, unique names "<sec>.M<usec>P<pid>Q<n>.<host>");
//           Dovecot's ",S=" (octets stored) and ",W=" (octets with CRLF line ends) name fields.
// LIMITS    One message, one fsync pair per call (group commit comes with the Delivery interface).
//           Stale tmp/ files left by a crash are not cleaned here.
#pragma once

#include <string>
#include <string_view>

#include "store/maildrop.hpp"

namespace buzon::store::maildir {

// Delivers `message` (stored as given, LF or CRLF) into the Maildir at `maildir`, creating the
// Maildir if missing. Returns the new file's name in new/. Errors: temp (EIO, ENOSPC ...),
// quota (EDQUOT), too_big (EFBIG), perm (bad path, EACCES).
Result<std::string> deliver(const std::string& maildir, std::string_view message);

// A fresh unique base name "<sec>.M<usec>P<pid>Q<counter>.<host>" (host escaped for Maildir).
std::string make_unique_name();

}  // namespace buzon::store::maildir
