// Newline-delimited JSON, as a file chunk: any bytes must parse or be reported, never crash.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ingest/json_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  sibyl::EventBatch batch;
  batch.files.push_back("fuzz.ndjson");
  std::vector<sibyl::IngestError> errors;
  std::string_view text = sibyl::AdoptInput(batch, std::string(reinterpret_cast<const char*>(data), size));
  sibyl::ParseJsonLines(text, 0, 1, batch, errors);
  for (const auto& e : errors) (void)e.ToString();
  return 0;
}
