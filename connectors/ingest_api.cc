#include "connectors/ingest_api.h"

#include <fmt/format.h>
#include <librdkafka/rdkafka.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <list>
#include <mutex>
#include <nlohmann/json.hpp>
#include <thread>

#include "events/json.h"
#include "events/shard_key.h"

namespace qudao {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// How often the delivery thread wakes to serve reports and check deadlines.
constexpr std::chrono::milliseconds kPollInterval{10};
constexpr std::chrono::milliseconds kPurgeReportWait{1'000};
constexpr std::string_view kRecordContentType = "application/x-qudao-flatbuffer";

HttpResponse json_answer(unsigned status, const json& body) {
  // Messages may quote a region from the query string, which need not be UTF-8.
  return HttpResponse{status, "application/json", body.dump(-1, ' ', false, json::error_handler_t::replace)};
}

HttpResponse error_answer(unsigned status, const std::string& message) { return json_answer(status, json{{"error", message}}); }

// application/json, with or without parameters (charset=utf-8), in any case.
bool is_json_media_type(std::string_view content_type) {
  const std::string_view type = content_type.substr(0, content_type.find(';'));
  const auto first = type.find_first_not_of(" \t"), last = type.find_last_not_of(" \t");
  if (first == std::string_view::npos) return false;
  constexpr std::string_view kJson = "application/json";
  const std::string_view t = type.substr(first, last - first + 1);
  return t.size() == kJson.size() && std::equal(t.begin(), t.end(), kJson.begin(), [](char a, char b) {
           return std::tolower(static_cast<unsigned char>(a)) == b;
         });
}

std::optional<std::string> known_region(const StockProjection& stock, LocationId id) {
  // Sku 0 is never stocked: the lookup returns the location's attributes and no rows.
  auto found = stock.location_stock(id, SkuId{0}, RegionScope::all());
  if (!found) return std::nullopt;
  return found->info.region;
}

// Locations besides the one the event is about that a scoped token must also hold: where a dispatch
// delivers, and the warehouse an order reserves at.
std::vector<EventLocation> other_locations(const fb::Envelope& event) {
  std::vector<EventLocation> out;
  if (const auto* d = event.payload_as_ShipmentDispatched()) {
    out.push_back({LocationId{d->to_location()}, "payload.to_location"});
  } else if (const auto* o = event.payload_as_OrderPlaced(); o != nullptr && o->fulfilment_location() != 0) {
    out.push_back({LocationId{o->fulfilment_location()}, "payload.fulfilment_location"});
  }
  return out;
}

struct Failure {
  std::size_t index = 0;
  std::string field;
  std::string reason;  // a RejectReason's name, or "forbidden"
  std::string message;
};

// One answer for a location of another region and one that does not exist, so that neither the
// region nor the existence of other regions' locations can be probed.
Failure out_of_scope(std::size_t index, const EventLocation& at, const Principal& principal) {
  return {index, std::string(at.field), "forbidden",
          fmt::format("location {} is not a location this server knows in the regions of token \"{}\"",
                      at.location.value, principal.name)};
}

// The checks of one parsed event against its key and the token's regions (the header's rules).
void check_locations(std::size_t index, const fb::Envelope& event, const std::string& key, const Principal& principal,
                     const StockProjection& stock, std::vector<Failure>& failures) {
  const bool scoped = !principal.scope.is_all();
  auto about = event_location(event);
  if (about && event.payload_type() == fb::Payload::LocationDefined) about.reset();  // it defines, not names, one
  const auto region = about ? known_region(stock, about->location) : std::nullopt;
  // The location before the key: a key derived from another region's location must not tell its region.
  if (scoped && about && (!region || !principal.scope.contains(*region))) {
    failures.push_back(out_of_scope(index, *about, principal));
    return;
  }
  if (scoped && !principal.scope.contains(key)) {
    failures.push_back({index, "key", "forbidden",
                        fmt::format("region \"{}\" is not among the regions of token \"{}\"", printable_key(key),
                                    principal.name)});
    return;
  }
  if (about && region && *region != key) {
    failures.push_back({index, std::string(about->field), reason_name(RejectReason::invalid_value),
                        fmt::format("location {} is in region \"{}\", not \"{}\" (the key): keyed so, the event "
                                    "would reach a shard that does not hold the location",
                                    about->location.value, printable_key(*region), printable_key(key))});
    return;
  }
  if (!scoped) return;
  for (const EventLocation& other : other_locations(event)) {
    const auto other_region = known_region(stock, other.location);
    if (!other_region || !principal.scope.contains(*other_region)) {
      failures.push_back(out_of_scope(index, other, principal));
      return;
    }
  }
}

// nlohmann's message without its "[json.exception.parse_error.101] " tag.
std::string tidy_json_error(std::string_view what) {
  if (what.starts_with("[json.exception.")) {
    if (const auto end = what.find("] "); end != std::string_view::npos) what.remove_prefix(end + 2);
  }
  return std::string(what);
}

}  // namespace

std::variant<std::vector<IngestRecord>, HttpResponse> validate_ingest(const HttpRequest& req, const Principal& principal,
                                                                      const StockProjection& stock) {
  if (!is_json_media_type(req.content_type)) {
    return error_answer(415, fmt::format("Content-Type must be application/json (one event object, or an array of "
                                         "them), got \"{}\"", req.content_type));
  }
  std::optional<std::string> region;
  for (const auto& [name, value] : req.query) {
    if (name != "region") return error_answer(400, fmt::format("query parameter {}: unknown (only region is)", name));
    if (value.empty()) return error_answer(400, "query parameter region: must not be empty");
    region = value;
  }
  if (region && !principal.scope.contains(*region)) {
    return error_answer(403, fmt::format("region \"{}\" is not among the regions of token \"{}\"",
                                         printable_key(*region), principal.name));
  }

  bool too_deep = false;
  json body;
  try {
    body = json::parse(req.body, [&](int depth, json::parse_event_t, json&) {
      too_deep |= depth > static_cast<int>(kIngestJsonDepthMax);
      return true;
    });
  } catch (const json::parse_error& e) {
    return error_answer(400, fmt::format("body: not valid JSON: {}", tidy_json_error(e.what())));
  }
  if (too_deep) return error_answer(400, fmt::format("body: JSON nested deeper than {}", kIngestJsonDepthMax));
  if (body.is_object()) body = json::array({std::move(body)});
  if (!body.is_array()) return error_answer(400, "body: expected an event object or an array of event objects");
  if (body.empty()) return error_answer(400, "body: an empty array; nothing to produce");
  if (body.size() > kIngestBatchEventsMax) {
    return error_answer(413, fmt::format("body: {} events; at most {} per request", body.size(), kIngestBatchEventsMax));
  }

  std::vector<IngestRecord> records;
  std::vector<Failure> failures;
  for (std::size_t i = 0; i < body.size(); ++i) {
    if (!body[i].is_object()) {
      failures.push_back({i, "", reason_name(RejectReason::malformed), "expected an event object"});
      continue;
    }
    auto parsed = from_json(body[i].dump());
    if (auto* r = std::get_if<Rejection>(&parsed)) {
      // Positions are in the event re-printed on one line, not in the body: keep only the problem.
      constexpr std::string_view kAt = "line 1, column ";
      if (const auto at = r->message.find(kAt); at != std::string::npos) {
        const auto colon = r->message.find(": ", at);
        if (colon != std::string::npos) r->message.erase(at, colon + 2 - at);
      }
      failures.push_back({i, r->field, reason_name(r->reason), r->message});
      continue;
    }
    IngestRecord record;
    record.value = std::move(std::get<std::vector<std::uint8_t>>(parsed));
    const fb::Envelope& event = *fb::GetEnvelope(record.value.data());  // from_json decoded it
    if (region) {
      record.key = *region;
    } else if (const auto own = own_shard_key(event)) {
      record.key = *own;
    } else if (const auto about = event_location(event)) {
      if (auto r = known_region(stock, about->location)) record.key = std::move(*r);
    }
    if (record.key.empty()) {
      const auto about = event_location(event);
      if (about && !principal.scope.is_all()) {
        failures.push_back(out_of_scope(i, *about, principal));
        continue;
      }
      failures.push_back(
          {i, "key", reason_name(RejectReason::missing_field),
           about ? fmt::format("no shard key: {} {} is not a location this server knows yet; give ?region=REGION",
                               about->field, about->location.value)
                 : fmt::format("no shard key: a {} event names no location; give ?region=REGION",
                               fb::EnumNamePayload(event.payload_type()))});
      continue;
    }
    if (auto r = check_shard_key(record.key, event)) {
      failures.push_back({i, r->field, reason_name(r->reason), r->message});
      continue;
    }
    const std::size_t before = failures.size();
    check_locations(i, event, record.key, principal, stock, failures);
    if (failures.size() != before) continue;
    record.event_id = event_id_text(EventId{event.event_id()->hi(), event.event_id()->lo()});
    record.schema_version = event.schema_version();
    records.push_back(std::move(record));
  }
  if (failures.empty()) return records;

  const bool forbidden =
      std::any_of(failures.begin(), failures.end(), [](const Failure& f) { return f.reason == "forbidden"; });
  json rejected = json::array();
  for (const Failure& f : failures) {
    rejected.push_back({{"index", f.index}, {"field", f.field}, {"reason", f.reason}, {"message", f.message}});
  }
  return json_answer(forbidden ? 403 : 400,
                     json{{"error", fmt::format("{} of {} events {}; nothing was produced", failures.size(), body.size(),
                                                forbidden ? "failed validation or are outside the token's regions"
                                                          : "failed validation")},
                          {"rejected", std::move(rejected)}});
}

// ---- producing ----

namespace {

// One accepted request while its records are in flight. `outstanding` counts the records not yet
// reported plus one for the producing itself, so that a report arriving while the request is still
// being produced cannot answer it early.
struct Pending {
  HttpResponder respond;
  std::vector<std::string> event_ids;
  Clock::time_point deadline;
  std::atomic<std::size_t> outstanding{1};
  std::atomic<bool> answered{false};
  std::mutex mutex;  // guards the two below
  std::size_t failed = 0;
  std::string first_error;
  bool timed_out = false;  // the first failed report was librdkafka's message timeout
};

// Why a request is answered 503, for the counters.
enum class Unacknowledged { timed_out, failed };

}  // namespace

struct EventIngest::Impl {
  IngestOptions options;
  const StockProjection& stock;
  rd_kafka_t* rk = nullptr;
  std::mutex mutex;  // guards pending
  std::list<std::shared_ptr<Pending>> pending;
  std::atomic<bool> stopping{false};
  std::thread poller;
  std::atomic<std::uint64_t> accepted{0}, refused{0}, timed_out{0}, failed{0}, delivered{0};

  Impl(IngestOptions o, const StockProjection& s) : options(std::move(o)), stock(s) {}

  // `failure` empty: every report is in, and the answer is what they said.
  void answer(Pending& p, std::string failure, Unacknowledged why = Unacknowledged::failed) {
    if (p.answered.exchange(true)) return;
    json ids(p.event_ids);
    {
      std::lock_guard lock(p.mutex);
      if (failure.empty() && p.failed != 0) {
        failure = fmt::format("{} of {} events were not acknowledged by Kafka: {}", p.failed, p.event_ids.size(),
                              p.first_error);
        why = p.timed_out ? Unacknowledged::timed_out : Unacknowledged::failed;
      }
    }
    if (failure.empty()) {
      accepted.fetch_add(1, std::memory_order_relaxed);
      p.respond(json_answer(202, json{{"event_ids", std::move(ids)}}));
    } else {
      (why == Unacknowledged::timed_out ? timed_out : failed).fetch_add(1, std::memory_order_relaxed);
      HttpResponse r = json_answer(503, json{{"error", failure + "; some events may have been produced: posting the "
                                                                 "same events again is safe (an event id is applied once)"},
                                             {"event_ids", std::move(ids)}});
      r.headers.emplace_back("Retry-After", "1");
      p.respond(std::move(r));
    }
  }

  // One record of `p` reported (or the producing done): the last one answers and forgets it.
  void finish_one(const std::shared_ptr<Pending>& p) {
    if (p->outstanding.fetch_sub(1) != 1) return;
    answer(*p, "");
    std::lock_guard lock(mutex);
    pending.remove(p);
  }

  static void on_delivery(rd_kafka_t*, const rd_kafka_message_t* m, void* opaque) {
    auto* self = static_cast<Impl*>(opaque);
    auto* held = static_cast<std::shared_ptr<Pending>*>(m->_private);
    if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) {
      self->delivered.fetch_add(1, std::memory_order_relaxed);
    } else {
      std::lock_guard lock((*held)->mutex);
      if ((*held)->failed++ == 0) {
        (*held)->first_error = rd_kafka_err2str(m->err);
        (*held)->timed_out = m->err == RD_KAFKA_RESP_ERR__MSG_TIMED_OUT;
      }
    }
    self->finish_one(*held);
    delete held;
  }

  void poll_loop() {
    while (!stopping.load(std::memory_order_relaxed)) {
      rd_kafka_poll(rk, static_cast<int>(kPollInterval.count()));
      std::vector<std::shared_ptr<Pending>> late;
      {
        std::lock_guard lock(mutex);
        const auto now = Clock::now();
        for (const auto& p : pending) {
          if (now >= p->deadline && !p->answered.load()) late.push_back(p);
        }
      }
      for (const auto& p : late) {
        answer(*p, fmt::format("Kafka did not acknowledge every event within {} ms", options.delivery_timeout.count()),
               Unacknowledged::timed_out);
      }
    }
  }
};

EventIngest::EventIngest(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

Result<std::unique_ptr<EventIngest>> EventIngest::open(const KafkaSettings& settings, IngestOptions options,
                                                       const StockProjection& stock) {
  auto impl = std::make_unique<Impl>(std::move(options), stock);
  // librdkafka gives up on a record at about the time the client is told 503, so that a request
  // answered 503 does not keep producing for minutes; the user's -X settings still win.
  KafkaSettings s = settings;
  s.overrides.insert(s.overrides.begin(),
                     {"message.timeout.ms", std::to_string(impl->options.delivery_timeout.count())});
  auto rk = open_producer_handle(s, "qudao-ingest", &Impl::on_delivery, impl.get());
  if (!rk.is_ok()) return rk.status();
  impl->rk = rk.value();
  Impl* raw = impl.get();
  impl->poller = std::thread([raw] { raw->poll_loop(); });
  return std::unique_ptr<EventIngest>(new EventIngest(std::move(impl)));
}

EventIngest::~EventIngest() {
  Impl& im = *impl_;
  im.stopping.store(true);
  if (im.poller.joinable()) im.poller.join();
  // What is queued gets its chance to be delivered, and its request a true answer; then the rest is
  // purged (its reports say so) and whoever still waits is told 503.
  if (rd_kafka_flush(im.rk, static_cast<int>(im.options.delivery_timeout.count())) != RD_KAFKA_RESP_ERR_NO_ERROR) {
    spdlog::warn("ingest: {} records not acknowledged at shutdown; their requests are answered 503",
                 rd_kafka_outq_len(im.rk));
  }
  std::vector<std::shared_ptr<Pending>> waiting;
  {
    std::lock_guard lock(im.mutex);
    waiting.assign(im.pending.begin(), im.pending.end());
  }
  for (const auto& p : waiting) im.answer(*p, "the server is stopping");
  rd_kafka_purge(im.rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
  // Serves the purged records' reports, which free their holders (bounded: a purge reports at once).
  rd_kafka_flush(im.rk, static_cast<int>(kPurgeReportWait.count()));
  rd_kafka_destroy(im.rk);
}

void EventIngest::post(const HttpRequest& req, const Principal& principal, HttpResponder respond) {
  Impl& im = *impl_;
  auto validated = validate_ingest(req, principal, im.stock);
  if (auto* refusal = std::get_if<HttpResponse>(&validated)) {
    im.refused.fetch_add(1, std::memory_order_relaxed);
    return respond(std::move(*refusal));
  }
  const auto& records = std::get<std::vector<IngestRecord>>(validated);
  auto p = std::make_shared<Pending>();
  p->respond = std::move(respond);
  p->deadline = Clock::now() + im.options.delivery_timeout;
  for (const IngestRecord& r : records) p->event_ids.push_back(r.event_id);
  {
    std::lock_guard lock(im.mutex);
    im.pending.push_back(p);
  }
  std::string failure;
  for (std::size_t i = 0; i < records.size(); ++i) {
    const IngestRecord& r = records[i];
    const std::string version = std::to_string(r.schema_version);
    auto* held = new std::shared_ptr<Pending>(p);
    p->outstanding.fetch_add(1);
    const rd_kafka_resp_err_t err = rd_kafka_producev(
        im.rk, RD_KAFKA_V_TOPIC(im.options.topic.c_str()), RD_KAFKA_V_KEY(r.key.data(), r.key.size()),
        RD_KAFKA_V_VALUE(const_cast<std::uint8_t*>(r.value.data()), r.value.size()),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADER("qudao-schema-version", version.data(), version.size()),
        RD_KAFKA_V_HEADER("content-type", kRecordContentType.data(), kRecordContentType.size()),
        RD_KAFKA_V_OPAQUE(held), RD_KAFKA_V_END);
    if (err != RD_KAFKA_RESP_ERR_NO_ERROR) {
      // Not queued: no report will come for it. Stop here rather than wait: the queue is full or
      // the producer is failing, and the client is told to retry.
      p->outstanding.fetch_sub(1);
      delete held;
      failure = fmt::format("kafka: {} of {} events could not be queued: {}", records.size() - i, records.size(),
                            rd_kafka_err2str(err));
      break;
    }
  }
  if (!failure.empty()) im.answer(*p, failure);
  im.finish_one(p);
}

EventIngest::Counters EventIngest::counters() const {
  return Counters{impl_->accepted.load(), impl_->refused.load(), impl_->timed_out.load(), impl_->failed.load(),
                  impl_->delivered.load()};
}

}  // namespace qudao
