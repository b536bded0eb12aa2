// Replays: rebuild all state from the start of a log into a fresh store, from Kafka (`qudao replay`,
// `qudao audit`) or from an event file (`qudao replay --from-file`, events/event_file.h).
//
// A file replay routes each record to a partition as Kafka's producers do (murmur2 of the key modulo
// the partition count, connectors/kafka.h), numbers each partition's records from offset 0, and
// sends them through the pipeline's own ingest path (BatchIngester, connectors/ingest_batch.h, in
// batches of 10,000 records) with the same commits. So
// a file produced to a topic of N partitions, and that file replayed with N partitions, give the
// same per-partition digests and the same SHA-256, provided the topic held nothing else (and no
// transaction markers, which take offsets too).
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <string>

#include "engine/store.h"
#include "tools/service.h"

namespace qudao {

struct Replayed {
  std::uint64_t events = 0;
  double seconds = 0;
  std::map<std::int32_t, std::uint64_t> digests;  // every partition, also the empty ones
  std::uint64_t digest = 0;
  std::string sha256;
};

struct FileReplayOptions {
  std::string path;               // an event file; "-" for stdin
  int partitions = 8;             // must be the topic's partition count for digests to match Kafka's
  std::string topic = kDefaultTopic;  // the topic the store says it follows (not part of the SHA-256)
  std::string data_dir;           // a new or empty directory
  SyncMode sync = SyncMode::no_fsync;
  std::chrono::milliseconds commit_interval{1'000};  // as a Kafka replay
  std::size_t commit_events_max = 200'000;
  std::chrono::milliseconds progress_interval{2'000};
};

// Replays the event file into a new store at options.data_dir. A record without a key is an error:
// Kafka would have put it on a random partition, so no replay can say where it belongs.
Result<Replayed> replay_file(const FileReplayOptions& options, const std::atomic<bool>& stop);

}  // namespace qudao
