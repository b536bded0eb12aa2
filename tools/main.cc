// qudao: one binary, subcommands in the style of kcat and git.
//
//   qudao demo       embedded broker + simulated channel + engine + HTTP API, one command
//   qudao serve      consume the events topic into the ledger and serve the query API
//   qudao simulate   produce a seeded channel workload (with optional faults) to Kafka or an event file
//   qudao produce    publish JSON lines or an event file to Kafka, each event validated first
//   qudao inspect    print one event as JSON, or why it is rejected
//   qudao replay     rebuild all state from offset 0 (of Kafka or an event file); events/s and digests
//   qudao audit      check a store's invariants against a fresh replay
//   qudao export     copy the events topic into an event file, for archives and replays without Kafka
//   qudao bench      measure the engine against this machine's raw Kafka consumption
//   qudao dlq        list, show and re-drive dead letters
//   qudao forecast   demand forecast, its accuracy per series class, and the production plan of an event file
#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <filesystem>
#include <memory>

#include "tools/bench.h"
#include "tools/commands.h"
#include "tools/forecast.h"
#include "tools/produce.h"

namespace {

std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload_tokens{false};  // serve: SIGHUP asks for the tokens file to be read again

void on_signal(int) { g_stop.store(true); }
void on_hangup(int) { g_reload_tokens.store(true); }

CLI::Option* add_kafka_options(CLI::App& cmd, qudao::KafkaArgs& k) {
  auto* brokers = cmd.add_option("-b,--brokers", k.brokers, "Kafka bootstrap servers, host:port[,host:port...]");
  cmd.add_option("-X", k.settings, "librdkafka setting key=value (repeatable), e.g. -X security.protocol=SASL_SSL");
  cmd.add_option("-F,--kafka-config", k.properties_file, "librdkafka settings from a properties file (key=value lines)")
      ->check(CLI::ExistingFile);
  cmd.add_option("-t,--topic", k.topic, "events topic")->capture_default_str();
  return brokers;
}

void add_simulation_options(CLI::App& cmd, qudao::SimulateOptions& o) {
  auto preset = std::make_shared<std::string>();  // owned by the callback below, which lives as long as `cmd`
  cmd.add_option("--preset", *preset,
                 "workload size: small (a demo, ~0.8M events), medium (~4M), large (~23M); the size flags "
                 "below override it")
      ->check(CLI::IsMember(std::vector<std::string>(qudao::kSimulatePresets.begin(), qudao::kSimulatePresets.end())));
  cmd.add_option("--seed", o.seed, "random seed; the same seed, size and fault rates give the same events")->capture_default_str();
  auto* regions = cmd.add_option("--regions", o.regions, "number of sales regions (each is one shard key; HQ's is one more)")
      ->capture_default_str()->check(CLI::Range(1, 64));
  auto* cities = cmd.add_option("--cities", o.cities_per_region, "cities per region (one sub-warehouse each)")
      ->capture_default_str()->check(CLI::Range(1, 100));
  auto* stores = cmd.add_option("--stores", o.stores_per_city, "stores per city")->capture_default_str()
      ->check(CLI::Range(1, 1000));
  auto* skus = cmd.add_option("--skus", o.skus, "number of skus")->capture_default_str()->check(CLI::Range(1, 100000));
  auto* days = cmd.add_option("--days", o.days, "days to simulate, from 2026-01-01")->capture_default_str()
      ->check(CLI::Range(1, 3650));
  cmd.add_option("--from-day", o.from_day, "emit only days >= this (continue an earlier run of the same seed and size)")
      ->capture_default_str()->check(CLI::NonNegativeNumber);
  cmd.add_option("--duplicate-rate", o.duplicate_rate,
                 "fraction of events sent a second time later the same day (the engine ignores them as duplicates)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd.add_option("--late-rate", o.late_rate,
                 "fraction of scan-outs delivered late, occurred_at 1 h to 3 days old (valid: applied)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  cmd.add_option("--malformed-rate", o.malformed_rate,
                 "fraction of events followed by a malformed record (the engine rejects it)")
      ->capture_default_str()->check(CLI::Range(0.0, 1.0));
  // The preset sets the size knobs that were not given explicitly.
  cmd.callback([&o, preset, regions, cities, stores, skus, days] {
    if (preset->empty()) return;
    const qudao::SimulateOptions p = qudao::SimulateOptions::preset(*preset);
    if (regions->count() == 0) o.regions = p.regions;
    if (cities->count() == 0) o.cities_per_region = p.cities_per_region;
    if (stores->count() == 0) o.stores_per_city = p.stores_per_city;
    if (skus->count() == 0) o.skus = p.skus;
    if (days->count() == 0) o.days = p.days;
  });
}

}  // namespace

int main(int argc, char** argv) {
  auto logger = spdlog::stderr_color_mt("qudao");
  spdlog::set_default_logger(logger);
  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ %v");

  CLI::App app{"qudao: an event-sourced order and inventory ledger for distribution channels.\n"
               "Consumes order, shipment and scan-out events from Kafka into a RocksDB-backed ledger\n"
               "and serves stock projections over HTTP."};
  app.require_subcommand(1);
  app.set_version_flag("--version", "qudao 0.1.0");

  qudao::DemoArgs demo;
  auto* demo_cmd = app.add_subcommand("demo", "run everything on the embedded broker: simulate a channel, ingest it, serve the API");
  demo_cmd->add_option("--duration", demo.duration_s, "stop after this many seconds (0 = until Ctrl-C)")->capture_default_str();
  demo_cmd->add_option("--http-port", demo.http_port, "HTTP port on 127.0.0.1")->capture_default_str();
  demo_cmd->add_option("--tokens", demo.tokens_file,
                       "bearer tokens file (JSON, see README); default: the fixed demo tokens the demo prints")
      ->check(CLI::ExistingFile);
  demo_cmd->add_option("--partitions", demo.partitions, "partitions of the embedded events topic")->capture_default_str()
      ->check(CLI::Range(1, 64));
  demo_cmd->add_option("--data", demo.data_dir, "RocksDB directory (default: a fresh temporary directory, removed at exit)");
  add_simulation_options(*demo_cmd, demo.simulation);

  qudao::ServeArgs serve;
  auto* serve_cmd = app.add_subcommand("serve", "consume the events topic into the ledger and serve the query API");
  add_kafka_options(*serve_cmd, serve.kafka);
  serve_cmd->add_option("-d,--data", serve.data_dir, "RocksDB directory (created if missing)")->capture_default_str();
  serve_cmd->add_option("--http-address", serve.http_address, "HTTP listen address")->capture_default_str();
  serve_cmd->add_option("--http-port", serve.http_port, "HTTP port (0 = any free port)")->capture_default_str();
  serve_cmd->add_option("--tokens", serve.tokens_file,
                        "bearer tokens file (JSON: token -> role hq|regional|metrics|ingest and regions; see README);\n"
                        "read again on SIGHUP (kill -HUP): a file that does not parse leaves the tokens in force")
      ->required()->check(CLI::ExistingFile);
  serve_cmd->add_option("--http-header-bytes-max", serve.http_header_bytes_max,
                        "largest request header (request line + fields); larger: 431")
      ->capture_default_str()->check(CLI::Range(1024, 1024 * 1024));
  serve_cmd->add_option("--http-body-bytes-max", serve.http_body_bytes_max,
                        "largest request body; a larger declared body: 413 without reading it")
      ->capture_default_str()->check(CLI::Range(0, 64 * 1024 * 1024));
  serve_cmd->add_option("--http-read-timeout-ms", serve.http_read_timeout_ms,
                        "deadline for a whole request, idle keep-alive time included; then the connection is closed")
      ->capture_default_str()->check(CLI::Range(100, 600'000));
  serve_cmd->add_option("--http-connections-max", serve.http_connections_max,
                        "open connections; one more is answered 503 and closed")
      ->capture_default_str()->check(CLI::Range(1, 100'000));
  serve_cmd->add_option("--group", serve.group_id, "consumer group for advisory offset commits (lag monitoring)")
      ->capture_default_str();
  serve_cmd->add_option("--commit-interval-ms", serve.commit_interval_ms, "RocksDB commit interval")->capture_default_str()
      ->check(CLI::Range(1, 60'000));
  serve_cmd->add_option("--dedup-window-events", serve.dedup_window_events,
                        "applied event ids remembered per partition to ignore re-sent events")
      ->capture_default_str()->check(CLI::Range(1, 100'000'000));
  serve_cmd->add_option("--terminal-kept-max", serve.terminal_kept_max,
                        "ended orders (and, apart, received shipments) kept in memory per partition once committed; "
                        "older ones are evicted and read back from RocksDB if an event names them (-1: keep all)")
      ->capture_default_str()->check(CLI::Range(std::int64_t{-1}, std::int64_t{1'000'000'000}));
  serve_cmd->add_option("--dispatch-topic", serve.dispatch_topic,
                        "where paid orders' DispatchRequested events go, keyed by warehouse id (default: <topic>.dispatch)");
  serve_cmd->add_option("--dead-letter-topic", serve.dead_letter_topic,
                        "where rejected records go, original bytes, reason in headers (default: <topic>.dead-letters)");
  serve_cmd->add_option("--ingest-delivery-timeout-ms", serve.ingest_delivery_timeout_ms,
                        "POST /v1/events: how long a request waits for the broker's acknowledgement (acks=all) before a 503")
      ->capture_default_str()->check(CLI::Range(std::int64_t{100}, std::int64_t{300'000}));
  serve_cmd->add_option("--forecast-refresh-s", serve.forecast_refresh_s,
                        "the served forecast is recomputed from the committed state at most this often while events arrive")
      ->capture_default_str()->check(CLI::Range(std::int64_t{1}, std::int64_t{86'400}));
  serve_cmd->add_option("--max-events-per-s", serve.max_events_per_s,
                        "consume at most this many events per second (a token bucket holding 1 s of them; records "
                        "wait on the broker, nothing is skipped); 0 = no limit")
      ->capture_default_str()->check(CLI::Range(0.0, 1e9));
  serve_cmd->add_option("--sync", serve.sync, "fsync each commit (survives power loss) or not (survives kill -9)")
      ->capture_default_str()->check(CLI::IsMember({"fsync", "none"}));

  qudao::SimulateArgs sim;
  auto* sim_cmd = app.add_subcommand(
      "simulate", "produce a seeded channel workload to Kafka, or write it to an event file with --out;\n"
                  "prints the expected totals and outcome counts as JSON");
  auto* sim_brokers = add_kafka_options(*sim_cmd, sim.kafka);
  sim_cmd->add_option("--partitions", sim.partitions, "partitions if the topic must be created")->capture_default_str()
      ->check(CLI::Range(1, 1024));
  sim_cmd->add_option("--out", sim.out_path,
                      "write the events (with their keys) to this event file instead of Kafka; no broker needed")
      ->excludes(sim_brokers);
  add_simulation_options(*sim_cmd, sim.simulation);
  sim_cmd->add_flag_function(
      "--cross-shard", [&sim](std::int64_t) { sim.simulation.cross_shard = qudao::SimulateOptions::CrossShard::on; },
      "HQ's warehouse replenishes the regions' sub-warehouses through shipments between shards: factory\n"
      "batches after the opening stock arrive at HQ and are shipped on (each dispatch followed by its arrival\n"
      "leg, as qudao's relay writes it). Off by default: the stream of a seed is then what it always was");

  qudao::ProduceArgs produce;
  bool produce_strict = false, produce_dry_run = false;
  auto* produce_cmd = app.add_subcommand(
      "produce", "publish events to Kafka from JSON lines (one event per line, as `inspect` prints it) or an event\n"
                 "file; every event is validated first and the ones that fail are reported as `line N: <field>:\n"
                 "<message> (<reason>)` on stderr and not produced. Prints a JSON summary. Exit 0: all produced;\n"
                 "1: some failed validation (or the input is unreadable); 2: Kafka failed; 130: interrupted");
  add_kafka_options(*produce_cmd, produce.kafka);
  produce_cmd->add_option("input", produce.path, "JSON lines or an event file; - for stdin")->capture_default_str();
  produce_cmd->add_option("--format", produce.format,
                          "input format: jsonl, file (an event file: simulate --out, export), or auto (by the file's magic)")
      ->capture_default_str()->check(CLI::IsMember({"auto", "jsonl", "file"}));
  auto* produce_key = produce_cmd->add_option(
      "--key", produce.key.key, "the record key (shard key: a region) of every JSON line; without --key or -K only\n"
                                "LocationDefined events have a key, their own payload.region");
  produce_cmd->add_option("-K,--key-delimiter", produce.key.delimiter,
                          "as kcat's -K: each JSON line is KEY<delimiter>EVENT, e.g. -K '\\t' for East<TAB>{...}\n"
                          "(escapes as kcat's: \\t, \\r, \\\\, \\xNN)")
      ->excludes(produce_key);
  auto* strict_flag = produce_cmd->add_flag(
      "--strict", produce_strict,
      "validate the whole input first and produce nothing if any event fails (holds the input in\n"
      "memory, at most 1 GiB); without it the valid events are produced and the others reported");
  produce_cmd->add_flag("--dry-run", produce_dry_run, "validate and report only: produce nothing, need no broker")
      ->excludes(strict_flag);
  produce_cmd->add_option("--partitions", produce.partitions, "partitions if the topic must be created")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  produce_cmd->add_option("--progress-interval-s", produce.progress_interval_s, "seconds between progress lines on stderr")
      ->capture_default_str()->check(CLI::Range(1, 3600));

  qudao::InspectArgs inspect;
  auto* inspect_cmd = app.add_subcommand(
      "inspect", "print one event as JSON, or why it is rejected (exit 1); from a file, stdin or Kafka");
  inspect_cmd->add_option("file", inspect.path, "file holding one event; - for stdin")->capture_default_str();
  inspect_cmd->add_option("--format", inspect.format, "input format: bytes (a record value), hex, or json")
      ->capture_default_str()->check(CLI::IsMember({"bytes", "hex", "json"}));
  add_kafka_options(*inspect_cmd, inspect.kafka);
  inspect_cmd->add_option("-p,--partition", inspect.partition, "with --offset: the partition to read")->capture_default_str();
  inspect_cmd->add_option("-o,--offset", inspect.offset, "read the record at this offset from Kafka (needs -b)")
      ->check(CLI::NonNegativeNumber);

  qudao::ReplayArgs replay;
  auto* replay_cmd = app.add_subcommand(
      "replay", "rebuild all state from offset 0 of the topic (or of an event file, --from-file) into a fresh store;\n"
                "print events/s, per-partition digests and the state's SHA-256");
  auto* replay_brokers = add_kafka_options(*replay_cmd, replay.kafka);
  replay_cmd->add_option("-d,--data", replay.data_dir, "new directory to keep the rebuilt store in (default: temporary)");
  auto* replay_file = replay_cmd->add_option(
      "--from-file", replay.from_file,
      "replay an event file (simulate --out, export) instead of the topic; - for stdin; no broker needed")
      ->excludes(replay_brokers);
  replay_cmd->add_option("--partitions", replay.partitions,
                         "with --from-file: records go to partition murmur2(key) % N, as Kafka's producers put them;\n"
                         "N must be the topic's partition count for the digests to equal a replay from Kafka")
      ->capture_default_str()->check(CLI::Range(1, 1024))->needs(replay_file);

  qudao::AuditArgs audit;
  auto* audit_cmd = app.add_subcommand(
      "audit", "check a store: conservation, no negative warehouse stock, outcome counts, and a fresh replay's digest");
  add_kafka_options(*audit_cmd, audit.kafka);
  audit_cmd->add_option("-d,--data", audit.data_dir, "the store to audit (may be in use by serve)")->capture_default_str();

  qudao::ExportArgs export_args;
  auto* export_cmd = app.add_subcommand(
      "export", "copy every record of the events topic (each partition up to its end when the export starts)\n"
                "into an event file, for an archive or `replay --from-file FILE --partitions N`");
  add_kafka_options(*export_cmd, export_args.kafka);
  export_cmd->add_option("file", export_args.out_path, "the event file to write (replaced if it exists)")->required();

  qudao::DlqArgs dlq;
  auto* dlq_cmd = app.add_subcommand(
      "dlq", "the dead-letter topic: list its records, show one (headers and the event as JSON), or re-drive\n"
             "chosen ones to the events topic with their original key (after a fix upstream, or once what they\n"
             "referred to exists)");
  dlq_cmd->add_option("action", dlq.action, "list | show | redrive")->required()
      ->check(CLI::IsMember({"list", "show", "redrive"}));
  add_kafka_options(*dlq_cmd, dlq.kafka);
  dlq_cmd->add_option("--dead-letter-topic", dlq.dead_letter_topic, "default: <topic>.dead-letters");
  auto* dlq_partition = dlq_cmd->add_option("-p,--partition", dlq.partition, "one dead letter: its partition in the dead-letter topic");
  auto* dlq_offset = dlq_cmd->add_option("-o,--offset", dlq.offset, "one dead letter: its offset there (see `dlq list`)");
  dlq_partition->needs(dlq_offset);
  dlq_offset->needs(dlq_partition);
  dlq_cmd->add_option("--reason", dlq.reason, "only dead letters with this reason code (e.g. unknown_location)");
  dlq_cmd->add_flag("--all", dlq.all, "redrive: every dead letter (that --reason chooses)");
  dlq_cmd->add_option("--limit", dlq.limit, "list: at most this many lines")->capture_default_str();

  qudao::BenchArgs bench;
  auto* bench_cmd = app.add_subcommand(
      "bench", "run the benchmark workloads and print one table: generate, decode, apply, apply+commit from memory;\n"
               "with -b also raw librdkafka consumption, ingest and replay from the broker, restart times");
  add_kafka_options(*bench_cmd, bench.kafka);
  bench_cmd->add_option("--preset", bench.preset, "workload size (as simulate's --preset): small (~0.8M events), medium (~4M), large (~23M)")
      ->capture_default_str()->check(CLI::IsMember({"small", "medium", "large"}));
  bench_cmd->add_option("--rows", bench.rows,
                        "only these rows: decode, apply, apply+commit, kafka raw, source, ingest, replay, restart, query, query70, "
                        "memory, visible, post")
      ->delimiter(',');
  bench_cmd->add_option("--json", bench.json_path, "also write the table as JSON to this file");
  bench_cmd->add_option("--stock-keys", bench.stock_keys, "stock keys for the memory row")->capture_default_str()
      ->check(CLI::Range(1'000, 100'000'000));
  bench_cmd->add_option("--visible-rate", bench.visible_rate_events_per_s,
                        "events/s for the visible row (default: half of the ingest row's rate, or 250000 without it)")
      ->check(CLI::Range(1.0, 10'000'000.0));
  bench_cmd->add_option("--query-ingest-rate", bench.query_ingest_rate_events_per_s,
                        "events/s the query70 row's serve ingests while it is queried (default: 70 % of the ingest row's rate)")
      ->check(CLI::Range(1.0, 10'000'000.0));
  bench_cmd->add_option("--query70-producer", bench.query70_producer,
                        "where the query70 row's serve reads its events: pre-produced (the topic the ingest row read, "
                        "at serve's --max-events-per-s) or live (the bench produces them at the rate meanwhile, "
                        "on the same cores)")
      ->capture_default_str()->check(CLI::IsMember({"pre-produced", "live"}));
  bench_cmd->add_option("--query-seconds", bench.query_seconds, "the query70 row's window, after 3 s of warm-up (shorter if the workload runs out)")
      ->capture_default_str()->check(CLI::Range(1, 3600));
  bench_cmd->add_option("--days", bench.days,
                        "days of the simulated channel instead of the preset's (the same channel over a longer log:\n"
                        "--preset medium --days 300 is ~10M events, for the restart and replay rows at that size)")
      ->check(CLI::Range(1, 3650));
  bench_cmd->add_option("--visible-seconds", bench.visible_seconds, "how long the visible and post rows produce")
      ->capture_default_str()->check(CLI::Range(1, 3600));

  qudao::ForecastArgs forecast;
  auto* forecast_cmd = app.add_subcommand(
      "forecast", "demand forecast and production plan of an event file (simulate --out, export), offline:\n"
                  "daily sell-through per sku x region from the applied scan-outs, each series classified\n"
                  "(smooth / erratic / intermittent / lumpy by ADI and CV2) and forecast (SES or damped Holt;\n"
                  "Croston or SBA); accuracy per class from a rolling backtest (WAPE, MASE) against the naive\n"
                  "forecast; production per sku = forecast over its lead time + safety stock - (on hand + in\n"
                  "transit) + open backorders. Formulas: projections/forecast.h");
  forecast_cmd->add_option("file", forecast.path, "the event file; - for stdin")->required();
  forecast_cmd->add_option("--partitions", forecast.partitions,
                           "records go to partition murmur2(key) % N and are applied there, as replay --from-file")
      ->capture_default_str()->check(CLI::Range(1, 1024));
  forecast_cmd->add_option("--horizon", forecast.horizon_days,
                           "backtest: each forecast is for the day this many days after its origin (1 = next day)")
      ->capture_default_str()->check(CLI::Range(1, 365));
  forecast_cmd->add_option("--backtest-days", forecast.backtest_days,
                           "backtest: the last days of each series, forecast from a model chosen and fitted on the\n"
                           "days before them (series with fewer than 14 days before them are not backtested)")
      ->capture_default_str()->check(CLI::Range(1, 3650));
  forecast_cmd->add_option("--service-level", forecast.service_level,
                           "cycle service level of the safety stock: z = inverse normal of it, safety = z x sigma x\n"
                           "sqrt(lead time) per region (sigma: the model's one-day RMSE)")
      ->capture_default_str()->check(CLI::Range(qudao::kServiceLevelMin, qudao::kServiceLevelMax));
  forecast_cmd->add_option("--top", forecast.top, "plan rows to print, most units to produce first (0 = all)")
      ->capture_default_str();
  forecast_cmd->add_flag("--json", forecast.json, "print the report as JSON instead of tables");

  CLI11_PARSE(app, argc, argv);
  bench.qudao_binary = std::filesystem::read_symlink("/proc/self/exe").string();

  struct sigaction sa{};
  sa.sa_handler = on_signal;
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  if (*demo_cmd) return qudao::run_demo(demo, g_stop);
  if (*serve_cmd) {
    struct sigaction hangup{};  // serve only: for the other commands a hangup still ends them
    hangup.sa_handler = on_hangup;
    sigaction(SIGHUP, &hangup, nullptr);
    return qudao::run_serve(serve, g_stop, g_reload_tokens);
  }
  if (*sim_cmd) return qudao::run_simulate(sim, g_stop);
  if (*produce_cmd) {
    if (produce_strict) produce.mode = qudao::ProduceMode::all_or_nothing;
    if (produce_dry_run) produce.mode = qudao::ProduceMode::validate_only;
    return qudao::run_produce(produce, g_stop);
  }
  if (*inspect_cmd) return qudao::run_inspect(inspect);
  if (*replay_cmd) return qudao::run_replay(replay, g_stop);
  if (*audit_cmd) return qudao::run_audit(audit, g_stop);
  if (*export_cmd) return qudao::run_export(export_args, g_stop);
  if (*bench_cmd) return qudao::run_bench(bench, g_stop);
  if (*dlq_cmd) return qudao::run_dlq(dlq);
  if (*forecast_cmd) return qudao::run_forecast(forecast, g_stop);
  return 2;
}
