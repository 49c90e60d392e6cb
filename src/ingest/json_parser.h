// Parsers for JSON event input: newline-delimited files and HTTP request bodies, in
// Amplitude (event, identify, HTTP V2 / batch, identify API) and Segment (track,
// identify, page, screen, group, alias, batch) shapes. Field mapping: docs/INGEST.md.
//
// Ownership: parsed events hold string_views straight into the input text (strings with
// escapes are unescaped into the batch's arena). So the input must live as long as the
// batch, and simdjson needs SIMDJSON_PADDING readable bytes after it. AdoptInput does
// both: hand the buffer to the batch and parse the view it returns.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "event/event.h"
#include "ingest/ingest_error.h"
#include "ingest/validate.h"

namespace sibyl {

// Moves `buffer` into `batch` (adding simdjson's padding) and returns a view of the
// original bytes, valid as long as the batch.
std::string_view AdoptInput(EventBatch& batch, std::string buffer);

// simdjson's padding: readable bytes a parsed text needs after its end.
inline constexpr size_t kInputPadding = 64;

// The same for a raw buffer of at least `size + kInputPadding` bytes (its padding is
// written here), so that big chunks are neither zero-filled nor copied to add padding.
std::string_view AdoptInput(EventBatch& batch, std::unique_ptr<char[]> buffer, size_t size);

// Which endpoint a body came to. kAuto guesses from the shape: {"events":[..]} is
// Amplitude, {"batch":[..]} or {"type":..} is Segment, a bare array holds Amplitude
// events or identifications (elements without event_type).
enum class BodyKind {
  kAuto,
  kAmplitudeEvents,    // HTTP V2 and batch API: {"api_key":..,"events":[..]}
  kAmplitudeIdentify,  // identify API: one identification object or an array of them
  kSegment,            // one Segment message, or {"batch":[..]}
};

struct JsonParseOptions {
  ValidationOptions validation;
};

// Nested objects in properties are flattened to dotted keys down to this depth; deeper
// nesting rejects the event (such data is almost always a mistake in instrumentation).
inline constexpr int kMaxPropertyNesting = 8;

// A reusable parser (holds simdjson's buffers). Not thread-safe: one per thread.
class JsonEventParser {
 public:
  explicit JsonEventParser(JsonParseOptions options = {});
  ~JsonEventParser();
  JsonEventParser(const JsonEventParser&) = delete;
  JsonEventParser& operator=(const JsonEventParser&) = delete;

  // Parses `text`, a run of whole lines that starts at 1-based line `first_line` of file
  // `file_index` (an index into batch.files). Valid events are appended to `batch`;
  // every rejected line or event adds an IngestError. Blank lines are skipped. A line may
  // also hold a whole request body; its events are then numbered by batch index.
  // `text` must come from AdoptInput (or be kept alive and padded the same way).
  // Returns the number of newline characters in `text` (the lines it ends), which file
  // readers need to number the next chunk's lines.
  uint64_t ParseLines(std::string_view text, uint32_t file_index, uint64_t first_line,
                  EventBatch& batch, std::vector<IngestError>& errors);

  // Parses one request body (see AdoptInput for `body`'s lifetime). Malformed JSON or a
  // body of the wrong shape returns InvalidArgument and adds nothing. Otherwise valid
  // events are appended and invalid ones reported in `errors` by batch index. When the
  // body came from a file, pass its index in batch.files: errors then carry its name
  // and the line each element starts on.
  Status ParseBody(std::string_view body, BodyKind kind, EventBatch& batch,
                   std::vector<IngestError>& errors, int64_t file_index = -1);

  void set_options(const JsonParseOptions& options);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Conveniences using one parser per calling thread.
void ParseJsonLines(std::string_view text, uint32_t file_index, uint64_t first_line,
                    EventBatch& batch, std::vector<IngestError>& errors,
                    const JsonParseOptions& options = {});
// Takes the body by value and keeps it in the batch.
Status ParseRequestBody(std::string body, BodyKind kind, EventBatch& batch,
                        std::vector<IngestError>& errors,
                        const JsonParseOptions& options = {});

}  // namespace sibyl
