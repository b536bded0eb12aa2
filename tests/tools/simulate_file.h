// Test helper: a simulated channel written to an event file (what `qudao simulate --out` does).
#pragma once

#include <doctest/doctest.h>

#include <string>

#include "events/event_file.h"
#include "tools/simulate.h"

namespace qudao::test {

// Writes the simulated channel to `path`; returns the simulator's summary.
inline SimulationSummary simulate_to(const std::string& path, const SimulateOptions& options) {
  auto w = EventFileWriter::create(path);
  REQUIRE(w.is_ok());
  const SimulationSummary summary = simulate(options, [&](std::string_view key, std::span<const std::uint8_t> value) {
    REQUIRE(w.value()->append(key, value).is_ok());
  });
  REQUIRE(w.value()->finish().is_ok());
  return summary;
}

}  // namespace qudao::test
