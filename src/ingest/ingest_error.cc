#include "ingest/ingest_error.h"

namespace sibyl {

std::string IngestError::ToString() const {
  std::string out;
  if (!source.empty()) {
    out = position.line > 0 ? fmt::format("{}:{}: ", source, position.line)
                            : fmt::format("{}: ", source);
  }
  if (in_array || source.empty()) out += fmt::format("batch index {}: ", position.index);
  if (!field.empty()) out += fmt::format("field \"{}\": ", field);
  out += reason;
  return out;
}

}  // namespace sibyl
