// What both fuzz targets report with: a readable form of fuzzed text, and the abort that makes
// libFuzzer keep an input that breaks a contract property.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

namespace qudao::fuzz {

// Every byte outside printable ASCII as \xNN: fuzzed text holds NULs, control characters and broken
// UTF-8, and those are what a reader needs to see.
inline std::string printable(std::string_view text) {
  std::string out;
  for (const char c : text) {
    const auto b = static_cast<unsigned char>(c);
    if (b >= 0x20 && b < 0x7f) {
      out += c;
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", b);
      out += hex;
    }
  }
  return out;
}

// A broken contract property is a finding: say which one, then abort so libFuzzer keeps the input.
inline void require(bool ok, const char* target, const char* property, const std::string& detail) {
  if (ok) return;
  std::fprintf(stderr, "%s: broken property: %s\n%s\n", target, property, detail.c_str());
  std::abort();
}

}  // namespace qudao::fuzz
