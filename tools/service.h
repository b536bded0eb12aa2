// Service: one running qudao engine — store, Kafka source, pipeline, projections, HTTP API and the
// ingest endpoint's producer — assembled from options. `qudao serve` runs one; `qudao demo` runs one
// against the embedded broker. Destruction stops the HTTP server first, then flushes the ingest's
// producer (answering what still waits), then closes the rest.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "connectors/access.h"
#include "connectors/forecast_api.h"
#include "connectors/http_server.h"
#include "connectors/ingest_api.h"
#include "connectors/kafka.h"
#include "connectors/pipeline.h"
#include "engine/store.h"
#include "projections/stock.h"

namespace qudao {

inline constexpr const char* kDefaultTopic = "qudao.events";

struct ServiceOptions {
  KafkaSettings kafka;
  std::string topic = kDefaultTopic;
  std::string group_id = "qudao";
  std::string data_dir = "qudao-data";
  SyncMode sync = SyncMode::fsync;
  HttpOptions http;
  AccessTokens tokens;  // who may read what over HTTP; none: only /health answers
  std::string tokens_file;  // where `tokens` came from, read again by reload_tokens(); empty: nowhere
  PipelineOptions pipeline;
  // Where the outbox goes; empty: "<topic>.dispatch" and "<topic>.dead-letters". Created with
  // output_partitions partitions if missing.
  std::string dispatch_topic;
  std::string dead_letter_topic;
  int output_partitions = 8;
  // POST /v1/events: how long a request waits for Kafka's acknowledgement before a 503.
  std::chrono::milliseconds ingest_delivery_timeout{10'000};
  // The served forecast: recomputed from the committed state at most this often while events arrive.
  std::chrono::milliseconds forecast_refresh_interval = kForecastRefreshIntervalDefault;
};

class Service {
 public:
  static Result<std::unique_ptr<Service>> open(const ServiceOptions& options);
  ~Service();

  // Consumes until `stop` is set; the HTTP API answers meanwhile.
  Status run(const std::atomic<bool>& stop) { return pipeline_->run(stop); }

  // Reads the tokens file again (serve does on SIGHUP): the tokens in force, or why the old ones stay.
  Result<std::size_t> reload_tokens() { return tokens_->reload(); }
  const std::string& tokens_file() const { return tokens_->path(); }

  const Pipeline& pipeline() const { return *pipeline_; }
  const StockProjection& stock() const { return stock_; }
  std::uint16_t http_port() const { return http_->port(); }

 private:
  Service() = default;

  std::unique_ptr<Store> store_;
  std::unique_ptr<KafkaSource> source_;
  StockProjection stock_;
  std::unique_ptr<Relay> relay_;
  std::unique_ptr<Pipeline> pipeline_;
  std::unique_ptr<ServedTokens> tokens_;
  std::unique_ptr<EventIngest> ingest_;  // reset by ~Service() after http_ stops, before the rest
  std::unique_ptr<HttpServer> http_;  // last: stops before what its handlers read
};

}  // namespace qudao
