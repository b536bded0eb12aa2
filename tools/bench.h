// qudao bench: named workloads that measure the engine against this machine's own ceiling, printed
// as one table (and JSON). Every row runs the same simulated channel (tools/simulate.h):
//
//   simulate         generating the workload into memory (must never limit the other rows)
//   decode           decode + verify + validate from memory, nothing applied
//   apply            decode, duplicate window, apply and project from memory, one thread
//   apply+commit     as apply, plus a durable RocksDB commit (fsync) every 100 ms
//   kafka raw        bare librdkafka consumption of the topic (the ceiling; needs --brokers)
//   source           qudao's Kafka source alone (fetch settings, aligned copies), nothing applied
//   ingest           the pipeline from the real broker into an empty store, fsync every 100 ms
//   replay           qudao replay's settings: commits every second without fsync
//   restart clean    `qudao serve` restarted after a clean stop until its totals are correct
//   restart kill -9  the same after kill -9
//   query            point and one-location stock queries at a fixed rate while serve ingests the
//                    topic from zero: latency percentiles, and the ingest rate under that load
//   query70          the same three queries while serve reads the topic the ingest row read at
//                    70 % of that row's rate (serve --max-events-per-s; --query70-producer live: what
//                    a paced producer writes meanwhile) (tools/bench_query.h): the measurement;
//                    with the same serve, rate and window without the queries run before and after
//                    it, so that the ingest's slowdown under the queries is measured, not assumed
//   memory           resident memory and disk per million (sku, location) stock keys
//   visible          produce → visible in a stock query at a fixed rate: latency percentiles
//                    (tools/bench_visible.h)
//   post             POST /v1/events throughput, batches of 100 (tools/bench_visible.h)
//
// Rows that need a broker are skipped (and say so) without --brokers.
#pragma once

#include <string>
#include <vector>

#include "tools/commands.h"

namespace qudao {

struct BenchArgs {
  KafkaArgs kafka;              // brokers empty: the in-memory rows only
  std::string preset = "small"; // small | medium | large
  std::vector<std::string> rows;  // empty: all
  std::string json_path;        // also write the table as JSON here
  std::string qudao_binary;     // for the restart rows (default: this program)
  std::size_t stock_keys = 1'000'000;
  double visible_rate_events_per_s = 0;  // the visible row; 0: half of this run's ingest row, else 250,000
  int visible_seconds = 10;              // how long the visible and post rows produce
  double query_ingest_rate_events_per_s = 0;  // the query70 row; 0: 70 % of this run's ingest row
  int query_seconds = 20;                     // the query70 row's window (after its warm-up), at most
  std::string query70_producer = "pre-produced";  // or "live" (tools/bench_query.h)
  int days = 0;  // days of the simulated channel; 0: the preset's (more days: more events, same channel)
};

int run_bench(const BenchArgs& args, const std::atomic<bool>& stop);

}  // namespace qudao
