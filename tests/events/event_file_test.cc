// Event files: what is written is read back byte for byte, values aligned for decode(); a file that
// is cut anywhere or has a corrupt length is an error that names the offset and the problem.
#include "events/event_file.h"

#include <doctest/doctest.h>
#include <fmt/format.h>

#include <fstream>
#include <iterator>

#include "tests/support.h"

namespace qudao {
using namespace qudao::test;

namespace {

std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

void write_all(const std::string& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// Reads `path` to its end; the error message, or "" if the file is whole.
std::string read_error(const std::string& path) {
  auto reader = EventFileReader::open(path);
  if (!reader.is_ok()) return reader.status().message();
  for (;;) {
    auto r = reader.value()->next();
    if (!r.is_ok()) return r.status().message();
    if (!r.value()) return "";
  }
}

std::string le32(std::uint32_t v) {
  std::string s(4, '\0');
  for (int i = 0; i < 4; ++i) s[i] = static_cast<char>(v >> (8 * i));
  return s;
}

// A file of the records (key, value) written by EventFileWriter.
std::string written(const std::string& path, const std::vector<std::pair<std::string, Bytes>>& records) {
  auto w = EventFileWriter::create(path);
  REQUIRE(w.is_ok());
  for (const auto& [k, v] : records) REQUIRE(w.value()->append(k, v).is_ok());
  REQUIRE(w.value()->finish().is_ok());
  return read_all(path);
}

}  // namespace

TEST_CASE("event file: records read back as written, values 8-byte aligned, then the end") {
  TempDir dir;
  const std::string path = dir.path() + "/f.qev";
  Events ev;
  std::vector<std::pair<std::string, Bytes>> records = {
      {"East", ev.location(1, fb::LocationKind::SubWarehouse, "East")},
      {"North", ev.scan_out(2, 3, 1)},
      {"", Bytes{}},                           // keyless and empty, as a Kafka record may be
      {"East", Bytes{1, 2, 3, 4, 5, 6, 7}},    // not an event: the file does not judge values
  };
  const std::string bytes = written(path, records);
  std::size_t expected = kEventFileHeaderBytes + 12;
  for (const auto& [k, v] : records) expected += kEventFileRecordHeaderBytes + k.size() + v.size();
  CHECK(bytes.size() == expected);
  CHECK(bytes.substr(0, 8) == "QDAOEVTS");
  CHECK(bytes.substr(8, 4) == le32(1));

  auto reader = EventFileReader::open(path);
  REQUIRE(reader.is_ok());
  std::uint64_t offset = kEventFileHeaderBytes;
  for (std::size_t i = 0; i < records.size(); ++i) {
    auto r = reader.value()->next();
    REQUIRE(r.is_ok());
    REQUIRE(r.value().has_value());
    const FileRecord& rec = *r.value();
    CHECK(rec.index == i);
    CHECK(rec.offset == offset);
    CHECK(rec.key == records[i].first);
    CHECK(Bytes(rec.value.begin(), rec.value.end()) == records[i].second);
    CHECK(reinterpret_cast<std::uintptr_t>(rec.value.data()) % kEventAlignment == 0);
    offset += kEventFileRecordHeaderBytes + rec.key.size() + rec.value.size();
  }
  // The aligned copy is what decode() needs: the events decode.
  {
    auto again = EventFileReader::open(path);
    REQUIRE(again.is_ok());
    auto first = again.value()->next();
    REQUIRE((first.is_ok() && first.value()));
    CHECK(std::holds_alternative<Event>(decode(first.value()->value)));
  }
  auto end = reader.value()->next();
  REQUIRE(end.is_ok());
  CHECK_FALSE(end.value().has_value());
  CHECK(reader.value()->records_read() == records.size());
  end = reader.value()->next();  // and stays at the end
  REQUIRE(end.is_ok());
  CHECK_FALSE(end.value().has_value());
}

TEST_CASE("event file: an empty log is a header and an end mark") {
  TempDir dir;
  const std::string path = dir.path() + "/empty.qev";
  CHECK(written(path, {}).size() == kEventFileHeaderBytes + 12);
  CHECK(read_error(path).empty());
}

TEST_CASE("event file: a file cut at any byte is reported as truncated, never read as complete") {
  TempDir dir;
  const std::string path = dir.path() + "/f.qev";
  Events ev;
  const Bytes first = ev.scan_out(2, 3, 1);
  const std::string whole = written(path, {{"East", first}, {"West", ev.scan_out(4, 5, 6)}});
  const std::string cut = dir.path() + "/cut.qev";
  for (std::size_t n = 0; n < whole.size(); ++n) {
    write_all(cut, std::string_view(whole).substr(0, n));
    INFO("cut after " << n << " of " << whole.size() << " bytes");
    const std::string e = read_error(cut);
    CHECK_FALSE(e.empty());
    CHECK(e.rfind(cut + ": offset ", 0) == 0);
  }
  // The messages say where and what.
  const std::size_t rec0 = kEventFileHeaderBytes;
  const std::size_t rec1 = rec0 + kEventFileRecordHeaderBytes + 4 + first.size();
  auto cut_at = [&](std::size_t n) {
    write_all(cut, std::string_view(whole).substr(0, n));
    return read_error(cut);
  };
  CHECK(cut_at(0) == cut + ": offset 0: empty: not even the 16-byte header");
  CHECK(cut_at(10) == cut + ": offset 10: truncated header: the file ends after 10 of its 16 bytes");
  CHECK(cut_at(rec0) == cut + ": offset 16: truncated: the file ends after 0 records without the end mark "
                              "(cut at a record boundary?)");
  CHECK(cut_at(rec0 + 6) == cut + ": offset 16: truncated: the file ends 6 bytes into the header of record 1");
  CHECK(cut_at(rec0 + 10) ==
        cut + fmt::format(": offset 16: record 1: truncated: key_len 4 + value_len {} need {} bytes after the record "
                          "header; the file ends 2 bytes in, at offset 26",
                          first.size(), 4 + first.size()));
  CHECK(cut_at(rec1) == cut + fmt::format(": offset {}: truncated: the file ends after 1 records without the end mark "
                                          "(cut at a record boundary?)", rec1));
  CHECK(cut_at(whole.size() - 3) ==
        cut + fmt::format(": offset {}: truncated: the file ends 9 bytes into the 12-byte end mark", whole.size() - 12));
}

TEST_CASE("event file: corrupt headers, lengths and end marks are named with their offset") {
  TempDir dir;
  const std::string path = dir.path() + "/f.qev";
  Events ev;
  const std::string whole = written(path, {{"East", ev.scan_out(2, 3, 1)}});
  const std::string bad = dir.path() + "/bad.qev";
  auto with = [&](std::size_t at, std::string_view bytes) {
    std::string b = whole;
    b.replace(at, bytes.size(), bytes);
    write_all(bad, b);
    return read_error(bad);
  };
  CHECK(with(0, "{\"ev") == bad + ": offset 0: not a qudao event file: it starts with [7b 22 65 76 45 56 54 53], not "
                              "the magic \"QDAOEVTS\"");
  CHECK(with(8, le32(2)) == bad + ": offset 8: version 2 is not supported (this build reads version 1)");
  CHECK(with(12, le32(1)) == bad + ": offset 12: unknown flags 0x00000001 (version 1 defines none)");
  CHECK(with(16, le32(70'000)) ==
        bad + ": offset 16: record 1: key_len 70000 exceeds the limit of 65536 bytes (corrupt length?)");
  CHECK(with(20, le32(0x7fff'ffff)) ==
        bad + ": offset 20: record 1: value_len 2147483647 exceeds the limit of 16777216 bytes (corrupt length?)");
  CHECK(with(whole.size() - 8, le32(5)) ==
        bad + fmt::format(": offset {}: the end mark counts 5 records, the file holds 1 before it", whole.size() - 12));
  write_all(bad, whole + "x");
  CHECK(read_error(bad) == bad + fmt::format(": offset {}: data after the end mark", whole.size()));
  // A length that is wrong but in bounds runs the reader off the end of the file: truncation.
  CHECK(with(20, le32(100'000)).find("record 1: truncated: key_len 4 + value_len 100000") != std::string::npos);
  CHECK(read_error(dir.path() + "/missing.qev").find("cannot open") != std::string::npos);
}

TEST_CASE("event file: the writer refuses what the reader would refuse") {
  TempDir dir;
  auto w = EventFileWriter::create(dir.path() + "/f.qev");
  REQUIRE(w.is_ok());
  const std::string key(kEventFileKeyBytesMax + 1, 'k');
  CHECK_FALSE(w.value()->append(key, Bytes{1}).is_ok());
  REQUIRE(w.value()->finish().is_ok());
  CHECK_FALSE(w.value()->append("East", Bytes{1}).is_ok());  // finished
  CHECK(read_error(dir.path() + "/f.qev").empty());
  CHECK_FALSE(EventFileWriter::create(dir.path() + "/no/such/dir/f.qev").is_ok());
}

}  // namespace qudao
