// Event files: a log of records (a key and an event's bytes, as in a Kafka record) one after another,
// for moving a log without Kafka. `qudao simulate --out` writes one, `qudao produce` publishes one,
// `qudao replay --from-file` rebuilds state from one, `qudao export` archives a topic into one.
//
// Layout (integers little-endian, nothing padded):
//
//   file    := header record* end
//   header  := magic version:u32 flags:u32            16 bytes
//   magic   := "QDAOEVTS"                             8 ASCII bytes
//   version := 1
//   flags   := 0                                      (none defined in version 1)
//   record  := key_len:u32 value_len:u32 key value
//   key     := key_len bytes                          the Kafka record key (the shard key, e.g. "East");
//                                                     key_len <= kEventFileKeyBytesMax
//   value   := value_len bytes                        the Kafka record value (one event, unchecked here:
//                                                     decode() judges it); value_len <= kEventFileValueBytesMax
//   end     := 0xFFFFFFFF:u32 records:u64             the end mark: how many records came before it;
//                                                     nothing follows it
//
// The end mark makes a file cut at a record boundary (a full disk, a killed writer, a partial copy)
// distinguishable from a complete one; a key_len of 0xFFFFFFFF can never be a record's. Messages
// name records from 1, as lines are numbered.
//
// Values are not aligned in the file; the reader copies each into a kEventAlignment-aligned buffer,
// as decode() requires. Neither class is thread-safe; each owns its stream unless said otherwise.
#pragma once

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "events/status.h"

namespace qudao {

inline constexpr std::string_view kEventFileMagic = "QDAOEVTS";
inline constexpr std::uint32_t kEventFileVersion = 1;
inline constexpr std::size_t kEventFileHeaderBytes = 16;
inline constexpr std::size_t kEventFileRecordHeaderBytes = 8;
inline constexpr std::uint32_t kEventFileEndMark = 0xFFFF'FFFF;
// Bounds the reader's allocations. Shard keys are region names (256 bytes at most); values above
// decode()'s 1 MiB are rejected by it, but a Kafka topic may hold them, so an export can carry them.
inline constexpr std::uint32_t kEventFileKeyBytesMax = 64 * 1024;
inline constexpr std::uint32_t kEventFileValueBytesMax = 16 * 1024 * 1024;

// One record read from a file; the views live until the reader's next call.
struct FileRecord {
  std::uint64_t index = 0;   // 0 for the first record of the file (messages count from 1: "record 1")
  std::uint64_t offset = 0;  // byte offset of its key_len in the file
  std::string_view key;
  std::span<const std::uint8_t> value;  // starts kEventAlignment-aligned
};

class EventFileReader {
 public:
  // Opens `path` ("-" for stdin) and checks the header.
  static Result<std::unique_ptr<EventFileReader>> open(const std::string& path);
  // Reads from a stream the caller owns and keeps open. `consumed` are the bytes the caller has
  // already read from it (at most a header's, to detect the format); `name` is for messages.
  static Result<std::unique_ptr<EventFileReader>> open(std::FILE* stream, std::string name, std::string_view consumed);
  ~EventFileReader();
  EventFileReader(const EventFileReader&) = delete;
  EventFileReader& operator=(const EventFileReader&) = delete;

  // The next record; nothing once the end mark is read (and found consistent). A truncated or
  // corrupt file is an error naming the file, the byte offset and what is wrong there.
  Result<std::optional<FileRecord>> next();

  std::uint64_t records_read() const { return records_; }
  std::uint64_t offset() const { return offset_; }  // bytes consumed so far

 private:
  EventFileReader(std::FILE* stream, bool owned, std::string name, std::string_view consumed);
  Status read_header();
  // Reads up to `n` bytes; fewer only at the end of the stream. An error on an I/O failure.
  Result<std::size_t> read(void* dst, std::size_t n);
  Status error_at(std::uint64_t offset, std::string_view what) const;

  std::FILE* stream_;
  bool owned_;
  std::string name_;
  std::string pending_;  // `consumed`, not yet handed out
  std::size_t pending_at_ = 0;
  std::uint64_t offset_ = 0;
  std::uint64_t records_ = 0;
  bool ended_ = false;
  std::string key_;
  std::vector<std::uint64_t> value_;  // 8-byte words: the value, aligned
};

class EventFileWriter {
 public:
  // Creates `path` (replacing a file there) and writes the header.
  static Result<std::unique_ptr<EventFileWriter>> create(const std::string& path);
  // Closes the file. Without finish() it has no end mark, and readers report it truncated.
  ~EventFileWriter();
  EventFileWriter(const EventFileWriter&) = delete;
  EventFileWriter& operator=(const EventFileWriter&) = delete;

  [[nodiscard]] Status append(std::span<const std::uint8_t> key, std::span<const std::uint8_t> value);
  [[nodiscard]] Status append(std::string_view key, std::span<const std::uint8_t> value);
  // Writes the end mark, flushes, fsyncs and closes the file. Nothing may be appended after it.
  [[nodiscard]] Status finish();

  std::uint64_t records() const { return records_; }
  std::uint64_t bytes() const { return bytes_; }

 private:
  EventFileWriter(std::FILE* file, std::string path) : file_(file), path_(std::move(path)) {}
  Status write(const void* data, std::size_t n);

  std::FILE* file_;
  std::string path_;
  std::uint64_t records_ = 0;
  std::uint64_t bytes_ = 0;
};

}  // namespace qudao
