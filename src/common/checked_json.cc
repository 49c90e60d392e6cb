#include "common/checked_json.h"

#include <cctype>

#include "common/file.h"

namespace sibyl {
namespace {

constexpr std::string_view kPrefix = R"({"crc32c":")";
constexpr size_t kHexDigits = 8;

// Whether the object text after its '{' holds no member: `{}`, `{ }`, `{\n}`.
bool EmptyObject(std::string_view object_text) {
  for (size_t i = 1; i < object_text.size(); ++i)
    if (!std::isspace(static_cast<unsigned char>(object_text[i]))) return object_text[i] == '}';
  return false;
}

}  // namespace

std::string WithChecksum(std::string_view object_text) {
  std::string out;
  out.reserve(object_text.size() + kPrefix.size() + kHexDigits + 2);
  out.append(kPrefix);
  out.append(Crc32cHex(object_text));
  out.push_back('"');
  if (!EmptyObject(object_text)) out.push_back(',');
  out.append(object_text.substr(object_text.empty() ? 0 : 1));  // the rest after '{'
  return out;
}

Result<std::string> VerifyChecksum(const std::string& path, std::string_view file_text) {
  if (!file_text.starts_with(kPrefix)) {
    if (file_text.size() >= kPrefix.size()) {
      size_t differing = 0;
      for (size_t i = 0; i < kPrefix.size(); ++i) differing += file_text[i] != kPrefix[i];
      if (differing == 1)
        return Corruption("{}: the checksum member at the start of the file is damaged", path);
    }
    return std::string(file_text);  // written before checksums: nothing to check against
  }
  const size_t end = kPrefix.size() + kHexDigits;
  if (file_text.size() <= end || file_text[end] != '"')
    return Corruption("{}: the checksum member at the start of the file is damaged", path);
  const std::string_view stored = file_text.substr(kPrefix.size(), kHexDigits);
  std::string_view rest = file_text.substr(end + 1);
  if (rest.starts_with(',')) rest.remove_prefix(1);
  std::string object = "{";
  object.append(rest);
  const std::string actual = Crc32cHex(object);
  if (actual != stored)
    return Corruption("{}: checksum mismatch (CRC-32C {} where the file says {}): the file is damaged", path, actual,
                      stored);
  return object;
}

Status WriteChecksummedFile(const std::string& path, std::string_view object_text) {
  return WriteFileAtomic(path, WithChecksum(object_text));
}

Result<std::string> ReadChecksummedFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  return VerifyChecksum(path, text);
}

}  // namespace sibyl
