// Access control for the HTTP API: bearer tokens, each mapped to a role and (for regional
// managers) the regions it may see. Deny by default: a request without a known token reads nothing
// but /health.
//
// The tokens file is JSON (README, "Access"):
//
//   { "tokens": [
//       { "name": "hq-analysts",  "role": "hq",       "token": "<secret>" },
//       { "name": "east-manager", "role": "regional", "regions": ["East"], "token": "<secret>" },
//       { "name": "prometheus",   "role": "metrics",  "token_sha256": "<64 hex digits>" } ] }
//
//   name          required, unique, 1..64 characters; what logs show (never the token)
//   role          hq | regional | metrics | ingest
//   regions       required, non-empty, for regional; optional for ingest (then the regions whose
//                 events it may write; without it every region); not allowed for hq and metrics
//   token         16..1024 characters of RFC 6750's b64token set (A-Z a-z 0-9 - . _ ~ + /, then
//                 any '=' padding), e.g. `openssl rand -hex 32`
//   token_sha256  instead of token: the SHA-256 of the token in hex, so that the file need not
//                 hold the secret itself (`printf %s "$T" | sha256sum`)
//
// Unknown keys are errors, so that a typo ("region") cannot widen or narrow a scope silently.
//
// Thread-safety: AccessTokens is immutable after construction; authenticate() may be called from
// any thread. ServedTokens (below) is what the HTTP API checks: the tokens now in force, which
// `qudao serve` replaces by reading its tokens file again on SIGHUP.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "events/status.h"
#include "projections/scope.h"

namespace qudao {

enum class Role : std::uint8_t {
  hq,        // every endpoint, every region
  regional,  // stock endpoints, only within the token's regions
  metrics,   // /metrics only (a Prometheus scraper)
  ingest,    // POST /v1/events only (connectors/ingest_api.h), within its regions if it has any; reads nothing
};

std::string_view role_name(Role role);

struct Principal {
  std::string name;
  Role role = Role::regional;
  // all() for hq and an ingest token without regions, the token's regions for regional and a scoped
  // ingest token, none for metrics. For ingest it is the regions it may write, not read.
  RegionScope scope = RegionScope::only({});
};

class AccessTokens {
 public:
  // No tokens: every request but /health is refused.
  AccessTokens() = default;

  inline static constexpr std::size_t kTokenBytesMin = 16;
  inline static constexpr std::size_t kTokenBytesMax = 1024;
  inline static constexpr std::size_t kNameBytesMax = 64;

  // Reads a tokens file; an error names the file and the entry at fault.
  static Result<AccessTokens> load_file(const std::string& path);
  // Parses the JSON text of a tokens file; `origin` names it in errors.
  static Result<AccessTokens> parse(std::string_view json_text, std::string_view origin);

  // The principal holding `token`, or nullptr. The time taken does not depend on which entry
  // matched or on how much of a wrong token was right: the token is hashed (SHA-256) and the
  // digest compared with every entry's by CRYPTO_memcmp, without stopping at a match.
  const Principal* authenticate(std::string_view token) const;

  std::size_t size() const { return entries_.size(); }

 private:
  using Digest = std::array<std::uint8_t, 32>;
  struct Entry {
    Digest token_sha256;
    Principal principal;
  };
  static Digest sha256(std::string_view token);

  std::vector<Entry> entries_;
};

// The tokens in force for a running server, and the file they came from. reload() reads the file
// again and, if it parses, puts the new tokens in force for every request from then on (a token
// removed from the file is refused at once); if it does not, the tokens in force stay and the error
// names the file and the entry, as at start. A request holds the tokens it was authenticated with
// (authenticate()'s shared pointer) until it is answered, so a reload never pulls a principal from
// under a request in flight. Thread-safe: requests authenticate on the HTTP threads while a reload
// runs on another.
class ServedTokens {
 public:
  // No tokens and no file: every request but /health is refused, and reload() fails.
  ServedTokens() : current_(std::make_shared<const AccessTokens>()) {}
  // `path`: the file `tokens` were read from; empty for tokens that came from nowhere to reload.
  explicit ServedTokens(AccessTokens tokens, std::string path = {})
      : current_(std::make_shared<const AccessTokens>(std::move(tokens))), path_(std::move(path)) {}

  // The principal holding `token` in the tokens now in force, or null; it keeps those tokens alive.
  std::shared_ptr<const Principal> authenticate(std::string_view token) const;
  // Reads the file again; the number of tokens now in force, or why the old ones stay.
  Result<std::size_t> reload();
  // Puts `tokens` in force (what reload() does once the file has parsed).
  void replace(AccessTokens tokens);

  std::size_t size() const { return current()->size(); }
  const std::string& path() const { return path_; }

 private:
  std::shared_ptr<const AccessTokens> current() const {
    std::lock_guard lock(mutex_);
    return current_;
  }

  mutable std::mutex mutex_;  // guards current_ (the pointer, not the tokens: those never change)
  std::shared_ptr<const AccessTokens> current_;
  const std::string path_;
};

// The token of an `Authorization: Bearer <token>` header value (scheme case-insensitive); empty if
// the value is empty, uses another scheme or has no token.
std::string_view bearer_token(std::string_view authorization);

}  // namespace qudao
