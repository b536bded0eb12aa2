#include "connectors/access.h"

#include <fmt/format.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>

#include <cassert>
#include <cctype>
#include <fstream>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <sstream>

namespace qudao {
namespace {

using nlohmann::json;

bool is_b64token_char(char c) {
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '.' ||
         c == '_' || c == '~' || c == '+' || c == '/';
}

// RFC 6750 b64token: 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="
bool is_b64token(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size() && is_b64token_char(s[i])) ++i;
  if (i == 0) return false;
  while (i < s.size() && s[i] == '=') ++i;
  return i == s.size();
}

std::optional<Role> parse_role(std::string_view s) {
  for (Role r : {Role::hq, Role::regional, Role::metrics, Role::ingest}) {
    if (role_name(r) == s) return r;
  }
  return std::nullopt;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

}  // namespace

std::string_view role_name(Role role) {
  switch (role) {
    case Role::hq: return "hq";
    case Role::regional: return "regional";
    case Role::metrics: return "metrics";
    case Role::ingest: return "ingest";
  }
  assert(false && "every role has a name");
  return "";
}

AccessTokens::Digest AccessTokens::sha256(std::string_view token) {
  Digest d{};
  unsigned n = 0;
  const int ok = EVP_Digest(token.data(), token.size(), d.data(), &n, EVP_sha256(), nullptr);
  assert(ok == 1 && n == d.size() && "SHA-256 of a bounded string cannot fail");
  (void)ok;
  return d;
}

Result<AccessTokens> AccessTokens::load_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status::error(fmt::format("tokens file {}: cannot open", path));
  std::stringstream ss;
  ss << in.rdbuf();
  auto tokens = parse(ss.str(), fmt::format("tokens file {}", path));
  if (!tokens.is_ok()) return tokens;
  // Like ssh with its keys: a secret others can read is worth a warning, not a refusal.
  struct stat st {};
  if (::stat(path.c_str(), &st) == 0 && (st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
    spdlog::warn("tokens file {} is accessible by group or others (mode {:o}); chmod 600 it, or keep "
                 "token_sha256 entries only", path, st.st_mode & 0777);
  }
  return tokens;
}

std::shared_ptr<const Principal> ServedTokens::authenticate(std::string_view token) const {
  std::shared_ptr<const AccessTokens> tokens = current();
  const Principal* principal = tokens->authenticate(token);
  if (principal == nullptr) return nullptr;
  return std::shared_ptr<const Principal>(std::move(tokens), principal);  // shares the tokens' ownership
}

Result<std::size_t> ServedTokens::reload() {
  if (path_.empty()) return Status::error("no tokens file to read again (the tokens were not read from one)");
  auto tokens = AccessTokens::load_file(path_);
  if (!tokens.is_ok()) return tokens.status();
  const std::size_t n = tokens.value().size();
  replace(tokens.take());
  return n;
}

void ServedTokens::replace(AccessTokens tokens) {
  auto next = std::make_shared<const AccessTokens>(std::move(tokens));
  std::lock_guard lock(mutex_);
  current_.swap(next);  // the old tokens go with `next`, after the lock (or with their last request)
}

Result<AccessTokens> AccessTokens::parse(std::string_view json_text, std::string_view origin) {
  const json doc = json::parse(json_text.begin(), json_text.end(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded()) return Status::error(fmt::format("{}: not valid JSON", origin));
  auto fail = [&](const std::string& where, const std::string& what) {
    return Status::error(fmt::format("{}: {}: {}", origin, where, what));
  };
  if (!doc.is_object()) return fail("top level", "expected an object {\"tokens\": [...]}");
  for (const auto& [key, value] : doc.items()) {
    if (key != "tokens") return fail(key, "unknown key (expected only \"tokens\")");
  }
  if (!doc.contains("tokens") || !doc["tokens"].is_array() || doc["tokens"].empty()) {
    return fail("tokens", "required: a non-empty array (with no tokens every request would be refused)");
  }

  AccessTokens out;
  std::set<std::string> names;
  for (std::size_t i = 0; i < doc["tokens"].size(); ++i) {
    const json& t = doc["tokens"][i];
    const std::string at = fmt::format("tokens[{}]", i);
    if (!t.is_object()) return fail(at, "expected an object");
    for (const auto& [key, value] : t.items()) {
      if (key != "name" && key != "role" && key != "regions" && key != "token" && key != "token_sha256") {
        return fail(at + "." + key, "unknown key (expected name, role, regions, token or token_sha256)");
      }
    }

    if (!t.contains("name") || !t["name"].is_string()) return fail(at + ".name", "required: a string");
    const std::string name = t["name"];
    if (name.empty() || name.size() > kNameBytesMax) {
      return fail(at + ".name", fmt::format("must be 1 to {} characters", kNameBytesMax));
    }
    if (!names.insert(name).second) return fail(at + ".name", fmt::format("\"{}\" is used twice", name));

    if (!t.contains("role") || !t["role"].is_string()) return fail(at + ".role", "required: a string");
    const auto role = parse_role(t["role"].get<std::string>());
    if (!role) return fail(at + ".role", "must be one of hq, regional, metrics, ingest");

    Entry e;
    e.principal.name = name;
    e.principal.role = *role;
    // An ingest token with regions writes events keyed by those regions only (connectors/ingest_api.h).
    const bool scoped_ingest = *role == Role::ingest && t.contains("regions");
    if (*role == Role::regional || scoped_ingest) {
      if (!t.contains("regions") || !t["regions"].is_array() || t["regions"].empty()) {
        return fail(at + ".regions", fmt::format("required for role {}: a non-empty array of region names",
                                                 role_name(*role)));
      }
      std::vector<std::string> regions;
      for (const json& r : t["regions"]) {
        if (!r.is_string() || r.get<std::string>().empty()) {
          return fail(at + ".regions", "every region must be a non-empty string");
        }
        regions.push_back(r);
      }
      e.principal.scope = RegionScope::only(std::move(regions));
    } else {
      if (t.contains("regions")) return fail(at + ".regions", fmt::format("not allowed for role {}", role_name(*role)));
      e.principal.scope = *role == Role::hq || *role == Role::ingest ? RegionScope::all() : RegionScope::only({});
    }

    const bool has_token = t.contains("token"), has_hash = t.contains("token_sha256");
    if (has_token == has_hash) return fail(at, "exactly one of token and token_sha256 is required");
    if (has_token) {
      if (!t["token"].is_string()) return fail(at + ".token", "must be a string");
      const std::string token = t["token"];
      if (token.size() < kTokenBytesMin || token.size() > kTokenBytesMax || !is_b64token(token)) {
        return fail(at + ".token", fmt::format("must be {} to {} characters of A-Z a-z 0-9 - . _ ~ + / (then any '=')",
                                               kTokenBytesMin, kTokenBytesMax));
      }
      e.token_sha256 = sha256(token);
    } else {
      const std::string hex = t["token_sha256"].is_string() ? t["token_sha256"].get<std::string>() : "";
      if (hex.size() != 2 * e.token_sha256.size()) return fail(at + ".token_sha256", "must be 64 hex digits");
      for (std::size_t b = 0; b < e.token_sha256.size(); ++b) {
        const int hi = hex_value(hex[2 * b]), lo = hex_value(hex[2 * b + 1]);
        if (hi < 0 || lo < 0) return fail(at + ".token_sha256", "must be 64 hex digits");
        e.token_sha256[b] = static_cast<std::uint8_t>(hi * 16 + lo);
      }
    }
    for (const Entry& other : out.entries_) {
      if (other.token_sha256 == e.token_sha256) {
        return fail(at, fmt::format("same token as \"{}\": a token must name one principal", other.principal.name));
      }
    }
    out.entries_.push_back(std::move(e));
  }
  return out;
}

const Principal* AccessTokens::authenticate(std::string_view token) const {
  const Digest d = sha256(token);
  const Principal* found = nullptr;
  for (const Entry& e : entries_) {
    // No early exit: every entry is compared, whether or not one matched already.
    const bool match = CRYPTO_memcmp(d.data(), e.token_sha256.data(), d.size()) == 0;
    if (match) found = &e.principal;
  }
  return found;
}

std::string_view bearer_token(std::string_view authorization) {
  constexpr std::string_view kScheme = "bearer";
  if (authorization.size() <= kScheme.size()) return {};
  for (std::size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != kScheme[i]) return {};
  }
  std::string_view rest = authorization.substr(kScheme.size());
  if (rest.front() != ' ') return {};
  while (!rest.empty() && rest.front() == ' ') rest.remove_prefix(1);
  while (!rest.empty() && rest.back() == ' ') rest.remove_suffix(1);
  return rest;
}

}  // namespace qudao
