// JSON files that carry their own CRC-32C (docs/FORMAT.md, "Checksummed JSON files"):
// a prediction's definition.json, version.json, holdout.json, run records, drift
// references, backtests and a model bundle's manifest.json.
//
// The checksum is the object's first member, `{"crc32c":"hhhhhhhh",...`, over the bytes of
// the file without that member (the object as it was serialised). So the file stays one
// valid JSON document (jq reads it), it is written in one atomic rename like before, and
// every byte is covered, whitespace too: checking needs no re-serialisation, which could
// differ between versions of the JSON library. Files written before checksums existed do
// not start with the member and are read unchecked.
//
// Works on text, not on parsed JSON, so common stays free of a JSON library.
#pragma once

#include <string>
#include <string_view>

#include "common/status.h"

namespace sibyl {

// `object_text` (a serialised JSON object, starting with '{') with its checksum member
// put first.
std::string WithChecksum(std::string_view object_text);

// The object text without its checksum member, after checking it. Corruption naming
// `path` when the checksum does not match, or when the file starts with a damaged
// checksum member (one byte off `{"crc32c":"`: without this, damage to the member's name
// would make a checked file look like an old unchecked one). A file without the member
// (written before checksums) is returned as it is.
Result<std::string> VerifyChecksum(const std::string& path, std::string_view file_text);

// WriteFileAtomic(path, WithChecksum(object_text)).
Status WriteChecksummedFile(const std::string& path, std::string_view object_text);
// ReadFile, then VerifyChecksum.
Result<std::string> ReadChecksummedFile(const std::string& path);

}  // namespace sibyl
