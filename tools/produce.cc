#include "tools/produce.h"

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <cctype>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <nlohmann/json.hpp>

#include "events/json.h"
#include "events/shard_key.h"

namespace qudao {
namespace {

using Clock = std::chrono::steady_clock;

constexpr std::size_t kReadChunkBytes = 64 * 1024;
constexpr std::size_t kStreamBufferBytes = 1 << 20;

}  // namespace

Result<std::string> parse_key_delimiter(std::string_view text) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (text[i] != '\\') {
      out.push_back(text[i]);
      continue;
    }
    const char c = i + 1 < text.size() ? text[i + 1] : '\0';
    if (c == 't') out.push_back('\t');
    else if (c == 'r') out.push_back('\r');
    else if (c == '\\') out.push_back('\\');
    else if (c == 'x' && i + 3 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 2])) &&
             std::isxdigit(static_cast<unsigned char>(text[i + 3]))) {
      out.push_back(static_cast<char>(std::stoi(std::string(text.substr(i + 2, 2)), nullptr, 16)));
      i += 2;
    } else {
      return Status::error(fmt::format("-K \"{}\": unknown escape at byte {} (\\t, \\r, \\\\ and \\xNN are known)",
                                       printable_key(text), i));
    }
    ++i;
  }
  if (out.empty()) return Status::error("-K: the key delimiter is empty");
  if (out.find('\n') != std::string::npos) return Status::error("-K: the key delimiter cannot hold a newline");
  return out;
}

std::variant<ProduceRecord, Rejection> record_from_json_line(std::string_view line, const KeyRule& rule) {
  std::string key;
  std::string doc(line);
  if (!rule.delimiter.empty()) {
    const std::size_t at = line.find(rule.delimiter);
    if (at == std::string_view::npos) {
      return Rejection{RejectReason::missing_field, "key",
                       fmt::format("no key: the line has no key delimiter \"{}\" (-K)", printable_key(rule.delimiter))};
    }
    key = line.substr(0, at);
    if (key.empty()) return Rejection{RejectReason::missing_field, "key", "the key before the delimiter is empty"};
    // Blanks instead of the key: JSON ignores them, and the parser's columns stay the line's.
    std::fill(doc.begin(), doc.begin() + static_cast<std::ptrdiff_t>(at + rule.delimiter.size()), ' ');
  }
  auto parsed = from_json(doc);
  if (auto* r = std::get_if<Rejection>(&parsed)) {
    // The document is one line: its line number is the input's, which the report gives.
    constexpr std::string_view kLineOne = "line 1, column ";
    if (const std::size_t at = r->message.find(kLineOne); at != std::string::npos) {
      r->message.replace(at, kLineOne.size(), "column ");
    }
    return std::move(*r);
  }
  ProduceRecord record;
  record.value = std::move(std::get<std::vector<std::uint8_t>>(parsed));
  const fb::Envelope& event = *fb::GetEnvelope(record.value.data());  // decode() accepted it in from_json
  if (rule.delimiter.empty()) {
    if (!rule.key.empty()) {
      key = rule.key;
    } else if (const auto own = own_shard_key(event)) {
      key = *own;
    } else {
      return Rejection{RejectReason::missing_field, "key",
                       fmt::format("no shard key for a {} event: give --key REGION, or key each line as "
                                   "REGION<delimiter>JSON with -K",
                                   fb::EnumNamePayload(event.payload_type()))};
    }
  }
  if (auto r = check_shard_key(key, event)) return std::move(*r);
  record.key = std::move(key);
  return record;
}

// ---- input ----

Result<std::unique_ptr<ProduceInput>> ProduceInput::open(const std::string& path, std::optional<InputFormat> format,
                                                         KeyRule rule) {
  std::FILE* f = stdin;
  std::string name = "stdin";
  if (path != "-") {
    f = std::fopen(path.c_str(), "rb");
    if (f == nullptr) return Status::error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
    std::setvbuf(f, nullptr, _IOFBF, kStreamBufferBytes);
    name = path;
  }
  // The first bytes tell an event file (its magic) from JSON lines; they are handed on, not lost.
  std::string head(kEventFileMagic.size(), '\0');
  head.resize(std::fread(head.data(), 1, head.size(), f));
  const InputFormat detected = head == kEventFileMagic ? InputFormat::file : InputFormat::jsonl;
  std::unique_ptr<ProduceInput> in(
      new ProduceInput(f, f != stdin, name, format.value_or(detected), std::move(rule)));
  if (std::ferror(f)) return Status::error(fmt::format("{}: read error: {}", name, std::strerror(errno)));
  if (in->format_ == InputFormat::file) {
    auto reader = EventFileReader::open(f, name, head);
    if (!reader.is_ok()) return reader.status();
    in->file_ = reader.take();
  } else {
    in->buffer_ = std::move(head);
  }
  return in;
}

ProduceInput::~ProduceInput() {
  file_.reset();
  if (owned_) std::fclose(stream_);
}

Result<std::optional<ProduceInput::Line>> ProduceInput::next_line() {
  std::size_t scan = buffer_at_;
  std::uint64_t dropped = 0;  // leading bytes of a line too long, already thrown away
  auto line = [&](std::size_t end) {
    std::string_view text(buffer_.data() + buffer_at_, end - buffer_at_);
    const std::uint64_t bytes = dropped + text.size();
    if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
    return std::optional<Line>(Line{text, bytes});
  };
  for (;;) {
    if (const std::size_t nl = buffer_.find('\n', scan); nl != std::string::npos) {
      auto l = line(nl);
      buffer_at_ = nl + 1;
      return l;
    }
    if (eof_) {
      if (buffer_at_ == buffer_.size() && dropped == 0) return std::optional<Line>();
      auto l = line(buffer_.size());
      buffer_at_ = buffer_.size();
      return l;
    }
    buffer_.erase(0, buffer_at_);
    buffer_at_ = 0;
    if (buffer_.size() > kJsonLineBytesMax) {  // keep reading to its end, but not holding it
      dropped += buffer_.size();
      buffer_.clear();
    }
    scan = buffer_.size();
    const std::size_t old = buffer_.size();
    buffer_.resize(old + kReadChunkBytes);
    const std::size_t got = std::fread(buffer_.data() + old, 1, kReadChunkBytes, stream_);
    buffer_.resize(old + got);
    if (got == 0) {
      if (std::ferror(stream_)) {
        return Status::error(fmt::format("{}: read error after line {}: {}", name_, line_number_, std::strerror(errno)));
      }
      eof_ = true;
    }
  }
}

Result<std::optional<ProduceInput::Item>> ProduceInput::next() {
  if (format_ == InputFormat::file) {
    auto record = file_->next();
    if (!record.is_ok()) return record.status();
    if (!record.value()) return std::optional<Item>();
    const FileRecord& r = *record.value();
    Item item{r.index + 1, r.offset, Rejection{}};
    const Decoded decoded = decode(r.value);
    if (auto* rejection = std::get_if<Rejection>(&decoded)) {
      item.result = *rejection;
    } else if (auto key_rejection = check_shard_key(r.key, *std::get<Event>(decoded).envelope)) {
      item.result = std::move(*key_rejection);
    } else {
      item.result = ProduceRecord{std::string(r.key), std::vector<std::uint8_t>(r.value.begin(), r.value.end())};
    }
    return std::optional<Item>(std::move(item));
  }
  for (;;) {
    auto line = next_line();
    if (!line.is_ok()) return line.status();
    if (!line.value()) return std::optional<Item>();
    ++line_number_;
    const Line& l = *line.value();
    if (l.bytes > kJsonLineBytesMax) {
      return std::optional<Item>(Item{line_number_, 0,
                                      Rejection{RejectReason::malformed, "",
                                                fmt::format("the line is {} bytes, longer than the limit of {}",
                                                            l.bytes, kJsonLineBytesMax)}});
    }
    if (l.text.find_first_not_of(" \t") == std::string_view::npos) continue;  // blank
    return std::optional<Item>(Item{line_number_, 0, record_from_json_line(l.text, rule_)});
  }
}

std::string ProduceInput::describe_failure(const Item& item) const {
  const auto* r = std::get_if<Rejection>(&item.result);
  const std::string what = r != nullptr ? r->to_string() : "ok";
  if (format_ == InputFormat::file) return fmt::format("record {} (offset {}): {}", item.number, item.offset, what);
  return fmt::format("line {}: {}", item.number, what);
}

// ---- the command ----

namespace {

struct Counts {
  std::uint64_t read = 0;      // records or non-blank lines
  std::uint64_t failed = 0;    // failed validation
  std::uint64_t produced = 0;  // handed to the producer
};

class Progress {
 public:
  explicit Progress(std::chrono::seconds interval) : interval_(interval) {}
  void maybe_log(const Counts& c, const KafkaProducer* producer) {
    const auto now = Clock::now();
    if (now - last_ < interval_) return;
    last_ = now;
    const double s = std::chrono::duration<double>(now - start_).count();
    spdlog::info("produce: {} read, {} failed validation, {} produced, {} delivered; {:.0f} events/s", c.read,
                 c.failed, c.produced, producer != nullptr ? producer->delivered() : 0,
                 static_cast<double>(producer != nullptr ? c.produced : c.read) / std::max(s, 1e-9));
  }
  double seconds() const { return std::chrono::duration<double>(Clock::now() - start_).count(); }

 private:
  std::chrono::seconds interval_;
  Clock::time_point start_ = Clock::now();
  Clock::time_point last_ = start_;
};

Status produce_one(KafkaProducer& producer, const std::string& topic, const ProduceRecord& r) {
  return producer.produce(topic, {reinterpret_cast<const std::uint8_t*>(r.key.data()), r.key.size()}, r.value);
}

}  // namespace

int run_produce(const ProduceArgs& args, const std::atomic<bool>& stop) {
  const bool dry_run = args.mode == ProduceMode::validate_only;
  const bool strict = args.mode == ProduceMode::all_or_nothing;
  Result<KafkaSettings> kafka = KafkaSettings{};
  if (!dry_run) kafka = args.kafka.to_settings();
  if (!kafka.is_ok()) {
    spdlog::error("{}", kafka.status().message());
    return 2;
  }
  std::optional<InputFormat> format;
  if (args.format == "jsonl") format = InputFormat::jsonl;
  if (args.format == "file") format = InputFormat::file;
  KeyRule key_rule = args.key;
  if (!key_rule.key.empty() && !key_rule.delimiter.empty()) {
    spdlog::error("--key and -K exclude each other");
    return 1;
  }
  if (!key_rule.delimiter.empty()) {
    auto delimiter = parse_key_delimiter(key_rule.delimiter);
    if (!delimiter.is_ok()) {
      spdlog::error("{}", delimiter.status().message());
      return 1;
    }
    key_rule.delimiter = delimiter.take();
  }
  auto input = ProduceInput::open(args.path, format, key_rule);
  if (!input.is_ok()) {
    spdlog::error("{}", input.status().message());
    return 1;
  }
  ProduceInput& in = *input.value();
  if (in.format() == InputFormat::file && (!args.key.key.empty() || !args.key.delimiter.empty())) {
    spdlog::error("{} is an event file: its records carry their keys (--key and -K are for JSON lines)", in.name());
    return 1;
  }
  const std::string& topic = args.kafka.topic;
  std::unique_ptr<KafkaProducer> producer;
  if (!dry_run) {
    if (Status s = ensure_topic(kafka.value(), topic, args.partitions, std::chrono::seconds(30)); !s.is_ok()) {
      spdlog::error("{}", s.message());
      return 2;
    }
    auto opened = KafkaProducer::open(kafka.value());
    if (!opened.is_ok()) {
      spdlog::error("{}", opened.status().message());
      return 2;
    }
    producer = opened.take();
  }

  Counts counts;
  Progress progress(std::chrono::seconds(args.progress_interval_s));
  Status input_error = Status::ok();
  Status kafka_error = Status::ok();
  std::vector<ProduceRecord> held;  // --strict: everything valid so far, produced once all is
  std::size_t held_bytes = 0;
  while (!stop.load(std::memory_order_relaxed)) {
    auto item = in.next();
    if (!item.is_ok()) {
      input_error = item.status();
      break;
    }
    if (!item.value()) break;
    ++counts.read;
    if (std::holds_alternative<Rejection>(item.value()->result)) {
      ++counts.failed;
      fmt::print(stderr, "{}\n", in.describe_failure(*item.value()));
      continue;
    }
    ProduceRecord& record = std::get<ProduceRecord>(item.value()->result);
    if (strict) {
      held_bytes += record.key.size() + record.value.size();
      if (held_bytes > kStrictBytesMax) {
        input_error = Status::error(fmt::format("--strict holds the input in memory, at most {} bytes of events; this "
                                                "one holds more: split it", kStrictBytesMax));
        break;
      }
      held.push_back(std::move(record));
    } else if (producer) {
      if (kafka_error = produce_one(*producer, topic, record); !kafka_error.is_ok()) break;
      ++counts.produced;
    }
    progress.maybe_log(counts, producer.get());
  }
  if (!input_error.is_ok()) spdlog::error("{}", input_error.message());
  if (strict && kafka_error.is_ok() && !stop.load()) {
    if (counts.failed != 0 || !input_error.is_ok()) {
      spdlog::error("--strict: {}; nothing produced",
                    input_error.is_ok() ? fmt::format("{} of {} records failed validation", counts.failed, counts.read)
                                        : std::string("the input could not be read to its end"));
    } else {
      for (const ProduceRecord& record : held) {
        if (stop.load(std::memory_order_relaxed)) break;
        if (kafka_error = produce_one(*producer, topic, record); !kafka_error.is_ok()) break;
        ++counts.produced;
        progress.maybe_log(counts, producer.get());
      }
    }
  }
  if (producer && kafka_error.is_ok()) kafka_error = producer->flush(std::chrono::minutes(5));
  if (!kafka_error.is_ok()) spdlog::error("{}", kafka_error.message());

  const double seconds = progress.seconds();
  const std::uint64_t delivered = producer ? producer->delivered() : 0;
  const nlohmann::json summary = {
      {"input", in.name()}, {"format", in.format() == InputFormat::file ? "file" : "jsonl"},
      {"topic", dry_run ? "" : topic}, {"read", counts.read}, {"failed_validation", counts.failed},
      {"produced", counts.produced}, {"delivered", delivered}, {"seconds", seconds}};
  if (dry_run) {
    spdlog::info("{}: {} read, {} failed validation, in {:.2f} s (--dry-run: nothing produced)", in.name(), counts.read,
                 counts.failed, seconds);
  } else {
    spdlog::info("{}: {} read, {} failed validation, {} produced to {}, {} delivered, in {:.2f} s ({:.0f} events/s)",
                 in.name(), counts.read, counts.failed, counts.produced, topic, delivered, seconds,
                 static_cast<double>(counts.produced) / std::max(seconds, 1e-9));
  }
  fmt::print("{}\n", summary.dump());
  if (stop.load()) {
    spdlog::error("interrupted: only part of the input was produced");
    return 130;
  }
  if (!kafka_error.is_ok()) return 2;
  if (counts.failed != 0 || !input_error.is_ok()) return 1;
  return 0;
}

}  // namespace qudao
