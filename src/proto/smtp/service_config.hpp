// proto/smtp/service_config.hpp — the session Settings of the smtp, lmtp and submission services,
// from the [smtp], [lmtp], [submission], [auth], [server], [users] and [mail] sections of the
// config (README "Configuration").
//
// SECURITY  The config is trusted and already validated (core/config.cpp); LMTP drops the
//           local-domain requirement because the MTA in front of it decided the routing.
// STANDARDS RFC 5321 §4.5.3 (the limits), RFC 2033 (LMTP).
// LIMITS    None beyond the config's ranges.
#pragma once

#include "core/config.hpp"
#include "proto/smtp/server_session.hpp"

namespace buzon::smtp {

Settings settings_from_config(const Config& cfg, Mode mode);

}  // namespace buzon::smtp
