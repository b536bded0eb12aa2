// libFuzzer target: arbitrary bytes into decode(), the gate for every Kafka record value.
//
// Contract checked, for every input:
//   - decode() returns (an Event or a Rejection) without crashing, leaking or undefined behaviour;
//   - an Event also prints as JSON in both styles (to_json needs only verifiable bytes);
//   - an Event survives bytes -> JSON -> bytes: from_json accepts the JSON it was printed as, the
//     bytes it builds decode to the same event id and time, and print as the same JSON again.
// A broken property aborts with the JSON and the reason, so libFuzzer saves the input.
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <span>
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

void require(bool ok, const char* property, const std::string& detail) { fuzz::require(ok, "decode_fuzz", property, detail); }

void check_round_trip(const Event& event, const std::string& json) {
  auto rebuilt = from_json(json);
  if (const auto* r = std::get_if<Rejection>(&rebuilt)) {
    require(false, "from_json accepts the JSON to_json printed for a decodable event",
            "json: " + printable(json) + "\nrejection: " + printable(r->to_string()));
  }
  const auto& bytes = std::get<std::vector<std::uint8_t>>(rebuilt);
  const Decoded again = decode(bytes);
  if (const auto* r = std::get_if<Rejection>(&again)) {
    require(false, "bytes from_json built decode",
            "json: " + printable(json) + "\nrejection: " + printable(r->to_string()));
  }
  const Event& e = std::get<Event>(again);
  require(e.id == event.id && e.occurred_at == event.occurred_at && e.type() == event.type(),
          "the rebuilt event has the same id, time and type", "json: " + printable(json));
  auto reprinted = to_json(bytes, JsonStyle::compact);
  if (const auto* r = std::get_if<Rejection>(&reprinted)) {
    require(false, "bytes from_json built print as JSON",
            "json: " + printable(json) + "\nrejection: " + printable(r->to_string()));
  }
  require(std::get<std::string>(reprinted) == json, "bytes -> JSON -> bytes -> JSON prints the same JSON",
          "json:       " + printable(json) + "\nreprinted:  " + printable(std::get<std::string>(reprinted)));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::span<const std::uint8_t> bytes(data, size);
  const Decoded decoded = decode(bytes);
  const auto* event = std::get_if<Event>(&decoded);
  if (event == nullptr) return 0;

  // Printed for its own sake (dead letters are shown pretty); only the compact text is compared.
  auto pretty = to_json(bytes, JsonStyle::pretty);
  if (const auto* r = std::get_if<Rejection>(&pretty)) {
    require(false, "a decodable event prints as pretty JSON", printable(r->to_string()));
  }

  auto compact = to_json(bytes, JsonStyle::compact);
  if (const auto* r = std::get_if<Rejection>(&compact)) {
    require(false, "a decodable event prints as compact JSON", printable(r->to_string()));
  }
  check_round_trip(*event, std::get<std::string>(compact));
  return 0;
}
