// core/mail_location.hpp — where a user's mailbox lives: the [mail] location template expanded for
// one user, unless the user's passwd-file entry names its own.
//
// SECURITY  The user name was already checked by auth::canonical_username (no '/', "..", NUL, controls);
//           the result is still checked to stay inside the base directory when it came from the template.
#pragma once

#include <expected>
#include <filesystem>
#include <string>
#include <string_view>

namespace buzon {

// %u = full user name, %n = local part, %d = domain (empty when none), %% = '%'.
// `entry_mail` (passwd-file mail= field, optional "maildir:" prefix) wins over the template;
// relative results are made absolute against `base`.
std::expected<std::filesystem::path, std::string> mail_location(std::string_view tmpl, const std::filesystem::path& base,
                                                                std::string_view user, std::string_view entry_mail = {},
                                                                std::string_view home = {});

}  // namespace buzon
