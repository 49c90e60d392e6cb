// ClickHouse's RowBinary format: rows of little-endian fixed-width numbers, strings as a
// LEB128 length and bytes, arrays as a LEB128 count and elements. sibyl writes events in it
// (INSERT ... FORMAT RowBinary) and reads query results in it: no text escaping, and a
// reader can tell where a row ends without a schema beyond the column types.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

#include "common/status.h"

namespace sibyl::clickhouse {

class RowBinaryWriter {
 public:
  explicit RowBinaryWriter(std::string* out) : out_(out) {}

  void UInt8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void UInt32(uint32_t v) { Raw(&v, sizeof v); }
  void UInt64(uint64_t v) { Raw(&v, sizeof v); }
  void Int64(int64_t v) { Raw(&v, sizeof v); }
  void Float64(double v) { Raw(&v, sizeof v); }
  void VarUInt(uint64_t v) {
    while (v >= 0x80) {
      out_->push_back(static_cast<char>((v & 0x7f) | 0x80));
      v >>= 7;
    }
    out_->push_back(static_cast<char>(v));
  }
  void String(std::string_view s) {
    VarUInt(s.size());
    out_->append(s);
  }

 private:
  void Raw(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
  std::string* out_;
};

// Reads values from a buffer of complete or partial rows. Every read reports whether the
// bytes were there; a caller streaming a response keeps the tail of an incomplete row
// and retries once more bytes arrived.
class RowBinaryReader {
 public:
  explicit RowBinaryReader(std::string_view bytes) : bytes_(bytes) {}

  size_t position() const { return pos_; }
  bool at_end() const { return pos_ == bytes_.size(); }

  bool UInt8(uint8_t* v) { return Fixed(v); }
  bool UInt32(uint32_t* v) { return Fixed(v); }
  bool UInt64(uint64_t* v) { return Fixed(v); }
  bool Int64(int64_t* v) { return Fixed(v); }
  bool Float64(double* v) { return Fixed(v); }
  bool VarUInt(uint64_t* v) {
    uint64_t result = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= bytes_.size()) return false;
      const uint8_t byte = static_cast<uint8_t>(bytes_[pos_++]);
      result |= static_cast<uint64_t>(byte & 0x7f) << shift;
      if (!(byte & 0x80)) {
        *v = result;
        return true;
      }
    }
    return false;
  }
  // A view into the buffer.
  bool String(std::string_view* s) {
    uint64_t n = 0;
    if (!VarUInt(&n) || n > bytes_.size() - pos_) return false;
    *s = bytes_.substr(pos_, n);
    pos_ += n;
    return true;
  }

 private:
  template <typename T>
  bool Fixed(T* v) {
    if (bytes_.size() - pos_ < sizeof(T)) return false;
    std::memcpy(v, bytes_.data() + pos_, sizeof(T));
    pos_ += sizeof(T);
    return true;
  }
  std::string_view bytes_;
  size_t pos_ = 0;
};

}  // namespace sibyl::clickhouse
