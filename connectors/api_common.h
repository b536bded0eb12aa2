// What the query API's handlers share: JSON answers, and query parameters parsed with an error that
// names the parameter.
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <optional>
#include <string>

#include "connectors/http_server.h"

namespace qudao {

inline HttpResponse json_response(unsigned status, const nlohmann::json& body) {
  return HttpResponse{status, "application/json", body.dump(), {}};
}

inline HttpResponse error(unsigned status, const std::string& message) {
  return json_response(status, nlohmann::json{{"error", message}});
}

// Parses an optional non-negative integer query parameter; the error text names the parameter.
template <class T>
std::optional<std::string> parse_param(const HttpRequest& req, const char* name, std::optional<T>& out) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return std::nullopt;
  T v{};
  const auto& s = it->second;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || p != s.data() + s.size() || v < 0) {
    return fmt::format("query parameter {}: expected a non-negative integer, got \"{}\"", name, s);
  }
  out = v;
  return std::nullopt;
}

}  // namespace qudao
