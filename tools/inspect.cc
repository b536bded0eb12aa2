// qudao inspect: print one event as JSON, or the rejection with its reason. The event comes from a
// file, stdin, or a Kafka record at a partition and offset; as bytes, hex, or JSON.
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>
#include <iterator>

#include "events/json.h"
#include "tools/commands.h"

namespace qudao {
namespace {

constexpr std::size_t kInputBytesMax = 16 * 1024 * 1024;

Result<std::string> read_input(const std::string& path) {
  std::string data;
  if (path == "-") {
    data.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(path, std::ios::binary);
    if (!in) return Status::error(fmt::format("{}: cannot open", path));
    data.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  if (data.size() > kInputBytesMax) return Status::error(fmt::format("{}: larger than {} bytes", path, kInputBytesMax));
  return data;
}

Result<std::string> from_hex(std::string_view text) {
  std::string out;
  int high = -1;
  for (char c : text) {
    int v;
    if (c >= '0' && c <= '9') v = c - '0';
    else if (c >= 'a' && c <= 'f') v = c - 'a' + 10;
    else if (c >= 'A' && c <= 'F') v = c - 'A' + 10;
    else if (c == ' ' || c == '\n' || c == '\r' || c == '\t') continue;
    else return Status::error(fmt::format("--hex: '{}' is not a hex digit", c));
    if (high < 0) {
      high = v;
    } else {
      out.push_back(static_cast<char>(high * 16 + v));
      high = -1;
    }
  }
  if (high >= 0) return Status::error("--hex: odd number of hex digits");
  return out;
}

}  // namespace

int run_inspect(const InspectArgs& args) {
  std::string bytes;
  if (args.offset >= 0) {
    auto kafka = args.kafka.to_settings();
    if (!kafka.is_ok()) {
      spdlog::error("{}", kafka.status().message());
      return 2;
    }
    auto record = fetch_record(kafka.value(), args.kafka.topic, PartitionId{args.partition}, Offset{args.offset},
                               std::chrono::seconds(10));
    if (!record.is_ok()) {
      spdlog::error("{}", record.status().message());
      return 1;
    }
    bytes = record.take();
  } else {
    auto input = read_input(args.path);
    if (!input.is_ok()) {
      spdlog::error("{}", input.status().message());
      return 1;
    }
    bytes = input.take();
    if (args.format == "hex") {
      auto decoded = from_hex(bytes);
      if (!decoded.is_ok()) {
        spdlog::error("{}", decoded.status().message());
        return 2;
      }
      bytes = decoded.take();
    } else if (args.format == "json") {
      auto parsed = from_json(bytes);
      if (auto* r = std::get_if<Rejection>(&parsed)) {
        fmt::print(stderr, "rejected: {}\n", r->to_string());
        return 1;
      }
      const auto& b = std::get<std::vector<std::uint8_t>>(parsed);
      bytes.assign(b.begin(), b.end());
    }
  }

  const std::span<const std::uint8_t> view(reinterpret_cast<const std::uint8_t*>(bytes.data()), bytes.size());
  auto json = to_json(view, JsonStyle::pretty);
  if (auto* text = std::get_if<std::string>(&json)) fmt::print("{}\n", *text);
  const Decoded decoded = decode(view);
  if (auto* r = std::get_if<Rejection>(&decoded)) {
    fmt::print(stderr, "rejected: {}\n", r->to_string());
    return 1;
  }
  return 0;
}

}  // namespace qudao
