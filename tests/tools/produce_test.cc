// qudao produce without Kafka: how lines become keyed, validated records, and how the ones that fail
// are reported (line number, field, message, reason).
#include "tools/produce.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fstream>

#include "events/json.h"
#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

std::string json_line(const Bytes& event) {
  auto j = to_json(event, JsonStyle::compact);
  REQUIRE(std::holds_alternative<std::string>(j));
  return std::get<std::string>(j);
}

std::string failure(const std::variant<ProduceRecord, Rejection>& r) {
  REQUIRE_MESSAGE(std::holds_alternative<Rejection>(r), "expected a rejection");
  return std::get<Rejection>(r).to_string();
}

const ProduceRecord& record(const std::variant<ProduceRecord, Rejection>& r) {
  if (const auto* rejection = std::get_if<Rejection>(&r)) FAIL("unexpected rejection: " << rejection->to_string());
  return std::get<ProduceRecord>(r);
}

void write_file(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
}

// Every item of the input: "key" for a record, the report line for a failure; or the error that stopped it.
std::vector<std::string> items(const std::string& path, std::optional<InputFormat> format, KeyRule rule,
                               InputFormat expected_format) {
  auto in = ProduceInput::open(path, format, std::move(rule));
  REQUIRE_MESSAGE(in.is_ok(), in.status().message());
  CHECK(in.value()->format() == expected_format);
  std::vector<std::string> out;
  for (;;) {
    auto item = in.value()->next();
    if (!item.is_ok()) {
      out.push_back("error: " + item.status().message());
      return out;
    }
    if (!item.value()) return out;
    const auto& result = item.value()->result;
    if (const auto* r = std::get_if<ProduceRecord>(&result)) {
      CHECK(std::holds_alternative<Event>(decode(r->value)));
      out.push_back("key " + r->key);
    } else {
      out.push_back(in.value()->describe_failure(*item.value()));
    }
  }
}

}  // namespace

TEST_CASE("produce: a JSON line's key comes from --key, -K, or a LocationDefined's own region") {
  Events ev;
  const std::string scan = json_line(ev.scan_out(2, 3, 1));
  const std::string location = json_line(ev.location(2, fb::LocationKind::Store, "East"));

  const auto result = record_from_json_line(scan, {.key = "East"});
  const ProduceRecord& r = record(result);
  CHECK(r.key == "East");
  CHECK(std::get<Event>(decode(r.value)).type() == fb::Payload::ScanOut);
  CHECK(failure(record_from_json_line(scan, {})) ==
        "key: no shard key for a ScanOut event: give --key REGION, or key each line as REGION<delimiter>JSON with -K "
        "(missing_field)");

  CHECK(record(record_from_json_line(location, {})).key == "East");
  CHECK(record(record_from_json_line(location, {.key = "East"})).key == "East");
  CHECK(failure(record_from_json_line(location, {.key = "West"})) ==
        "key: \"West\" is not the location's region \"East\": the location would live on another shard than the "
        "events keyed by its region (invalid_value)");

  const KeyRule tab{.delimiter = "\t"};
  CHECK(record(record_from_json_line("North\t" + scan, tab)).key == "North");
  CHECK(record(record_from_json_line("East\t" + location, tab)).key == "East");
  CHECK(failure(record_from_json_line(scan, tab)) ==
        "key: no key: the line has no key delimiter \"\\t\" (-K) (missing_field)");
  CHECK(failure(record_from_json_line("\t" + scan, tab)) == "key: the key before the delimiter is empty (missing_field)");
  CHECK(failure(record_from_json_line("South\t" + location, tab)).find("key: \"South\" is not the location's region") == 0);
  CHECK(failure(record_from_json_line(scan, {.key = std::string(300, 'x')})) ==
        "key: 300 bytes; the shard key is a region name, at most 256 bytes (invalid_value)");
}

TEST_CASE("produce: a rebate settlement (schema version 4) is produced under its party's region, and a bad one "
          "names its field") {
  Events ev;
  const std::string settle =
      json_line(copy(ev.writer().rebate_settled(ev.next(), 101, "2026-Q1", Fen{150'000}, "FIN-2026-04-000123")));
  const auto result = record_from_json_line(settle, {.key = "East"});
  const ProduceRecord& r = record(result);
  CHECK(r.key == "East");
  const Event e = std::get<Event>(decode(r.value));
  CHECK(e.type() == fb::Payload::RebateSettled);
  CHECK(e.envelope->schema_version() == kSchemaVersion);
  CHECK(e.envelope->payload_as_RebateSettled()->payment_reference()->str() == "FIN-2026-04-000123");
  CHECK(record(record_from_json_line("East\t" + settle, {.delimiter = "\t"})).key == "East");
  CHECK(failure(record_from_json_line(settle, {})).starts_with("key: no shard key for a RebateSettled event"));
  const std::string none = json_line(copy(ev.writer().rebate_settled(ev.next(), 101, "2026-Q1", Fen{-1}, "FIN-1")));
  CHECK(failure(record_from_json_line(none, {.key = "East"})) == "payload.amount_fen: must be > 0, got -1 (invalid_value)");
}

TEST_CASE("produce: -K takes kcat's escapes") {
  CHECK(parse_key_delimiter("\\t").value() == "\t");
  CHECK(parse_key_delimiter("\t").value() == "\t");
  CHECK(parse_key_delimiter("::").value() == "::");
  CHECK(parse_key_delimiter("\\x1f|\\\\").value() == "\x1f|\\");
  CHECK(parse_key_delimiter("\\q").status().message() ==
        "-K \"\\q\": unknown escape at byte 0 (\\t, \\r, \\\\ and \\xNN are known)");
  CHECK_FALSE(parse_key_delimiter("\\x4").is_ok());
  CHECK_FALSE(parse_key_delimiter("\n").is_ok());
}

TEST_CASE("produce: validation failures name the field, JSON errors the column in the line") {
  Events ev;
  CHECK(failure(record_from_json_line(json_line(ev.scan_out(2, 3, -5)), {.key = "East"})) ==
        "payload.qty: must be > 0, got -5 (invalid_value)");
  // The line is one document: the error gives the column only (the report gives the line), and
  // with -K the column counts from the start of the line, key included.
  const std::string bad = R"({"event_id": {"hi": 1, "lo": 2}, "payload_type": "ScanOut", "payload": {"qtty": 1}})";
  const std::string plain = failure(record_from_json_line(bad, {.key = "East"}));
  const std::string keyed = failure(record_from_json_line("East\t" + bad, {.delimiter = "\t"}));
  CHECK(plain.find("line 1") == std::string::npos);
  CHECK(plain.find("unknown field: qtty") != std::string::npos);
  auto column = [](const std::string& message) {
    const std::size_t at = message.find("column ");
    REQUIRE(at != std::string::npos);
    return std::stoi(message.substr(at + 7));
  };
  CHECK(column(keyed) == column(plain) + 5);
  CHECK(failure(record_from_json_line("{", {.key = "East"})) ==
        "invalid JSON event: column 1: expecting: string constant instead got: end of file (malformed)");
}

TEST_CASE("produce: the report of a JSON lines input gives each failed line's number and reason") {
  TempDir dir;
  Events ev;
  const std::string path = dir.path() + "/in.jsonl";
  write_file(path, json_line(ev.location(1, fb::LocationKind::SubWarehouse, "East")) + "\n" +  // 1
                       "\n" +                                                                 // 2: blank
                       "   \n" +                                                              // 3: blank
                       json_line(ev.scan_out(2, 3, -5)) + "\n" +                              // 4
                       "{\"event_id\": \n" +                                                  // 5
                       json_line(ev.scan_out(2, 3, 1)) + "\r\n" +                             // 6: no key
                       json_line(ev.location(2, fb::LocationKind::Store, "West")));           // 7: no newline
  const std::vector<std::string> got = items(path, std::nullopt, {}, InputFormat::jsonl);
  REQUIRE(got.size() == 5);
  CHECK(got[0] == "key East");
  CHECK(got[1] == "line 4: payload.qty: must be > 0, got -5 (invalid_value)");
  CHECK(got[2].find("line 5: invalid JSON event: column ") == 0);
  CHECK(got[2].find("(malformed)") != std::string::npos);
  CHECK(got[3].find("line 6: key: no shard key for a ScanOut event") == 0);
  CHECK(got[4] == "key West");

  // With -K every line carries its key; a CRLF line ending is not part of the event.
  write_file(path, "East\t" + json_line(ev.scan_out(2, 3, 1)) + "\r\n" + json_line(ev.scan_out(2, 3, 1)) + "\n");
  CHECK(items(path, std::nullopt, {.delimiter = "\t"}, InputFormat::jsonl) ==
        std::vector<std::string>{"key East", "line 2: key: no key: the line has no key delimiter \"\\t\" (-K) (missing_field)"});
}

TEST_CASE("produce: a line longer than the limit fails alone; the next line is read") {
  TempDir dir;
  Events ev;
  const std::string path = dir.path() + "/long.jsonl";
  const std::string huge(kJsonLineBytesMax + 100'000, 'x');
  write_file(path, huge + "\n" + json_line(ev.scan_out(2, 3, 1)) + "\n");
  CHECK(items(path, InputFormat::jsonl, {.key = "East"}, InputFormat::jsonl) ==
        std::vector<std::string>{fmt::format("line 1: the line is {} bytes, longer than the limit of {} (malformed)",
                                             huge.size(), kJsonLineBytesMax),
                                 "key East"});
}

TEST_CASE("produce: an event file is recognised by its magic; bad records are reported by number and offset") {
  TempDir dir;
  Events ev;
  const std::string path = dir.path() + "/in.qev";
  const Bytes location = ev.location(1, fb::LocationKind::SubWarehouse, "East");
  Bytes corrupt = ev.scan_out(1, 1, 1);
  corrupt.resize(corrupt.size() / 2);
  {
    auto w = EventFileWriter::create(path);
    REQUIRE(w.is_ok());
    REQUIRE(w.value()->append("East", location).is_ok());
    REQUIRE(w.value()->append("East", corrupt).is_ok());
    REQUIRE(w.value()->append("", ev.scan_out(1, 1, 1)).is_ok());
    REQUIRE(w.value()->append("West", location).is_ok());
    REQUIRE(w.value()->finish().is_ok());
  }
  const std::size_t second = kEventFileHeaderBytes + kEventFileRecordHeaderBytes + 4 + location.size();
  const std::size_t third = second + kEventFileRecordHeaderBytes + 4 + corrupt.size();
  const std::vector<std::string> got = items(path, std::nullopt, {}, InputFormat::file);
  REQUIRE(got.size() == 4);
  CHECK(got[0] == "key East");
  CHECK(got[1].find(fmt::format("record 2 (offset {}): ", second)) == 0);
  CHECK(got[1].find("(malformed)") != std::string::npos);
  CHECK(got[2] == fmt::format("record 3 (offset {}): key: the record has no key (the shard key: a region) (missing_field)", third));
  CHECK(got[3].find("record 4 (offset ") == 0);
  CHECK(got[3].find("\"West\" is not the location's region \"East\"") != std::string::npos);

  // A truncated file yields its whole records, then the error that stops the input.
  std::ifstream in(path, std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  write_file(path, bytes.substr(0, second + 3));
  const std::vector<std::string> cut = items(path, std::nullopt, {}, InputFormat::file);
  REQUIRE(cut.size() == 2);
  CHECK(cut[0] == "key East");
  CHECK(cut[1] == fmt::format("error: {}: offset {}: truncated: the file ends 3 bytes into the header of record 2", path, second));

  // Given as JSON lines, the same bytes are just bad lines.
  write_file(path, bytes);
  CHECK(items(path, InputFormat::jsonl, {}, InputFormat::jsonl).at(0).find("line 1: invalid JSON event") == 0);
}

}  // namespace qudao
