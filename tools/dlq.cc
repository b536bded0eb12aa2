// qudao dlq: the dead-letter topic that the outbox relay fills (connectors/relay.h). Each record is
// a rejected record's original bytes; its headers say why (qudao-reason, qudao-field,
// qudao-message) and where it came from (qudao-source-topic, -partition, -offset, -key).
//
//   qudao dlq list                 one line per dead letter
//   qudao dlq show -p P -o O       one dead letter: headers, and the event as JSON (or why not)
//   qudao dlq redrive -p P -o O    produce its original bytes back to the events topic, with its
//   qudao dlq redrive --all [--reason R]   original key (after a fix upstream, or once what it
//                                          referred to exists); it is applied or rejected anew
#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <cstring>

#include "events/json.h"
#include "tools/commands.h"

namespace qudao {
namespace {

using Letter = TopicRecord;

std::string dead_letter_topic(const DlqArgs& args) {
  return args.dead_letter_topic.empty() ? args.kafka.topic + ".dead-letters" : args.dead_letter_topic;
}

bool chosen(const DlqArgs& args, const Letter& l) {
  if (args.partition >= 0 && (l.partition.value != args.partition || l.record.offset.value != args.offset)) return false;
  if (!args.reason.empty() && l.record.header("qudao-reason") != args.reason) return false;
  return true;
}

}  // namespace

int run_dlq(const DlqArgs& args) {
  auto kafka = args.kafka.to_settings();
  if (!kafka.is_ok()) {
    spdlog::error("{}", kafka.status().message());
    return 2;
  }
  const std::string topic = dead_letter_topic(args);
  auto letters = read_topic(kafka.value(), topic, std::chrono::minutes(5));
  if (!letters.is_ok()) {
    spdlog::error("dead-letter topic {}: {}", topic, letters.status().message());
    return 2;
  }
  if (args.action == "list") {
    std::size_t shown = 0;
    for (const Letter& l : letters.value()) {
      if (!chosen(args, l)) continue;
      if (shown++ == args.limit) break;
      const RecordMeta& r = l.record;
      fmt::print("{}/{}  from {}/{}  {}  {}: {}\n", l.partition.value, r.offset.value, r.header("qudao-source-partition"),
                 r.header("qudao-source-offset"), r.header("qudao-reason"), r.header("qudao-field"),
                 r.header("qudao-message"));
    }
    spdlog::info("{} dead letters in {}, {} shown", letters.value().size(), topic, std::min(shown, args.limit));
    return 0;
  }
  if (args.action == "show") {
    if (args.partition < 0) {
      spdlog::error("dlq show needs -p PARTITION -o OFFSET (from `qudao dlq list`)");
      return 2;
    }
    for (const Letter& l : letters.value()) {
      if (!chosen(args, l)) continue;
      for (const auto& [name, value] : l.record.headers) fmt::print("{}: {}\n", name, value);
      std::vector<std::uint64_t> aligned((l.record.value.size() + 7) / 8);
      std::memcpy(aligned.data(), l.record.value.data(), l.record.value.size());
      const std::span<const std::uint8_t> bytes(reinterpret_cast<const std::uint8_t*>(aligned.data()), l.record.value.size());
      auto json = to_json(bytes, JsonStyle::pretty);
      if (auto* text = std::get_if<std::string>(&json)) {
        fmt::print("{}\n", *text);
      } else {
        fmt::print("({} bytes, not printable as an event: {})\n", bytes.size(), std::get<Rejection>(json).to_string());
      }
      return 0;
    }
    spdlog::error("no dead letter at {}/{} in {}", args.partition, args.offset, topic);
    return 1;
  }
  // redrive
  if (args.partition < 0 && !args.all) {
    spdlog::error("dlq redrive needs -p PARTITION -o OFFSET, or --all (optionally with --reason)");
    return 2;
  }
  auto producer = KafkaProducer::open(kafka.value());
  if (!producer.is_ok()) {
    spdlog::error("{}", producer.status().message());
    return 2;
  }
  std::size_t sent = 0;
  for (const Letter& l : letters.value()) {
    if (!chosen(args, l)) continue;
    const std::string source = l.record.header("qudao-source-topic");
    const std::string key = l.record.header("qudao-source-key");
    const std::string& to = source.empty() ? args.kafka.topic : source;
    const auto* k = reinterpret_cast<const std::uint8_t*>(key.data());
    const auto* v = reinterpret_cast<const std::uint8_t*>(l.record.value.data());
    if (Status s = producer.value()->produce(to, {k, key.size()}, {v, l.record.value.size()}); !s.is_ok()) {
      spdlog::error("{}", s.message());
      return 2;
    }
    ++sent;
  }
  if (Status s = producer.value()->flush(std::chrono::minutes(2)); !s.is_ok()) {
    spdlog::error("{}", s.message());
    return 2;
  }
  fmt::print("{}\n", nlohmann::json{{"redriven", sent}}.dump());
  if (sent == 0) spdlog::warn("no dead letter matched");
  return sent > 0 ? 0 : 1;
}

}  // namespace qudao
