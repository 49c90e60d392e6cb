// CSV input (RFC 4180: header row, quoted fields with "" escapes and embedded newlines)
// turned into events by a column mapping loaded from JSON. docs/INGEST.md describes the
// mapping; examples/online_retail_mapping.json is a complete one.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/status.h"
#include "event/event.h"
#include "ingest/ingest_error.h"
#include "ingest/validate.h"

namespace sibyl {

// Where a value comes from: a column, or a constant.
struct CsvSource {
  std::string column;    // empty: use `constant`
  std::string constant;
};

// How the event type is chosen for a row.
struct CsvEventTypeRule {
  CsvSource value;  // used when `if_column` is empty
  std::string if_column;
  std::string if_starts_with;  // the condition: column starts with this ...
  std::optional<std::string> if_equals;  // ... or equals this
  std::string then_type, else_type;
};

enum class CsvTimeFormat { kPattern, kEpochMs, kEpochSeconds, kIso };

struct CsvProperty {
  enum class Type { kString, kNumber, kBool };
  std::string name;
  std::string column;
  Type type = Type::kString;
};

// A property computed from other columns: the product of numeric columns.
struct CsvProduct {
  std::string name;
  std::vector<std::string> columns;
};

// What each column means. Build with CsvMapping::FromJson.
class CsvMapping {
 public:
  // Parses the mapping document (see docs/INGEST.md); errors name the bad key.
  static Result<std::shared_ptr<const CsvMapping>> FromJson(std::string_view json);
  static Result<std::shared_ptr<const CsvMapping>> FromFile(const std::string& path);

  char delimiter = ',';
  std::string user_id_column, device_id_column;
  // Put before every non-empty id of the column ({"column": ..., "prefix": "cust-"}):
  // namespaces a shop's customer numbers and lifts short ones over min_id_length.
  std::string user_id_prefix, device_id_prefix;
  // Rows with neither id: skipped and counted (true) or reported as errors (false).
  bool skip_rows_without_id = false;
  std::string time_column;  // empty: no time (the receiver uses ingestion time)
  CsvTimeFormat time_format = CsvTimeFormat::kIso;
  std::string time_pattern;  // strptime-like: %Y %m %d %H %M %S %%, literal characters
  int64_t utc_offset_ms = 0;  // local time of the pattern = UTC + offset
  CsvEventTypeRule event_type;
  std::string insert_id_template;  // "{Column}-{row}"; {row} is the 1-based data row
  std::string session_id_column;
  std::vector<CsvProperty> event_properties, user_properties;
  std::vector<CsvProduct> products;  // e.g. revenue = Quantity * Price
  ValidationOptions validation;
};

// A mapping bound to one file's header. Immutable, so threads may share one.
class CsvParser {
 public:
  // Binds `mapping` to the header record; every column it names must exist.
  static Result<std::shared_ptr<const CsvParser>> Create(
      std::shared_ptr<const CsvMapping> mapping, std::string_view header_record);

  // Parses whole records (`text` from AdoptInput; its first record starts at 1-based
  // physical line `first_line` of file `file_index`). Returns how many rows were skipped
  // for having no id (see CsvMapping::skip_rows_without_id).
  uint64_t ParseRows(std::string_view text, uint32_t file_index, uint64_t first_line,
                     EventBatch& batch, std::vector<IngestError>& errors) const;

  struct BoundTemplatePart {
    std::string literal;
    int column = -1;  // -1: literal only; -2: {row}
  };

 private:
  CsvParser() = default;
  std::shared_ptr<const CsvMapping> mapping_;
  std::vector<std::string> header_;
  int user_id_ = -1, device_id_ = -1, time_ = -1, session_id_ = -1;
  int event_type_column_ = -1, if_column_ = -1;
  std::vector<BoundTemplatePart> insert_id_;
  std::vector<int> event_property_columns_, user_property_columns_;
  std::vector<std::vector<int>> product_columns_;
};

// End of the first record of `text` (just past its newline), or npos if incomplete.
size_t CsvFirstRecordEnd(std::string_view text);
// End of the last complete record (just past the last newline outside quotes); 0 if none.
size_t CsvCompleteRecordsEnd(std::string_view text);

// Splits one record into fields, unescaping quoted ones into `scratch` as needed.
// Returns false if a quote is malformed. Exposed for tests.
bool SplitCsvRecord(std::string_view record, char delimiter, std::vector<std::string_view>& fields,
                    std::string& scratch);

}  // namespace sibyl
