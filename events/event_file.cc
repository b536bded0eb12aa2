#include "events/event_file.h"

#include <fmt/format.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "events/decode.h"

namespace qudao {
namespace {

static_assert(alignof(std::uint64_t) >= kEventAlignment, "values are copied into 8-byte words");

constexpr std::size_t kStreamBufferBytes = 1 << 20;

std::uint32_t get_u32(const unsigned char* p) {
  return static_cast<std::uint32_t>(p[0]) | static_cast<std::uint32_t>(p[1]) << 8 |
         static_cast<std::uint32_t>(p[2]) << 16 | static_cast<std::uint32_t>(p[3]) << 24;
}

std::uint64_t get_u64(const unsigned char* p) {
  return static_cast<std::uint64_t>(get_u32(p)) | static_cast<std::uint64_t>(get_u32(p + 4)) << 32;
}

void put_u32(unsigned char* p, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}

void put_u64(unsigned char* p, std::uint64_t v) {
  put_u32(p, static_cast<std::uint32_t>(v));
  put_u32(p + 4, static_cast<std::uint32_t>(v >> 32));
}

std::string hex_bytes(const unsigned char* p, std::size_t n) {
  std::string out;
  for (std::size_t i = 0; i < n; ++i) out += fmt::format("{}{:02x}", i == 0 ? "" : " ", p[i]);
  return out;
}

}  // namespace

// ---- reader ----

EventFileReader::EventFileReader(std::FILE* stream, bool owned, std::string name, std::string_view consumed)
    : stream_(stream), owned_(owned), name_(std::move(name)), pending_(consumed) {}

EventFileReader::~EventFileReader() {
  if (owned_) std::fclose(stream_);
}

Result<std::unique_ptr<EventFileReader>> EventFileReader::open(const std::string& path) {
  if (path == "-") return open(stdin, "stdin", {});
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (f == nullptr) return Status::error(fmt::format("{}: cannot open: {}", path, std::strerror(errno)));
  std::setvbuf(f, nullptr, _IOFBF, kStreamBufferBytes);
  std::unique_ptr<EventFileReader> r(new EventFileReader(f, true, path, {}));
  if (Status s = r->read_header(); !s.is_ok()) return s;
  return r;
}

Result<std::unique_ptr<EventFileReader>> EventFileReader::open(std::FILE* stream, std::string name,
                                                               std::string_view consumed) {
  std::unique_ptr<EventFileReader> r(new EventFileReader(stream, false, std::move(name), consumed));
  if (Status s = r->read_header(); !s.is_ok()) return s;
  return r;
}

Status EventFileReader::error_at(std::uint64_t offset, std::string_view what) const {
  return Status::error(fmt::format("{}: offset {}: {}", name_, offset, what));
}

Result<std::size_t> EventFileReader::read(void* dst, std::size_t n) {
  auto* out = static_cast<unsigned char*>(dst);
  std::size_t got = 0;
  if (pending_at_ < pending_.size()) {
    got = std::min(n, pending_.size() - pending_at_);
    std::memcpy(out, pending_.data() + pending_at_, got);
    pending_at_ += got;
  }
  if (got < n) {
    got += std::fread(out + got, 1, n - got, stream_);
    if (got < n && std::ferror(stream_)) {
      return Status::error(fmt::format("{}: read error at offset {}: {}", name_, offset_ + got, std::strerror(errno)));
    }
  }
  offset_ += got;
  return got;
}

Status EventFileReader::read_header() {
  unsigned char h[kEventFileHeaderBytes];
  auto got = read(h, sizeof h);
  if (!got.is_ok()) return got.status();
  if (got.value() == 0) return error_at(0, "empty: not even the 16-byte header");
  const std::size_t magic_bytes = std::min(got.value(), kEventFileMagic.size());
  if (std::memcmp(h, kEventFileMagic.data(), magic_bytes) != 0) {
    return error_at(0, fmt::format("not a qudao event file: it starts with [{}], not the magic \"{}\"",
                                   hex_bytes(h, magic_bytes), kEventFileMagic));
  }
  if (got.value() < sizeof h) {
    return error_at(got.value(), fmt::format("truncated header: the file ends after {} of its {} bytes", got.value(),
                                             kEventFileHeaderBytes));
  }
  const std::uint32_t version = get_u32(h + 8);
  if (version != kEventFileVersion) {
    return error_at(8, fmt::format("version {} is not supported (this build reads version {})", version,
                                   kEventFileVersion));
  }
  const std::uint32_t flags = get_u32(h + 12);
  if (flags != 0) return error_at(12, fmt::format("unknown flags {:#010x} (version 1 defines none)", flags));
  return Status::ok();
}

Result<std::optional<FileRecord>> EventFileReader::next() {
  if (ended_) return std::optional<FileRecord>();
  const std::uint64_t at = offset_;
  unsigned char h[kEventFileRecordHeaderBytes];
  auto got = read(h, 4);
  if (!got.is_ok()) return got.status();
  if (got.value() == 0) {
    return error_at(at, fmt::format("truncated: the file ends after {} records without the end mark "
                                    "(cut at a record boundary?)", records_));
  }
  if (got.value() < 4) {
    return error_at(at, fmt::format("truncated: the file ends {} bytes into the header of record {}", got.value(),
                                    records_ + 1));
  }
  const std::uint32_t key_len = get_u32(h);
  if (key_len == kEventFileEndMark) {
    got = read(h, 8);
    if (!got.is_ok()) return got.status();
    if (got.value() < 8) {
      return error_at(at, fmt::format("truncated: the file ends {} bytes into the 12-byte end mark", 4 + got.value()));
    }
    const std::uint64_t count = get_u64(h);
    if (count != records_) {
      return error_at(at, fmt::format("the end mark counts {} records, the file holds {} before it", count, records_));
    }
    unsigned char extra;
    got = read(&extra, 1);
    if (!got.is_ok()) return got.status();
    if (got.value() != 0) return error_at(offset_ - 1, "data after the end mark");
    ended_ = true;
    return std::optional<FileRecord>();
  }
  got = read(h + 4, 4);
  if (!got.is_ok()) return got.status();
  if (got.value() < 4) {
    return error_at(at, fmt::format("truncated: the file ends {} bytes into the header of record {}", 4 + got.value(),
                                    records_ + 1));
  }
  const std::uint32_t value_len = get_u32(h + 4);
  if (key_len > kEventFileKeyBytesMax) {
    return error_at(at, fmt::format("record {}: key_len {} exceeds the limit of {} bytes (corrupt length?)", records_ + 1,
                                    key_len, kEventFileKeyBytesMax));
  }
  if (value_len > kEventFileValueBytesMax) {
    return error_at(at + 4, fmt::format("record {}: value_len {} exceeds the limit of {} bytes (corrupt length?)",
                                        records_ + 1, value_len, kEventFileValueBytesMax));
  }
  key_.resize(key_len);
  got = read(key_.data(), key_len);
  if (!got.is_ok()) return got.status();
  std::size_t body = got.value();
  if (body == key_len) {
    value_.resize((value_len + sizeof(std::uint64_t) - 1) / sizeof(std::uint64_t));
    got = read(value_.data(), value_len);
    if (!got.is_ok()) return got.status();
    body += got.value();
  }
  if (body < std::size_t{key_len} + value_len) {
    return error_at(at, fmt::format("record {}: truncated: key_len {} + value_len {} need {} bytes after the record "
                                    "header; the file ends {} bytes in, at offset {}",
                                    records_ + 1, key_len, value_len, std::size_t{key_len} + value_len, body, offset_));
  }
  FileRecord r;
  r.index = records_++;
  r.offset = at;
  r.key = key_;
  r.value = {reinterpret_cast<const std::uint8_t*>(value_.data()), value_len};
  return std::optional<FileRecord>(r);
}

// ---- writer ----

Result<std::unique_ptr<EventFileWriter>> EventFileWriter::create(const std::string& path) {
  std::FILE* f = std::fopen(path.c_str(), "wb");
  if (f == nullptr) return Status::error(fmt::format("{}: cannot create: {}", path, std::strerror(errno)));
  std::setvbuf(f, nullptr, _IOFBF, kStreamBufferBytes);
  std::unique_ptr<EventFileWriter> w(new EventFileWriter(f, path));
  unsigned char h[kEventFileHeaderBytes];
  std::memcpy(h, kEventFileMagic.data(), kEventFileMagic.size());
  put_u32(h + 8, kEventFileVersion);
  put_u32(h + 12, 0);
  if (Status s = w->write(h, sizeof h); !s.is_ok()) return s;
  return w;
}

EventFileWriter::~EventFileWriter() {
  if (file_ != nullptr) std::fclose(file_);
}

Status EventFileWriter::write(const void* data, std::size_t n) {
  if (file_ == nullptr) return Status::error(fmt::format("{}: already finished", path_));
  if (std::fwrite(data, 1, n, file_) != n) {
    return Status::error(fmt::format("{}: write error at offset {}: {}", path_, bytes_, std::strerror(errno)));
  }
  bytes_ += n;
  return Status::ok();
}

Status EventFileWriter::append(std::span<const std::uint8_t> key, std::span<const std::uint8_t> value) {
  if (key.size() > kEventFileKeyBytesMax) {
    return Status::error(fmt::format("{}: record {}: a key of {} bytes exceeds the limit of {}", path_, records_ + 1,
                                     key.size(), kEventFileKeyBytesMax));
  }
  if (value.size() > kEventFileValueBytesMax) {
    return Status::error(fmt::format("{}: record {}: a value of {} bytes exceeds the limit of {}", path_, records_ + 1,
                                     value.size(), kEventFileValueBytesMax));
  }
  unsigned char h[kEventFileRecordHeaderBytes];
  put_u32(h, static_cast<std::uint32_t>(key.size()));
  put_u32(h + 4, static_cast<std::uint32_t>(value.size()));
  if (Status s = write(h, sizeof h); !s.is_ok()) return s;
  if (Status s = write(key.data(), key.size()); !s.is_ok()) return s;
  if (Status s = write(value.data(), value.size()); !s.is_ok()) return s;
  ++records_;
  return Status::ok();
}

Status EventFileWriter::append(std::string_view key, std::span<const std::uint8_t> value) {
  return append({reinterpret_cast<const std::uint8_t*>(key.data()), key.size()}, value);
}

Status EventFileWriter::finish() {
  unsigned char end[12];
  put_u32(end, kEventFileEndMark);
  put_u64(end + 4, records_);
  if (Status s = write(end, sizeof end); !s.is_ok()) return s;
  std::FILE* f = std::exchange(file_, nullptr);
  const bool flushed = std::fflush(f) == 0;
  const int flush_errno = errno;
  struct stat st{};
  // An archive must survive a power cut once finish() returned; fsync means nothing for a pipe.
  const bool synced = fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || fsync(fileno(f)) == 0;
  const int sync_errno = errno;
  const bool closed = std::fclose(f) == 0;
  if (!flushed) return Status::error(fmt::format("{}: write error: {}", path_, std::strerror(flush_errno)));
  if (!synced) return Status::error(fmt::format("{}: fsync: {}", path_, std::strerror(sync_errno)));
  if (!closed) return Status::error(fmt::format("{}: close: {}", path_, std::strerror(errno)));
  return Status::ok();
}

}  // namespace qudao
