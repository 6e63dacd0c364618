// auth/aliases.cpp — the aliases file and alias expansion (see aliases.hpp).
//
// SECURITY  Bounded parsing and expansion (depth, targets, cycle detection); see aliases.hpp.
// STANDARDS RFC 5321 §3.6.2.
// LIMITS    See aliases.hpp.
#include "auth/aliases.hpp"

#include "auth/passwd_edit.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <mutex>

namespace buzon::auth {

namespace {

std::string ascii_lower(std::string_view s) {
  std::string out(s);
  for (char& c : out)
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  return out;
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool plain_char(unsigned char c) {
  return c > 0x20 && c != 0x7f && c != '<' && c != '>' && c != ',' && c != ':' && c != '#';
}

// The table key of an address: all of it lower-cased (aliases are case-insensitive).
std::string key_of(std::string_view address) { return ascii_lower(address); }

std::string domain_of(std::string_view key) {
  auto at = key.rfind('@');
  return at == std::string_view::npos ? std::string() : std::string(key.substr(at));  // "@domain"
}

std::string chain_text(const std::vector<std::string>& chain, std::string_view last) {
  std::string s;
  for (const auto& c : chain) s += c + " -> ";
  return s + std::string(last);
}

std::expected<std::string, std::string> alias_key(std::string_view alias) {
  std::string key;
  if (!alias.empty() && alias.front() == '@') {
    const std::string d = normalize_alias_address("x" + std::string(alias));
    if (!d.empty()) key = d.substr(1);
  } else {
    key = normalize_alias_address(alias);
  }
  if (key.empty()) return std::unexpected("'" + std::string(alias) + "' is not an address or @domain");
  return key_of(key);
}

struct Expander {
  const AliasTable& table;
  const IsFinal& is_final;
  unsigned max_depth;
  bool follow_catch_all;
  std::vector<std::string> chain;  // keys being expanded, outermost first
  std::vector<std::string> out;

  std::expected<void, std::string> visit(const std::string& address) {
    const std::string key = key_of(address);
    const bool seen = std::find(chain.begin(), chain.end(), key) != chain.end();
    const AliasEntry* entry = nullptr;
    if (auto it = table.find(key); it != table.end()) {
      if (seen) return std::unexpected("alias loop: " + chain_text(chain, key));
      entry = &it->second;
    } else if (!seen && follow_catch_all && !is_final(address)) {
      // (seen: the catch-all led back to this address; it is final then, not a loop.)
      // The catch-all of the domain, once per chain (its targets are usually in the same domain).
      const std::string any = domain_of(key);
      if (auto c = table.find(any); c != table.end() && std::find(chain.begin(), chain.end(), any) == chain.end()) {
        chain.push_back(key);
        auto r = expand(any, c->second);
        chain.pop_back();
        return r;
      }
    }
    if (!entry) {
      if (std::find(out.begin(), out.end(), address) == out.end()) {
        if (out.size() >= kMaxAliasTargets)
          return std::unexpected(fmt::format("alias expands to more than {} addresses", kMaxAliasTargets));
        out.push_back(address);
      }
      return {};
    }
    return expand(key, *entry);
  }

  std::expected<void, std::string> expand(const std::string& key, const AliasEntry& entry) {
    if (chain.size() >= max_depth)
      return std::unexpected(fmt::format("aliases nested deeper than {}: {}", max_depth, chain_text(chain, key)));
    chain.push_back(key);
    for (const auto& t : entry.targets) {
      if (auto r = visit(t); !r) return r;
    }
    chain.pop_back();
    return {};
  }
};

}  // namespace

std::string normalize_alias_address(std::string_view address) {
  auto at = address.find('@');
  if (at == std::string_view::npos || address.find('@', at + 1) != std::string_view::npos) return {};
  if (at + 1 == address.size()) return {};
  for (unsigned char c : address)
    if (!plain_char(c)) return {};
  return std::string(address.substr(0, at + 1)) + ascii_lower(address.substr(at + 1));
}

std::expected<AliasTable, ParseErrorAt> parse_aliases(std::string_view text) {
  AliasTable table;
  std::size_t lineno = 0;
  while (!text.empty()) {
    ++lineno;
    auto nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    if (line.size() > kMaxAliasLineLength)
      return std::unexpected(ParseErrorAt{lineno, fmt::format("line longer than {} octets (fix: split the alias)", kMaxAliasLineLength)});
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
    line = trim(line);
    if (line.empty()) continue;
    auto colon = line.find(':');
    if (colon == std::string_view::npos)
      return std::unexpected(ParseErrorAt{lineno, "no ':' after the alias (fix: write \"alias@domain: target@domain\")"});
    const std::string_view name = trim(line.substr(0, colon));
    auto parsed_key = alias_key(name);
    if (!parsed_key)
      return std::unexpected(ParseErrorAt{lineno, "the alias is not an address or \"@domain\" (fix: write \"alias@domain: target@domain\")"});
    const std::string key = std::move(*parsed_key);
    AliasEntry entry;
    entry.line = lineno;
    std::string_view rest = line.substr(colon + 1);
    while (true) {
      auto comma = rest.find(',');
      const std::string_view t = trim(rest.substr(0, comma));
      if (t.empty())
        return std::unexpected(ParseErrorAt{lineno, "empty target (fix: list addresses separated by commas)"});
      std::string target = normalize_alias_address(t);
      if (target.empty())
        return std::unexpected(ParseErrorAt{lineno, "a target is not an address (fix: write targets as user@domain)"});
      if (std::find(entry.targets.begin(), entry.targets.end(), target) == entry.targets.end())
        entry.targets.push_back(std::move(target));
      if (entry.targets.size() > kMaxAliasTargets)
        return std::unexpected(ParseErrorAt{lineno, fmt::format("more than {} targets (fix: split the list)", kMaxAliasTargets)});
      if (comma == std::string_view::npos) break;
      rest = rest.substr(comma + 1);
    }
    auto [it, fresh] = table.try_emplace(key, std::move(entry));
    if (!fresh)
      return std::unexpected(ParseErrorAt{lineno, fmt::format("'{}' is already defined on line {} (fix: merge the two lines)", key, it->second.line)});
  }
  return table;
}

std::expected<std::vector<std::string>, std::string> expand_alias(const AliasTable& table, std::string_view address,
                                                                  const IsFinal& is_final, unsigned max_depth) {
  Expander e{table, is_final, max_depth, true, {}, {}};
  if (auto r = e.visit(std::string(address)); !r) return std::unexpected(r.error());
  return std::move(e.out);
}

std::expected<void, std::string> check_aliases(const AliasTable& table, std::string_view path, unsigned max_depth) {
  const IsFinal never = [](std::string_view) { return true; };
  for (const auto& [key, entry] : table) {
    if (key.front() == '@') continue;
    Expander e{table, never, max_depth, false, {}, {}};
    if (auto r = e.visit(key); !r)
      return std::unexpected(format_parse_error(path, ParseErrorAt{entry.line, r.error() + " (fix: break the chain)"}));
  }
  return {};
}

namespace {

TextCheck alias_check(const std::filesystem::path& path) {
  return [p = path.string()](std::string_view text) -> std::expected<void, std::string> {
    auto t = parse_aliases(text);
    if (!t) return std::unexpected(format_parse_error(p, t.error()));
    return check_aliases(*t, p);
  };
}

}  // namespace

std::expected<void, std::string> add_alias(const std::filesystem::path& path, std::string_view alias,
                                           const std::vector<std::string>& targets) {
  auto key = alias_key(alias);
  if (!key) return std::unexpected(key.error());
  if (targets.empty()) return std::unexpected(std::string("an alias needs at least one target"));
  std::string line = *key + ":";
  for (std::size_t i = 0; i < targets.size(); ++i) {
    const std::string t = normalize_alias_address(targets[i]);
    if (t.empty()) return std::unexpected("'" + targets[i] + "' is not an address");
    line += (i ? ", " : " ") + t;
  }
  return edit_text_file(path, alias_check(path), [&](const std::string& text) -> std::expected<std::string, std::string> {
    auto t = parse_aliases(text);
    if (t && t->contains(*key))
      return std::unexpected(*key + " already exists (fix: `buzon alias del " + *key + "` first)");
    std::string out = text;
    if (!out.empty() && out.back() != '\n') out += '\n';
    return out + line + "\n";
  });
}

std::expected<void, std::string> delete_alias(const std::filesystem::path& path, std::string_view alias) {
  auto key = alias_key(alias);
  if (!key) return std::unexpected(key.error());
  return edit_text_file(path, alias_check(path), [&](const std::string& text) -> std::expected<std::string, std::string> {
    std::string out;
    bool found = false;
    std::size_t pos = 0;
    while (pos < text.size()) {
      const auto nl = text.find('\n', pos);
      const std::size_t end = nl == std::string::npos ? text.size() : nl + 1;
      const std::string_view line(text.data() + pos, end - pos);
      pos = end;
      if (auto one = parse_aliases(line); one && one->contains(*key)) {
        found = true;
        continue;
      }
      out += line;
    }
    if (!found) return std::unexpected(*key + " is not an alias (fix: `buzon alias list`)");
    return out;
  });
}

std::expected<AliasTable, std::string> load_aliases(const std::filesystem::path& path) {
  auto text = read_passwd_text(path);
  if (!text) return std::unexpected(text.error());
  auto table = parse_aliases(*text);
  if (!table) return std::unexpected(format_parse_error(path.string(), table.error()));
  if (auto ok = check_aliases(*table, path.string()); !ok) return std::unexpected(ok.error());
  return std::move(*table);
}

std::expected<std::shared_ptr<AliasFile>, std::string> AliasFile::open(std::filesystem::path path) {
  std::shared_ptr<AliasFile> f(new AliasFile(std::move(path)));
  if (f->path_.empty()) {
    f->table_ = std::make_shared<const AliasTable>();
    return f;
  }
  auto loaded = f->reload();
  if (!loaded) return std::unexpected(loaded.error());
  return f;
}

std::shared_ptr<AliasFile> AliasFile::from_table(AliasTable table) {
  std::shared_ptr<AliasFile> f(new AliasFile({}));
  f->table_ = std::make_shared<const AliasTable>(std::move(table));
  return f;
}

std::shared_ptr<const AliasTable> AliasFile::table() const {
  std::shared_lock lock(mutex_);
  return table_;
}

void AliasFile::replace(AliasTable table) {
  auto fresh = std::make_shared<const AliasTable>(std::move(table));
  std::unique_lock lock(mutex_);
  table_ = std::move(fresh);
}

std::expected<std::size_t, std::string> AliasFile::reload() {
  if (path_.empty()) return table()->size();
  auto t = load_aliases(path_);
  if (!t) return std::unexpected(t.error());
  auto fresh = std::make_shared<const AliasTable>(std::move(*t));
  const std::size_t n = fresh->size();
  std::unique_lock lock(mutex_);
  table_ = std::move(fresh);
  return n;
}

}  // namespace buzon::auth
