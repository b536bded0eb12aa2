// qudao produce: publish events from JSON lines or an event file (events/event_file.h) to Kafka with
// the idempotent producer, keyed by the shard key. Every input record is validated by decode()
// before anything is produced; the ones that fail are reported (line number + reason) and skipped,
// or, with --strict, stop the whole input from being produced (--dry-run only validates).
//
// The key of a JSON line (the region; see events/PRODUCERS.md):
//   - `-K D` (as kcat's -K): every line is KEY D EVENT-JSON, e.g. `East<TAB>{"event_id": ...}`;
//   - else `--key REGION` for every line;
//   - else a LocationDefined event is keyed by its own payload.region; any other event fails.
// A LocationDefined whose key is not its region fails: its location would live on a shard the
// events keyed by that region never reach. An event file's records carry their keys.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "events/decode.h"
#include "events/event_file.h"
#include "tools/commands.h"

namespace qudao {

enum class InputFormat : std::uint8_t { jsonl, file };

// How a JSON line gets its key: at most one of the two is set.
struct KeyRule {
  std::string key;        // --key: the key of every line
  std::string delimiter;  // -K: every line is key, delimiter, event JSON
};

// A -K delimiter as kcat reads one: `\t`, `\r`, `\\` and `\xNN` stand for their bytes. An error if
// it is empty, holds a newline (lines are split at newlines first) or a bad escape.
Result<std::string> parse_key_delimiter(std::string_view text);

// A validated record, ready to produce.
struct ProduceRecord {
  std::string key;
  std::vector<std::uint8_t> value;
};

// One line of JSON (without its newline) to a validated, keyed record, or why not: JSON syntax and
// schema errors (columns count from the start of the line, key included), decode()'s validation,
// and the key rules above.
std::variant<ProduceRecord, Rejection> record_from_json_line(std::string_view line, const KeyRule& rule);

// A JSON line longer than this fails without being parsed (an event is at most kEventBytesMax).
inline constexpr std::size_t kJsonLineBytesMax = kEventBytesMax + kEventFileKeyBytesMax;

// The input of `qudao produce`: records one by one, each validated.
class ProduceInput {
 public:
  struct Item {
    std::uint64_t number = 0;  // line number (from 1), or record number in an event file (from 1)
    std::uint64_t offset = 0;  // an event file's records: byte offset in the file
    std::variant<ProduceRecord, Rejection> result;
  };

  // `path` "-" is stdin. Without a format, an input that starts with the event file magic is an
  // event file, anything else JSON lines.
  static Result<std::unique_ptr<ProduceInput>> open(const std::string& path, std::optional<InputFormat> format,
                                                    KeyRule rule);
  ~ProduceInput();
  ProduceInput(const ProduceInput&) = delete;
  ProduceInput& operator=(const ProduceInput&) = delete;

  // The next record or failed record; nothing at the end. Blank lines are skipped. An error stops
  // the input: unreadable, or an event file that is truncated or corrupt.
  Result<std::optional<Item>> next();

  // "line 3: payload.qty: must be > 0, got -5 (invalid_value)", or for an event file
  // "record 3 (offset 1234): ...".
  std::string describe_failure(const Item& item) const;

  InputFormat format() const { return format_; }
  const std::string& name() const { return name_; }

 private:
  ProduceInput(std::FILE* stream, bool owned, std::string name, InputFormat format, KeyRule rule)
      : stream_(stream), owned_(owned), name_(std::move(name)), format_(format), rule_(std::move(rule)) {}
  struct Line {
    std::string_view text;  // without its newline (and '\r'); only the tail of a line too long
    std::uint64_t bytes = 0;  // the whole line's length
  };
  // The next line of JSON lines input; nothing at the end.
  Result<std::optional<Line>> next_line();

  std::FILE* stream_;
  bool owned_;
  std::string name_;
  InputFormat format_;
  KeyRule rule_;
  std::unique_ptr<EventFileReader> file_;
  std::string buffer_;  // jsonl: bytes read, from buffer_at_ on not yet handed out
  std::size_t buffer_at_ = 0;
  bool eof_ = false;
  std::uint64_t line_number_ = 0;
};

enum class ProduceMode : std::uint8_t {
  produce_valid,  // produce every valid record; report the others
  all_or_nothing, // --strict: validate the whole input first; produce nothing if any record fails
  validate_only,  // --dry-run: report, produce nothing, need no broker
};

struct ProduceArgs {
  KafkaArgs kafka;
  std::string path = "-";
  std::string format = "auto";  // auto | jsonl | file
  KeyRule key;
  ProduceMode mode = ProduceMode::produce_valid;
  int partitions = 8;  // if the topic must be created
  int progress_interval_s = 5;
};

// --strict holds the encoded input in memory until all of it is validated; at most this much.
inline constexpr std::size_t kStrictBytesMax = std::size_t{1} << 30;

// Exit codes: 0 every record produced and delivered; 1 records failed validation (or the input is
// unreadable or corrupt); 2 Kafka: settings, topic, produce or delivery failed; 130 interrupted.
int run_produce(const ProduceArgs& args, const std::atomic<bool>& stop);

}  // namespace qudao
