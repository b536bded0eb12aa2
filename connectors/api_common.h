// What the query API's handlers share: JSON answers, and query parameters parsed with an error that
// names the parameter.
#pragma once

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <charconv>
#include <optional>
#include <string>

#include "connectors/http_server.h"
#include "engine/channel.h"  // Period, parse_period
#include "engine/history.h"  // Day, parse_day

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

// Parses an optional query parameter with `parse` (nothing for a malformed value); `expected` says
// what the parameter takes, for the error text.
template <class T, class Parse>
std::optional<std::string> parse_param_with(const HttpRequest& req, const char* name, std::optional<T>& out,
                                            Parse parse, std::string_view expected) {
  auto it = req.query.find(name);
  if (it == req.query.end()) return std::nullopt;
  out = parse(it->second);
  if (!out) return fmt::format("query parameter {}: expected {}, got \"{}\"", name, expected, it->second);
  return std::nullopt;
}

inline std::optional<std::string> parse_param(const HttpRequest& req, const char* name, std::optional<Day>& out) {
  return parse_param_with(req, name, out, parse_day, "a date YYYY-MM-DD");
}

inline std::optional<std::string> parse_param(const HttpRequest& req, const char* name, std::optional<Period>& out) {
  return parse_param_with(req, name, out, parse_period, "a month \"YYYY-MM\" or a quarter \"YYYY-Qn\"");
}

}  // namespace qudao
