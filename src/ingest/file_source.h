// Reading event files: plain or gzip, NDJSON, one JSON body, or CSV with a mapping;
// parsed in chunks on several threads and delivered in file order.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/status.h"
#include "event/event.h"
#include "ingest/ingest_error.h"
#include "ingest/json_parser.h"

namespace sibyl {

class CsvMapping;

enum class FileFormat {
  kAuto,       // by name and content, see DetectFormat
  kJsonLines,  // one event (or body) per line
  kJsonBody,   // the whole file is one request body (array or object), maybe multi-line
  kCsv,        // needs FileParseOptions::csv_mapping
};

std::string_view FileFormatName(FileFormat format);

// ".csv"/".csv.gz" → kCsv. Otherwise JSON: a file starting with '[', or whose first line
// is not a complete JSON value (a pretty-printed body), → kJsonBody; else kJsonLines.
// `head` is the start of the (decompressed) content.
FileFormat DetectFormat(const std::string& path, std::string_view head);

struct FileParseOptions {
  FileFormat format = FileFormat::kAuto;
  BodyKind body_kind = BodyKind::kAuto;  // for kJsonBody
  int threads = 2;                       // parsing threads; 0 means one per core
  size_t chunk_bytes = 4 << 20;          // input per batch (whole lines are kept together)
  // json.validation's time bounds (min_time_ms, max_time_ms) apply to CSV input too.
  JsonParseOptions json;
  std::shared_ptr<const CsvMapping> csv_mapping;  // required for CSV
  // Run on the parsing thread on each parsed batch before it goes to the sink (e.g. a
  // store's Prepare, to take work off the thread that appends). Must be thread-safe.
  std::function<void(EventBatch&)> prepare;
};

// Receives each parsed chunk in file order: the valid events (batch.files[0] is the
// file's name) and the rejected ones. Called on the thread that called ParseFile.
// Returning an error stops parsing and ParseFile returns it.
using BatchSink = std::function<Status(EventBatch&&, std::vector<IngestError>&&)>;

// What one ParseFile saw.
struct FileParseStats {
  FileFormat format = FileFormat::kAuto;
  uint64_t events = 0;        // valid events and identify calls delivered
  uint64_t errors = 0;        // rejected events and lines
  uint64_t skipped_rows = 0;  // CSV rows without an id, when the mapping skips them
  uint64_t bytes = 0;         // decompressed input bytes
};

// Reads `path` ("-" for stdin; .gz or gzip content is decompressed while reading) and
// parses it. I/O errors, a missing CSV mapping or an unparseable JSON body file return a
// Status; bad events are reported to the sink and do not stop parsing.
Result<FileParseStats> ParseFile(const std::string& path, const FileParseOptions& options,
                                 const BatchSink& sink);

}  // namespace sibyl
