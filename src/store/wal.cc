#include "store/wal.h"

#include <cstring>

#include "store/codec.h"

namespace sibyl {
namespace {

// Frame: [u32 crc32c of type+payload][u32 payload length][u8 type][payload].
constexpr size_t kHeader = 9;

bool RecordAt(std::string_view data, size_t pos, WalRecordType* type, std::string_view* payload,
              size_t* next) {
  if (data.size() - pos < kHeader) return false;
  uint32_t crc, length;
  std::memcpy(&crc, data.data() + pos, 4);
  std::memcpy(&length, data.data() + pos + 4, 4);
  if (length > data.size() - pos - kHeader) return false;
  std::string_view body = data.substr(pos + 8, 1 + length);
  if (Crc32c(body) != crc) return false;
  uint8_t t = static_cast<uint8_t>(body[0]);
  if (t < 1 || t > 4) return false;
  *type = static_cast<WalRecordType>(t);
  *payload = body.substr(1);
  *next = pos + kHeader + length;
  return true;
}

}  // namespace

Result<std::unique_ptr<WalWriter>> WalWriter::Open(const std::string& path) {
  ASSIGN_OR_RETURN(auto file, AppendFile::Open(path));
  return std::unique_ptr<WalWriter>(new WalWriter(std::move(file)));
}

Status WalWriter::Add(WalRecordType type, std::string_view payload) {
  if (payload.size() > UINT32_MAX - 16) return ResourceExhausted("log record too large");
  frame_.clear();
  frame_.resize(8);
  frame_.push_back(static_cast<char>(type));
  frame_.append(payload);
  uint32_t crc = Crc32c(std::string_view(frame_).substr(8));
  uint32_t length = static_cast<uint32_t>(payload.size());
  std::memcpy(frame_.data(), &crc, 4);
  std::memcpy(frame_.data() + 4, &length, 4);
  return file_->Append(frame_);
}

Status WalWriter::Sync() { return file_->Sync(); }

Result<WalReadResult> ReadWal(const std::string& path,
                              const std::function<Status(WalRecordType, std::string_view)>& visit) {
  ASSIGN_OR_RETURN(auto file, MappedFile::Open(path));
  std::string_view data = file->data();
  size_t pos = 0;
  WalReadResult result;
  while (pos < data.size()) {
    WalRecordType type;
    std::string_view payload;
    size_t next;
    if (!RecordAt(data, pos, &type, &payload, &next)) {
      // Torn tail, or damage in the middle? Look for any intact record further on.
      for (size_t probe = pos + 1; probe + kHeader <= data.size(); ++probe) {
        if (RecordAt(data, probe, &type, &payload, &next))
          return Corruption("{}: damaged log record at offset {} followed by intact records",
                            path, pos);
      }
      result.torn_tail = true;
      break;
    }
    RETURN_IF_ERROR(visit(type, payload));
    pos = next;
  }
  result.valid_bytes = pos;
  return result;
}

}  // namespace sibyl
