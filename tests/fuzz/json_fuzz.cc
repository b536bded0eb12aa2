// libFuzzer target: arbitrary text into from_json(), the parser behind the HTTP ingest endpoint
// and the tools.
//
// Contract checked, for every input:
//   - from_json() returns (bytes or a Rejection) without crashing, leaking or undefined behaviour;
//   - bytes it returns decode to an Event (from_json promises decode-able bytes) and print as JSON;
//   - that JSON parses back to bytes that print the same JSON (bytes -> JSON -> bytes, as in
//     decode_fuzz).
// A broken property aborts with the input text and the reason, so libFuzzer saves the input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "events/decode.h"
#include "events/json.h"
#include "tests/fuzz/fuzz_support.h"

namespace {

using namespace qudao;

using fuzz::printable;

void require(bool ok, const char* property, const std::string& detail) { fuzz::require(ok, "json_fuzz", property, detail); }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  auto parsed = from_json(json);
  const auto* bytes = std::get_if<std::vector<std::uint8_t>>(&parsed);
  if (bytes == nullptr) return 0;

  const Decoded decoded = decode(*bytes);
  if (const auto* r = std::get_if<Rejection>(&decoded)) {
    require(false, "bytes from_json returns decode",
            "json: " + printable(json) + "\nrejection: " + printable(r->to_string()));
  }
  auto printed = to_json(*bytes, JsonStyle::compact);
  if (const auto* r = std::get_if<Rejection>(&printed)) {
    require(false, "bytes from_json returns print as JSON",
            "json: " + printable(json) + "\nrejection: " + printable(r->to_string()));
  }
  // Events that decode survive bytes -> JSON -> bytes (decode_fuzz checks it from the bytes side).
  // The bytes need not equal *bytes (the builder's layout follows the input's field order), but
  // the printed JSON is canonical, so they print as the same text.
  const std::string& text = std::get<std::string>(printed);
  auto reparsed = from_json(text);
  if (const auto* r = std::get_if<Rejection>(&reparsed)) {
    require(false, "from_json accepts the JSON to_json printed for its own bytes",
            "json: " + printable(json) + "\nprinted: " + printable(text) + "\nrejection: " + printable(r->to_string()));
  }
  auto reprinted = to_json(std::get<std::vector<std::uint8_t>>(reparsed), JsonStyle::compact);
  require(std::holds_alternative<std::string>(reprinted) && std::get<std::string>(reprinted) == text,
          "printed JSON parses back to bytes that print the same JSON",
          "json: " + printable(json) + "\nprinted: " + printable(text));
  return 0;
}
