// qudao export: copy every record of the events topic, from the start of each partition to its end
// when the export starts, into an event file (events/event_file.h), so an auditor can archive the
// log and replay it later without Kafka (`qudao replay --from-file FILE --partitions N`).
#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <filesystem>
#include <map>

#include "events/event_file.h"
#include "tools/commands.h"

namespace qudao {

int run_export(const ExportArgs& args, const std::atomic<bool>& stop) {
  using Clock = std::chrono::steady_clock;
  auto kafka = args.kafka.to_settings();
  if (!kafka.is_ok()) {
    spdlog::error("{}", kafka.status().message());
    return 2;
  }
  const std::string& topic = args.kafka.topic;
  auto source = KafkaSource::open(kafka.value(), topic, "qudao-export");
  if (!source.is_ok()) {
    spdlog::error("{}", source.status().message());
    return 2;
  }
  KafkaSource& s = *source.value();
  auto partitions = s.partitions(std::chrono::seconds(10));
  if (!partitions.is_ok()) {
    spdlog::error("{}", partitions.status().message());
    return 2;
  }
  const int partition_count = static_cast<int>(partitions.value().size());
  if (Status st = s.assign(partitions.value(), {}); !st.is_ok()) {
    spdlog::error("{}", st.message());
    return 2;
  }
  // The end of each partition now: the export is this prefix of the log, whatever arrives meanwhile.
  std::map<std::int32_t, Offset> end;
  for (PartitionId p : partitions.value()) {
    auto high = s.high_watermark(p, std::chrono::seconds(10));
    if (!high.is_ok()) {
      spdlog::error("{}", high.status().message());
      return 2;
    }
    end[p.value] = high.value();
  }
  auto writer = EventFileWriter::create(args.out_path);
  if (!writer.is_ok()) {
    spdlog::error("{}", writer.status().message());
    return 1;
  }
  auto reached_end = [&] {
    for (const auto& [p, e] : end) {
      if (e.value > 0 && s.position(PartitionId{p}) < e) return false;
    }
    return true;
  };
  auto fail = [&](int code, const std::string& message) {
    writer.value().reset();
    std::filesystem::remove(args.out_path);
    spdlog::error("{}; {} removed", message, args.out_path);
    return code;
  };

  const auto start = Clock::now();
  auto last_progress = start;
  std::uint64_t misplaced = 0, keyless = 0;
  while (!reached_end()) {
    if (stop.load()) return fail(130, "interrupted");
    auto polled = s.poll(10'000, std::chrono::milliseconds(100));
    if (!polled.is_ok()) return fail(2, polled.status().message());
    for (const Record& r : polled.value()) {
      if (r.offset >= end[r.partition.value]) continue;
      if (r.key.empty()) {
        ++keyless;
      } else if (partition_for_key(r.key, partition_count) != r.partition) {
        ++misplaced;
      }
      if (Status st = writer.value()->append(r.key, r.value); !st.is_ok()) return fail(1, st.message());
    }
    if (Clock::now() - last_progress >= std::chrono::seconds(2)) {
      last_progress = Clock::now();
      spdlog::info("export: {} records", writer.value()->records());
    }
  }
  if (Status st = writer.value()->finish(); !st.is_ok()) return fail(1, st.message());
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  const std::uint64_t records = writer.value()->records();
  if (keyless + misplaced > 0) {
    spdlog::warn("{} records have no key and {} are not on the partition murmur2 of their key gives: a replay of the "
                 "file cannot put them where Kafka has them",
                 keyless, misplaced);
  }
  fmt::print("exported {} records of {} ({} partitions) to {} in {:.2f} s; replay it with "
             "`qudao replay --from-file {} --partitions {}`\n",
             records, topic, partition_count, args.out_path, seconds, args.out_path, partition_count);
  return 0;
}

}  // namespace qudao
