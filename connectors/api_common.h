// What the query API's handlers share: JSON answers, and query parameters (page limits and cursors
// too) parsed with an error that names the parameter.
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

// A listing's page size when the request gives no limit (an endpoint may choose another).
inline constexpr std::size_t kPageDefault = 100;

// Parses the optional limit of a page: 1 to `max`, `fallback` when not given. Every listing
// endpoint uses it, so a limit out of range is a 400 naming the range, never silently clamped.
inline std::optional<std::string> parse_limit(const HttpRequest& req, std::size_t max, std::size_t fallback,
                                              std::size_t& out) {
  std::optional<std::size_t> limit;
  if (auto e = parse_param(req, "limit", limit)) return e;
  if (limit && (*limit == 0 || *limit > max)) {
    return fmt::format("query parameter limit: expected 1 to {}, got {}", max, *limit);
  }
  out = limit.value_or(fallback);
  return std::nullopt;
}

// "A.B" with two integers (a cursor of two keys).
template <class A, class B>
bool parse_pair(std::string_view s, A& a, B& b) {
  const auto dot = s.find('.');
  if (dot == std::string_view::npos) return false;
  auto [p1, e1] = std::from_chars(s.data(), s.data() + dot, a);
  auto [p2, e2] = std::from_chars(s.data() + dot + 1, s.data() + s.size(), b);
  return e1 == std::errc() && p1 == s.data() + dot && e2 == std::errc() && p2 == s.data() + s.size();
}

inline HttpResponse bad_cursor(const std::string& cursor) {
  return error(400, fmt::format("query parameter cursor: not a cursor this endpoint gave, got \"{}\"", cursor));
}

}  // namespace qudao
