// One HTTP request body of each kind (the first byte picks the endpoint).
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ingest/json_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  auto kind = static_cast<sibyl::BodyKind>(data[0] % 4);
  sibyl::EventBatch batch;
  std::vector<sibyl::IngestError> errors;
  sibyl::Status s = sibyl::ParseRequestBody(std::string(reinterpret_cast<const char*>(data + 1), size - 1),
                                            kind, batch, errors);
  if (!s.ok() && !batch.events.empty()) __builtin_trap();  // a rejected body adds nothing
  return 0;
}
