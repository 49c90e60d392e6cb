#include "store/wal.h"

#include <fmt/format.h>

#include <cstring>

#include "store/codec.h"

namespace sibyl {
namespace {

// Format 2 frame: [u32 crc32c(payload)][u32 payload length][u8 type | 0x80]
// [u32 crc32c of the 9 bytes before], then the payload. The header's own checksum makes
// the length trustworthy before the payload is read, so a record that runs past the end
// of the file is known to be a write cut short, not a flipped bit in its length.
// Format 1 (older logs, still read): [u32 crc32c(type ‖ payload)][u32 length][u8 type].
constexpr size_t kHeaderV1 = 9;
constexpr size_t kHeaderV2 = 13;
constexpr uint8_t kFormat2 = 0x80;

uint32_t Load32(std::string_view data, size_t pos) {
  uint32_t v;
  std::memcpy(&v, data.data() + pos, 4);
  return v;
}

bool KnownType(uint8_t t) { return t >= 1 && t <= 4; }

// What is at `pos`: an intact record (true, with its type, payload and end), or not.
bool RecordAt(std::string_view data, size_t pos, WalRecordType* type, std::string_view* payload, size_t* next) {
  if (data.size() - pos < kHeaderV1) return false;
  uint32_t crc = Load32(data, pos);
  uint32_t length = Load32(data, pos + 4);
  uint8_t t = static_cast<uint8_t>(data[pos + 8]);
  if (t & kFormat2) {
    if (data.size() - pos < kHeaderV2) return false;
    if (Crc32c(data.substr(pos, kHeaderV1)) != Load32(data, pos + kHeaderV1)) return false;
    if (!KnownType(t & ~kFormat2) || length > data.size() - pos - kHeaderV2) return false;
    *payload = data.substr(pos + kHeaderV2, length);
    if (Crc32c(*payload) != crc) return false;
    *type = static_cast<WalRecordType>(t & ~kFormat2);
    *next = pos + kHeaderV2 + length;
    return true;
  }
  if (!KnownType(t) || length > data.size() - pos - kHeaderV1) return false;
  std::string_view body = data.substr(pos + 8, 1 + length);
  if (Crc32c(body) != crc) return false;
  *type = static_cast<WalRecordType>(t);
  *payload = body.substr(1);
  *next = pos + kHeaderV1 + length;
  return true;
}

// The first intact record after `pos`, or npos. Format 2 headers are checked on their
// own first, so the probe costs 13 bytes of checksum at most offsets.
size_t NextRecord(std::string_view data, size_t pos) {
  WalRecordType type;
  std::string_view payload;
  size_t next;
  for (size_t probe = pos + 1; probe + kHeaderV1 <= data.size(); ++probe)
    if (RecordAt(data, probe, &type, &payload, &next)) return probe;
  return std::string_view::npos;
}

struct Verdict {
  bool torn = false;
  std::string reason;
  std::optional<WalRecordType> type;  // damage confined to one record with an intact header
};

// Why the bytes at `pos` are not an intact record, when no intact record follows them.
// Torn: a strict prefix of a record (a crash mid-append), or a record whose bad bytes are
// sectors that never reached the disk (a power loss before the sync). Damage: a complete
// record with non-zero bytes failing its checksum, which neither can produce.
Verdict ClassifyTail(std::string_view data, size_t pos, bool format2_file) {
  size_t rest = data.size() - pos;
  if (data.find_first_not_of('\0', pos) == std::string_view::npos) return {true, "zero-filled to the end of the file (never written)", {}};
  if (rest < kHeaderV1) return {true, "the file ends inside a record header", {}};
  uint32_t length = Load32(data, pos + 4);
  uint8_t t = static_cast<uint8_t>(data[pos + 8]);
  if (format2_file || (t & kFormat2)) {
    if (rest < kHeaderV2) return {true, "the file ends inside a record header", {}};
    if (Crc32c(data.substr(pos, kHeaderV1)) != Load32(data, pos + kHeaderV1) || !KnownType(t & ~kFormat2)) {
      if (HasUnwrittenSector(data, pos, pos + kHeaderV2)) return {true, "zero-filled sectors (never written)", {}};
      return {false, "record header checksum mismatch", {}};
    }
    size_t end = pos + kHeaderV2 + length;
    if (end > data.size())
      return {true, fmt::format("a {}-byte record cut short at {} bytes", length, rest - kHeaderV2), {}};
    if (HasUnwrittenSector(data, pos + kHeaderV2, end)) return {true, "zero-filled sectors (never written)", {}};
    Verdict damage{false, "checksum mismatch in a complete record", static_cast<WalRecordType>(t & ~kFormat2)};
    if (end < data.size()) damage.type.reset();  // more bytes follow it: not one record's worth
    return damage;
  }
  // Format 1 does not protect the length: a record that runs past the end of the file
  // reads as a write cut short (the limit older logs keep).
  if (static_cast<uint64_t>(length) + kHeaderV1 > rest) return {true, "a record cut short", {}};
  if (HasUnwrittenSector(data, pos, pos + kHeaderV1 + length)) return {true, "zero-filled sectors (never written)", {}};
  return {false, "checksum mismatch in a complete record", {}};
}

}  // namespace

Result<std::unique_ptr<WalWriter>> WalWriter::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto file, AppendFile::Open(path));
  return std::unique_ptr<WalWriter>(new WalWriter(std::move(file)));
}

Status WalWriter::Add(WalRecordType type, std::string_view payload) {
  if (payload.size() > UINT32_MAX - 16) return ResourceExhausted("log record too large");
  frame_.resize(kHeaderV2);
  frame_.append(payload);
  uint32_t crc = Crc32c(payload);
  uint32_t length = static_cast<uint32_t>(payload.size());
  std::memcpy(frame_.data(), &crc, 4);
  std::memcpy(frame_.data() + 4, &length, 4);
  frame_[8] = static_cast<char>(static_cast<uint8_t>(type) | kFormat2);
  uint32_t header_crc = Crc32c(std::string_view(frame_).substr(0, kHeaderV1));
  std::memcpy(frame_.data() + kHeaderV1, &header_crc, 4);
  return file_->Append(frame_);
}

Status WalWriter::Sync() { return file_->Sync(); }

Result<WalReadResult> ReadWal(const std::string& path, bool last_file, const WalVisitor& visit,
                              const WalDamageVisitor& on_damage) {
  ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  std::string_view data = file->data();
  // Every writer starts a fresh file, so a file is all format 1 or all format 2.
  bool format2_file = data.size() > 8 && (static_cast<uint8_t>(data[8]) & kFormat2);
  size_t pos = 0;
  WalReadResult result;
  while (pos < data.size()) {
    WalRecordType type;
    std::string_view payload;
    size_t next;
    if (RecordAt(data, pos, &type, &payload, &next)) {
      RETURN_IF_ERROR(visit(type, payload));
      pos = next;
      continue;
    }
    size_t resume = NextRecord(data, pos);
    WalDamage damage;
    damage.offset = pos;
    if (resume != std::string_view::npos) {
      // Intact records after bad bytes: no crash leaves that, so it is damage.
      damage.bytes = resume - pos;
      Verdict alone = ClassifyTail(data.substr(0, resume), pos, format2_file);
      damage.reason = (alone.torn ? std::string("bad bytes") : alone.reason) + ", followed by intact records";
      if (!alone.torn && alone.type) damage.type = alone.type;
    } else {
      Verdict verdict = ClassifyTail(data, pos, format2_file);
      if (verdict.torn && last_file) {
        result.torn_tail = true;
        result.torn_reason = verdict.reason;
        break;
      }
      damage.bytes = data.size() - pos;
      damage.reason = verdict.torn ? verdict.reason + ", in a log that later logs follow" : verdict.reason;
      damage.type = verdict.torn ? std::nullopt : verdict.type;
    }
    if (!on_damage)
      return Corruption(
          "{}: damaged record at byte {} ({}; {} bytes): it may hold acknowledged events, so the store was "
          "not opened and nothing was changed; run `sibyl repair` to keep every intact record and set the "
          "damaged bytes aside",
          path, damage.offset, damage.reason, damage.bytes);
    RETURN_IF_ERROR(on_damage(damage));
    if (resume == std::string_view::npos) {
      pos = data.size();
      break;
    }
    pos = resume;
  }
  result.valid_bytes = pos;
  return result;
}

}  // namespace sibyl
