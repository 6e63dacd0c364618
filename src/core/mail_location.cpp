#include "core/mail_location.hpp"

namespace buzon {

std::expected<std::filesystem::path, std::string> mail_location(std::string_view tmpl, const std::filesystem::path& base,
                                                                std::string_view user, std::string_view entry_mail,
                                                                std::string_view home) {
  if (!entry_mail.empty()) {
    std::string_view m = entry_mail;
    if (m.starts_with("maildir:")) m.remove_prefix(8);
    if (auto semi = m.find(':'); semi != std::string_view::npos) m = m.substr(0, semi);  // drop ":INDEX=..." options
    std::string s(m);
    // Dovecot's "~/Maildir" means under the user's home.
    if (s.starts_with("~/") && !home.empty()) s = std::string(home) + s.substr(1);
    std::filesystem::path p(s);
    return (p.is_absolute() ? p : base / p).lexically_normal();
  }
  auto at = user.find('@');
  std::string_view local = at == std::string_view::npos ? user : user.substr(0, at);
  std::string_view domain = at == std::string_view::npos ? std::string_view{} : user.substr(at + 1);
  std::string out;
  for (std::size_t i = 0; i < tmpl.size(); ++i) {
    char c = tmpl[i];
    if (c != '%' || i + 1 >= tmpl.size()) {
      out.push_back(c);
      continue;
    }
    switch (tmpl[++i]) {
      case 'u': out += user; break;
      case 'n': out += local; break;
      case 'd': out += domain; break;
      case '%': out.push_back('%'); break;
      default: return std::unexpected(std::string("unknown variable %") + tmpl[i] + " in mail location");
    }
  }
  std::filesystem::path p(out);
  if (!p.is_absolute()) p = base / p;
  p = p.lexically_normal();
  // The template is ours, the values came from the network: the result must stay under the part
  // of the template before its first variable.
  auto fixed = std::filesystem::path(std::string(tmpl.substr(0, tmpl.find('%'))));
  if (!fixed.is_absolute()) fixed = base / fixed;
  fixed = fixed.lexically_normal();
  auto rel = p.lexically_relative(fixed.has_filename() ? fixed.parent_path() : fixed);
  if (rel.empty() || *rel.begin() == "..") return std::unexpected("mail location escapes the mail root: " + p.string());
  return p;
}

}  // namespace buzon
