// Byte-level encoding used by the write-ahead log and the part files: little-endian
// fixed-width integers, LEB128 varints, zigzag, and zstd blocks with checksums.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"

namespace sibyl {

inline uint64_t ZigZag(int64_t v) { return (static_cast<uint64_t>(v) << 1) ^ static_cast<uint64_t>(v >> 63); }
inline int64_t UnZigZag(uint64_t v) { return static_cast<int64_t>(v >> 1) ^ -static_cast<int64_t>(v & 1); }

// Appends encoded values to a growing string.
class ByteWriter {
 public:
  explicit ByteWriter(std::string* out) : out_(out) {}
  void U8(uint8_t v) { out_->push_back(static_cast<char>(v)); }
  void U32(uint32_t v) { Raw(&v, 4); }
  void U64(uint64_t v) { Raw(&v, 8); }
  void F64(double v) { Raw(&v, 8); }
  void Varint(uint64_t v) {
    char buf[10];
    int n = 0;
    while (v >= 0x80) {
      buf[n++] = static_cast<char>(v | 0x80);
      v >>= 7;
    }
    buf[n++] = static_cast<char>(v);
    out_->append(buf, n);
  }
  void SignedVarint(int64_t v) { Varint(ZigZag(v)); }
  void Bytes(std::string_view s) {
    Varint(s.size());
    out_->append(s);
  }
  void Raw(const void* p, size_t n) { out_->append(static_cast<const char*>(p), n); }
  std::string* out() { return out_; }

 private:
  std::string* out_;
};

// Reads values written by ByteWriter; every read is bounds-checked and a failure sticks,
// so callers check ok() once after a run of reads.
class ByteReader {
 public:
  explicit ByteReader(std::string_view in) : in_(in) {}
  uint8_t U8() { uint8_t v = 0; Raw(&v, 1); return v; }
  uint32_t U32() { uint32_t v = 0; Raw(&v, 4); return v; }
  uint64_t U64() { uint64_t v = 0; Raw(&v, 8); return v; }
  double F64() { double v = 0; Raw(&v, 8); return v; }
  uint64_t Varint() {
    // With 10 bytes left (the longest varint) no byte needs a bounds check, and most
    // varints of a column (deltas, ids, cents) end after one or two bytes.
    if (in_.size() - pos_ >= 10) [[likely]] {
      const auto* p = reinterpret_cast<const uint8_t*>(in_.data()) + pos_;
      uint64_t v = p[0];
      if (v < 0x80) {
        pos_ += 1;
        return v;
      }
      v &= 0x7f;
      size_t i = 1;
      uint64_t b;
      do {
        b = p[i];
        v |= (b & 0x7f) << (7 * i);
        ++i;
      } while ((b & 0x80) && i < 10);
      if (b & 0x80) {
        failed_ = true;
        return 0;
      }
      pos_ += i;
      return v;
    }
    return VarintNearEnd();
  }
  int64_t SignedVarint() { return UnZigZag(Varint()); }
  std::string_view Bytes() {
    uint64_t n = Varint();
    if (failed_ || n > in_.size() - pos_) { failed_ = true; return {}; }
    std::string_view s = in_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  void Raw(void* p, size_t n) {
    if (failed_ || n > in_.size() - pos_) { failed_ = true; std::memset(p, 0, n); return; }
    std::memcpy(p, in_.data() + pos_, n);
    pos_ += n;
  }
  void Skip(size_t n) {
    if (failed_ || n > in_.size() - pos_) { failed_ = true; return; }
    pos_ += n;
  }
  // The next `n` bytes, without copying (empty, and failed, when fewer are left).
  std::string_view View(size_t n) {
    if (failed_ || n > in_.size() - pos_) { failed_ = true; return {}; }
    std::string_view v = in_.substr(pos_, n);
    pos_ += n;
    return v;
  }
  bool ok() const { return !failed_; }
  bool done() const { return pos_ == in_.size(); }
  size_t pos() const { return pos_; }
  size_t remaining() const { return in_.size() - pos_; }

 private:
  // Varint within the last 10 bytes: checks each byte against the end.
  uint64_t VarintNearEnd() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= in_.size()) { failed_ = true; return 0; }
      uint8_t b = static_cast<uint8_t>(in_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    failed_ = true;
    return 0;
  }

  std::string_view in_;
  size_t pos_ = 0;
  bool failed_ = false;
};

// zstd-compresses `raw` at `level`, appending [raw size varint][compressed size varint][crc32c of compressed u32][compressed bytes].
void AppendCompressedBlock(std::string_view raw, int level, std::string* out);

// Reads one block written by AppendCompressedBlock; `what` names the file for errors.
Result<std::string> ReadCompressedBlock(ByteReader& reader, std::string_view what);

}  // namespace sibyl
