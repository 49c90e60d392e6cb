// The encoded form of a NumberColumnBatch (reader.h): inside write-ahead log batches, and
// as a column file of its own once a checkpoint writes it out (docs/FORMAT.md).
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include "common/status.h"
#include "store/codec.h"
#include "store/reader.h"

namespace sibyl {

// time, actors (deltas), then per column its key, its value count (1: shared by every
// actor) and the values.
void PutNumberColumns(const NumberColumnBatch& batch, ByteWriter& out);
// Reads what PutNumberColumns wrote; `what` names the file or log for errors.
Result<std::shared_ptr<const NumberColumnBatch>> GetNumberColumns(ByteReader& in, std::string_view what);

// A column file: a magic line and one checksummed, compressed block of PutNumberColumns.
std::string EncodeNumberColumnFile(const NumberColumnBatch& batch);
Result<std::shared_ptr<const NumberColumnBatch>> DecodeNumberColumnFile(std::string_view file, std::string_view what);

}  // namespace sibyl
