// Byte encoding for stored keys and values (layouts in engine/store.h): big-endian integers in keys
// so that keys sort numerically, little-endian in values, length-prefixed text.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace qudao::codec {

template <class T>
void put_be(std::string& out, T v) {
  using U = std::make_unsigned_t<T>;
  const U u = static_cast<U>(v);
  for (int shift = (sizeof(U) - 1) * 8; shift >= 0; shift -= 8) out.push_back(static_cast<char>((u >> shift) & 0xff));
}

template <class T>
void put_le(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));  // the engine runs on little-endian x86-64 / arm64 only
  out.append(buf, sizeof(T));
}

inline void put_text(std::string& out, std::string_view s) {
  put_le<std::uint32_t>(out, static_cast<std::uint32_t>(s.size()));
  out.append(s);
}

// Reads a key or value front to back; any read past the end sets ok() to false and returns zero.
class Reader {
 public:
  explicit Reader(std::string_view in) : in_(in) {}

  bool ok() const { return ok_; }
  bool empty() const { return in_.empty(); }
  std::string_view rest() { auto r = in_; in_ = {}; return r; }

  template <class T>
  T be() {
    using U = std::make_unsigned_t<T>;
    if (!take(sizeof(U))) return T{};
    U u = 0;
    for (std::size_t i = 0; i < sizeof(U); ++i) u = static_cast<U>((u << 8) | static_cast<unsigned char>(last_[i]));
    return static_cast<T>(u);
  }

  template <class T>
  T le() {
    if (!take(sizeof(T))) return T{};
    T v;
    std::memcpy(&v, last_, sizeof(T));
    return v;
  }

  std::string text() {
    const auto n = le<std::uint32_t>();
    if (!take(n)) return {};
    return std::string(last_, n);
  }

 private:
  bool take(std::size_t n) {
    if (!ok_ || in_.size() < n) {
      ok_ = false;
      return false;
    }
    last_ = in_.data();
    in_.remove_prefix(n);
    return true;
  }

  std::string_view in_;
  const char* last_ = nullptr;
  bool ok_ = true;
};

}  // namespace qudao::codec
