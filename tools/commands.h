// The subcommands of the qudao binary. Each returns the process exit code.
#pragma once

#include <atomic>
#include <string>
#include <vector>

#include "tools/service.h"
#include "tools/simulate.h"

namespace qudao {

struct KafkaArgs {
  std::string brokers;
  std::vector<std::string> settings;  // -X key=value
  std::string properties_file;
  std::string topic = kDefaultTopic;

  // Builds librdkafka settings; an error names the bad argument.
  Result<KafkaSettings> to_settings() const;
};

struct ServeArgs {
  KafkaArgs kafka;
  std::string data_dir = "qudao-data";
  std::string http_address = "127.0.0.1";
  std::uint16_t http_port = 8080;
  std::string tokens_file;  // required: who may read what (connectors/access.h)
  std::uint32_t http_header_bytes_max = HttpOptions{}.header_bytes_max;
  std::uint64_t http_body_bytes_max = HttpOptions{}.body_bytes_max;
  std::int64_t http_read_timeout_ms = HttpOptions{}.read_timeout.count();
  std::size_t http_connections_max = HttpOptions{}.connections_max;
  std::string group_id = "qudao";
  int commit_interval_ms = 100;
  std::string sync = "fsync";
  std::size_t dedup_window_events = kDedupWindowEventsDefault;
  std::int64_t terminal_kept_max = static_cast<std::int64_t>(kTerminalKeptMaxDefault);  // -1: keep all
  std::string dispatch_topic;     // empty: <topic>.dispatch
  std::string dead_letter_topic;  // empty: <topic>.dead-letters
  std::int64_t ingest_delivery_timeout_ms = ServiceOptions{}.ingest_delivery_timeout.count();
  std::int64_t forecast_refresh_s =
      std::chrono::duration_cast<std::chrono::seconds>(kForecastRefreshIntervalDefault).count();
  double max_events_per_s = 0;  // consumption limit (connectors/consume_rate.h); 0: none
};

struct SimulateArgs {
  KafkaArgs kafka;
  int partitions = 4;
  std::string out_path;  // set: write an event file (events/event_file.h) instead of producing to Kafka
  SimulateOptions simulation;
};

struct DemoArgs {
  int duration_s = 0;
  std::uint16_t http_port = 8080;
  std::string tokens_file;  // empty: the fixed demo tokens (demo_tokens() in demo.cc)
  int partitions = 8;
  std::string data_dir;
  SimulateOptions simulation{.seed = 1, .regions = 8, .cities_per_region = 2, .stores_per_city = 10, .skus = 100,
                             .days = 60, .from_day = 0, .source = "qudao-demo"};
};

struct InspectArgs {
  std::string path = "-";       // a file of one event, or "-" for stdin
  std::string format = "bytes"; // bytes | hex | json
  KafkaArgs kafka;              // with partition and offset: read the record from Kafka instead
  std::int32_t partition = 0;
  std::int64_t offset = -1;
};

struct ReplayArgs {
  KafkaArgs kafka;
  std::string data_dir;   // empty: a temporary directory, removed afterwards
  std::string from_file;  // set: replay this event file instead of the topic (tools/replay.h)
  int partitions = 8;     // with from_file: the partition count of the topic it stands for
};

struct ExportArgs {
  KafkaArgs kafka;
  std::string out_path;  // the event file to write
};

struct AuditArgs {
  KafkaArgs kafka;
  std::string data_dir = "qudao-data";
};

struct DlqArgs {
  KafkaArgs kafka;                  // -t: the events topic
  std::string dead_letter_topic;    // empty: <topic>.dead-letters
  std::string action;               // list | show | redrive
  std::int32_t partition = -1;      // with offset: one dead letter
  std::int64_t offset = -1;
  std::string reason;               // only dead letters with this reason code
  bool all = false;                 // redrive every (chosen) dead letter
  std::size_t limit = 1000;         // list: at most this many lines
};

// Serves until `stop`; whenever `reload_tokens` is set (SIGHUP), clears it and reads the tokens file again.
int run_serve(const ServeArgs& args, const std::atomic<bool>& stop, std::atomic<bool>& reload_tokens);
int run_dlq(const DlqArgs& args);
int run_simulate(const SimulateArgs& args, const std::atomic<bool>& stop);
int run_demo(const DemoArgs& args, const std::atomic<bool>& stop);
int run_inspect(const InspectArgs& args);
int run_replay(const ReplayArgs& args, const std::atomic<bool>& stop);
int run_audit(const AuditArgs& args, const std::atomic<bool>& stop);
int run_export(const ExportArgs& args, const std::atomic<bool>& stop);

}  // namespace qudao
