// CSV rows under a fixed mapping; the first line of the input is the header.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "ingest/csv_parser.h"
#include "ingest/json_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static auto mapping = *sibyl::CsvMapping::FromJson(R"({"user_id":"u","device_id":"d",
      "time":{"column":"t","format":"%Y-%m-%d %H:%M:%S"},
      "event_type":{"if":{"column":"e","starts_with":"C"},"then":"X","else":"Y"},
      "insert_id":{"template":"{u}-{e}-{row}"},
      "event_properties":[{"name":"n","column":"n","type":"number"},{"name":"b","column":"b","type":"bool"}],
      "derived":[{"name":"r","multiply":["n","n"]}], "user_properties":[{"name":"s","column":"s"}]})");
  std::string text(reinterpret_cast<const char*>(data), size);
  size_t header_end = sibyl::CsvFirstRecordEnd(text);
  if (header_end == std::string::npos) return 0;
  auto parser = sibyl::CsvParser::Create(mapping, std::string_view(text).substr(0, header_end));
  if (!parser.ok()) return 0;
  sibyl::EventBatch batch;
  std::vector<sibyl::IngestError> errors;
  std::string_view rows = sibyl::AdoptInput(batch, text.substr(header_end));
  (*parser)->ParseRows(rows.substr(0, sibyl::CsvCompleteRecordsEnd(rows)), 0, 2, batch, errors);
  (*parser)->ParseRows(rows, 0, 2, batch, errors);  // and with an unterminated last record
  return 0;
}
