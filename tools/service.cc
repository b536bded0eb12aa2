#include "tools/service.h"

#include <spdlog/spdlog.h>

#include <filesystem>

#include "connectors/query_api.h"

namespace qudao {

Result<std::unique_ptr<Service>> Service::open(const ServiceOptions& options) {
  std::unique_ptr<Service> s(new Service());
  std::error_code ec;
  std::filesystem::create_directories(options.data_dir, ec);
  if (ec) return Status::error(fmt::format("data directory {}: {}", options.data_dir, ec.message()));

  auto store = Store::open(StoreOptions{options.data_dir, options.topic, options.sync});
  if (!store.is_ok()) return store.status();
  s->store_ = store.take();

  auto source = KafkaSource::open(options.kafka, options.topic, options.group_id);
  if (!source.is_ok()) return source.status();
  s->source_ = source.take();

  auto unsent = s->store_->outbox();
  if (!unsent.is_ok()) return unsent.status();
  RelayTopics topics{options.topic,
                     options.dispatch_topic.empty() ? options.topic + ".dispatch" : options.dispatch_topic,
                     options.dead_letter_topic.empty() ? options.topic + ".dead-letters" : options.dead_letter_topic};
  spdlog::info("outbox: dispatch requests to {}, dead letters to {}, arrival legs of shipments between shards to {}",
               topics.dispatch, topics.dead_letters, topics.source);
  auto relay = Relay::start(options.kafka, topics, options.output_partitions, unsent.take());
  if (!relay.is_ok()) return relay.status();
  s->relay_ = relay.take();

  auto pipeline = Pipeline::open(*s->store_, *s->source_, s->stock_, options.pipeline, s->relay_.get());
  if (!pipeline.is_ok()) return pipeline.status();
  s->pipeline_ = pipeline.take();
  const OutcomeCounts loaded = s->pipeline_->stats().totals;
  spdlog::info("store {}: {} events already applied, {} rejected", options.data_dir, loaded.applied, loaded.rejected);

  s->tokens_ = std::make_unique<ServedTokens>(options.tokens, options.tokens_file);
  auto ingest = EventIngest::open(options.kafka, IngestOptions{options.topic, options.ingest_delivery_timeout}, s->stock_);
  if (!ingest.is_ok()) return ingest.status();
  s->ingest_ = ingest.take();
  auto http = HttpServer::start(options.http,
                                make_query_api(s->stock_, *s->pipeline_, *s->store_, *s->tokens_, s->ingest_.get(),
                                               ForecastServiceOptions{options.forecast_refresh_interval}));
  if (!http.is_ok()) return http.status();
  s->http_ = http.take();
  return s;
}

Service::~Service() {
  // The ingest answers requests through the server's sessions: the server stops taking requests
  // first, then the ingest flushes and answers, and only then are the sessions destroyed.
  if (http_) http_->stop();
  ingest_.reset();
}

}  // namespace qudao
