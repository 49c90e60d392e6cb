#include "ingest/csv_parser.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>

#include <fmt/format.h>

#include "common/time.h"

namespace sibyl {
namespace {

// Reads exactly `width` digits (or up to `width` when `flexible`) at `pos`.
bool ReadDigits(std::string_view s, size_t& pos, int width, bool flexible, int64_t& out) {
  out = 0;
  int n = 0;
  while (n < width && pos < s.size() && s[pos] >= '0' && s[pos] <= '9') {
    out = out * 10 + (s[pos++] - '0');
    ++n;
  }
  return flexible ? n > 0 : n == width;
}

// A small strptime: %Y %m %d %H %M %S (seconds may carry .fff), %% and literals.
bool ParsePatternTime(std::string_view text, std::string_view pattern, int64_t utc_offset_ms,
                      int64_t& out) {
  int64_t year = 1970, month = 1, day = 1, hour = 0, minute = 0, second = 0, millis = 0;
  size_t pos = 0;
  for (size_t i = 0; i < pattern.size(); ++i) {
    char c = pattern[i];
    if (c != '%' || i + 1 == pattern.size()) {
      if (pos >= text.size() || text[pos] != c) return false;
      ++pos;
      continue;
    }
    char spec = pattern[++i];
    bool ok = true;
    switch (spec) {
      case 'Y': ok = ReadDigits(text, pos, 4, false, year); break;
      case 'm': ok = ReadDigits(text, pos, 2, true, month); break;
      case 'd': ok = ReadDigits(text, pos, 2, true, day); break;
      case 'H': ok = ReadDigits(text, pos, 2, true, hour); break;
      case 'M': ok = ReadDigits(text, pos, 2, true, minute); break;
      case 'S':
        ok = ReadDigits(text, pos, 2, true, second);
        if (ok && pos < text.size() && text[pos] == '.') {
          ++pos;
          int64_t frac = 0;
          size_t start = pos;
          while (pos < text.size() && text[pos] >= '0' && text[pos] <= '9') {
            if (pos - start < 3) frac = frac * 10 + (text[pos] - '0');
            ++pos;
          }
          for (size_t k = pos - start; k < 3; ++k) frac *= 10;
          millis = frac;
        }
        break;
      case '%':
        ok = pos < text.size() && text[pos++] == '%';
        break;
      default:
        return false;
    }
    if (!ok) return false;
  }
  if (pos != text.size() || month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 ||
      minute > 59 || second > 60) {
    return false;
  }
  out = DaysFromCivil(year, static_cast<unsigned>(month), static_cast<unsigned>(day)) * kMsPerDay +
        hour * kMsPerHour + minute * 60'000 + second * 1000 + millis - utc_offset_ms;
  return true;
}

bool ParseNumber(std::string_view text, double& out) {
  while (!text.empty() && text.front() == ' ') text.remove_prefix(1);
  while (!text.empty() && text.back() == ' ') text.remove_suffix(1);
  if (!text.empty() && text.front() == '+') text.remove_prefix(1);
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size() && std::isfinite(out);
}

bool ParseInteger(std::string_view text, int64_t& out) {
  auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out);
  return ec == std::errc() && end == text.data() + text.size();
}

}  // namespace

size_t CsvFirstRecordEnd(std::string_view text) {
  bool quoted = false;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '"') quoted = !quoted;
    else if (text[i] == '\n' && !quoted) return i + 1;
  }
  return std::string_view::npos;
}

size_t CsvCompleteRecordsEnd(std::string_view text) {
  // A doubled quote toggles twice, so counting quotes tells in-or-out at every byte.
  bool quoted = false;
  size_t end = 0;
  const char* p = text.data();
  const char* stop = p + text.size();
  while (p < stop) {
    const char* q = static_cast<const char*>(std::memchr(p, '"', stop - p));
    const char* segment_end = q ? q : stop;
    if (!quoted) {
      // The last newline of this unquoted stretch ends a record.
      for (const char* r = segment_end; r > p; --r) {
        if (r[-1] == '\n') {
          end = static_cast<size_t>(r - text.data());
          break;
        }
      }
    }
    if (q == nullptr) break;
    quoted = !quoted;
    p = q + 1;
  }
  return end;
}

bool SplitCsvRecord(std::string_view record, char delimiter,
                    std::vector<std::string_view>& fields, std::string& scratch) {
  fields.clear();
  scratch.clear();
  scratch.reserve(record.size());  // unescaped text never grows: views stay valid
  size_t i = 0;
  while (true) {
    if (i < record.size() && record[i] == '"') {
      size_t start = ++i;
      bool escaped = false;
      while (true) {
        if (i >= record.size()) return false;  // unterminated quote
        if (record[i] == '"') {
          if (i + 1 < record.size() && record[i + 1] == '"') {
            escaped = true;
            i += 2;
            continue;
          }
          break;
        }
        ++i;
      }
      std::string_view inner = record.substr(start, i - start);
      ++i;  // closing quote
      if (i < record.size() && record[i] != delimiter) return false;  // junk after quote
      if (escaped) {
        size_t at = scratch.size();
        for (size_t k = 0; k < inner.size(); ++k) {
          scratch += inner[k];
          if (inner[k] == '"') ++k;
        }
        inner = std::string_view(scratch.data() + at, scratch.size() - at);
      }
      fields.push_back(inner);
    } else {
      size_t end = record.find(delimiter, i);
      if (end == std::string_view::npos) end = record.size();
      fields.push_back(record.substr(i, end - i));
      i = end;
    }
    if (i >= record.size()) return true;
    ++i;  // the delimiter
  }
}

Result<std::shared_ptr<const CsvParser>> CsvParser::Create(
    std::shared_ptr<const CsvMapping> mapping, std::string_view header_record) {
  while (!header_record.empty() && (header_record.back() == '\n' || header_record.back() == '\r')) {
    header_record.remove_suffix(1);
  }
  if (header_record.size() >= 3 && header_record.substr(0, 3) == "\xEF\xBB\xBF") {
    header_record.remove_prefix(3);  // a UTF-8 byte order mark
  }
  std::vector<std::string_view> fields;
  std::string scratch;
  if (header_record.empty() || !SplitCsvRecord(header_record, mapping->delimiter, fields, scratch)) {
    return InvalidArgument("CSV header row is missing or malformed");
  }
  auto parser = std::shared_ptr<CsvParser>(new CsvParser());
  for (std::string_view f : fields) parser->header_.emplace_back(f);
  std::vector<std::string> missing;
  auto find = [&](const std::string& column) -> int {
    if (column.empty()) return -1;
    for (size_t i = 0; i < parser->header_.size(); ++i) {
      if (parser->header_[i] == column) return static_cast<int>(i);
    }
    missing.push_back(column);
    return -1;
  };
  const CsvMapping& m = *mapping;
  parser->user_id_ = find(m.user_id_column);
  parser->device_id_ = find(m.device_id_column);
  parser->time_ = find(m.time_column);
  parser->session_id_ = find(m.session_id_column);
  parser->event_type_column_ = find(m.event_type.value.column);
  parser->if_column_ = find(m.event_type.if_column);
  for (const CsvProperty& p : m.event_properties) parser->event_property_columns_.push_back(find(p.column));
  for (const CsvProperty& p : m.user_properties) parser->user_property_columns_.push_back(find(p.column));
  for (const CsvProduct& p : m.products) {
    std::vector<int> columns;
    for (const std::string& c : p.columns) columns.push_back(find(c));
    parser->product_columns_.push_back(std::move(columns));
  }
  // "{Invoice}-{StockCode}-{row}" → literal and column parts.
  std::string_view t = m.insert_id_template;
  while (!t.empty()) {
    size_t open = t.find('{');
    size_t close = open == std::string_view::npos ? open : t.find('}', open);
    BoundTemplatePart part;
    part.literal = std::string(t.substr(0, close == std::string_view::npos ? t.size() : open));
    if (close == std::string_view::npos) {
      parser->insert_id_.push_back(std::move(part));
      break;
    }
    std::string name(t.substr(open + 1, close - open - 1));
    part.column = name == "row" ? -2 : find(name);
    parser->insert_id_.push_back(std::move(part));
    t.remove_prefix(close + 1);
  }
  if (!missing.empty()) {
    return InvalidArgument("CSV mapping names column \"{}\", which the header does not have",
                           missing.front());
  }
  parser->mapping_ = std::move(mapping);
  return std::shared_ptr<const CsvParser>(std::move(parser));
}

uint64_t CsvParser::ParseRows(std::string_view text, uint32_t file_index, uint64_t first_line,
                              EventBatch& batch, std::vector<IngestError>& errors) const {
  const CsvMapping& m = *mapping_;
  std::string_view source =
      file_index < batch.files.size() ? std::string_view(batch.files[file_index]) : "";
  // Names from the mapping are copied into the batch, which may outlive the mapping.
  std::string_view constant_type = batch.Intern(m.event_type.value.constant);
  std::string_view then_type = batch.Intern(m.event_type.then_type);
  std::string_view else_type = batch.Intern(m.event_type.else_type);
  std::vector<std::string_view> event_property_names, user_property_names, product_names;
  for (const CsvProperty& p : m.event_properties) event_property_names.push_back(batch.Intern(p.name));
  for (const CsvProperty& p : m.user_properties) user_property_names.push_back(batch.Intern(p.name));
  for (const CsvProduct& p : m.products) product_names.push_back(batch.Intern(p.name));
  std::vector<std::string_view> fields;
  std::string scratch, insert_id;
  uint64_t skipped = 0;
  uint64_t line = first_line;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = CsvFirstRecordEnd(text.substr(pos));
    std::string_view record = text.substr(pos, end == std::string_view::npos ? text.size() - pos : end);
    pos += record.size();
    uint64_t record_line = line;
    line += static_cast<uint64_t>(std::count(record.begin(), record.end(), '\n'));
    while (!record.empty() && (record.back() == '\n' || record.back() == '\r')) record.remove_suffix(1);
    if (record.empty()) continue;
    SourcePosition position{file_index, record_line, 0};
    auto fail = [&](int column, std::string reason) {
      std::string field = column >= 0 ? header_[column] : "";
      if (column >= 0) reason = fmt::format("(column {}) {}", column + 1, reason);
      errors.push_back(IngestError{position, std::string(source), false, std::move(field),
                                   std::move(reason)});
    };
    if (!SplitCsvRecord(record, m.delimiter, fields, scratch)) {
      fail(-1, "malformed quoting (RFC 4180: a quoted field must end with a quote "
               "followed by a delimiter or the end of the row)");
      continue;
    }
    if (fields.size() != header_.size()) {
      fail(-1, fmt::format("row has {} fields; the header has {}", fields.size(), header_.size()));
      continue;
    }
    // Data row number: 1 for the first row under the header. Physical lines differ
    // only when quoted fields hold newlines, which is rare; row numbers stay stable.
    ParsedEvent e;
    e.position = position;
    if ((user_id_ < 0 || fields[user_id_].empty()) && (device_id_ < 0 || fields[device_id_].empty()) &&
        m.skip_rows_without_id) {
      ++skipped;
      continue;
    }
    if (!scratch.empty()) {
      // Unescaped fields live in `scratch`, which the next row reuses: keep copies.
      for (auto& f : fields) {
        if (f.data() >= scratch.data() && f.data() < scratch.data() + scratch.capacity()) {
          f = batch.Intern(f);
        }
      }
    }
    // The ids are taken after the copies above (an id with an escaped quote lived in
    // `scratch`), with the mapping's prefix on non-empty ones.
    auto id_of = [&batch](std::string_view field, const std::string& prefix) -> std::string_view {
      if (prefix.empty() || field.empty()) return field;
      std::string prefixed = prefix;
      prefixed.append(field);
      return batch.Intern(prefixed);
    };
    if (user_id_ >= 0) e.user_id = id_of(fields[user_id_], m.user_id_prefix);
    if (device_id_ >= 0) e.device_id = id_of(fields[device_id_], m.device_id_prefix);
    if (m.event_type.if_column.empty()) {
      e.event_type = event_type_column_ >= 0 ? fields[event_type_column_]
                                            : constant_type;
    } else {
      std::string_view v = fields[if_column_];
      bool match = m.event_type.if_equals ? v == *m.event_type.if_equals
                                          : v.starts_with(m.event_type.if_starts_with);
      e.event_type = match ? then_type : else_type;
    }
    bool ok = true;
    if (time_ >= 0 && !fields[time_].empty()) {
      std::string_view t = fields[time_];
      int64_t ms = 0;
      switch (m.time_format) {
        case CsvTimeFormat::kEpochMs: ok = ParseInteger(t, ms); break;
        case CsvTimeFormat::kEpochSeconds: ok = ParseInteger(t, ms); ms *= 1000; break;
        case CsvTimeFormat::kPattern: ok = ParsePatternTime(t, m.time_pattern, m.utc_offset_ms, ms); break;
        case CsvTimeFormat::kIso: {
          Result<int64_t> r = ParseIsoTime(t);
          ok = r.ok();
          if (ok) ms = *r;
          break;
        }
      }
      if (!ok) {
        fail(time_, fmt::format("'{}' is not a time in the mapping's format", t.substr(0, 60)));
        continue;
      }
      e.time_ms = ms;
      e.has_time = true;
    }
    if (session_id_ >= 0 && !fields[session_id_].empty()) {
      if (!ParseInteger(fields[session_id_], e.session_id)) {
        fail(session_id_, "session_id must be an integer");
        continue;
      }
    }
    if (!insert_id_.empty()) {
      insert_id.clear();
      for (const BoundTemplatePart& part : insert_id_) {
        insert_id += part.literal;
        if (part.column == -2) fmt::format_to(std::back_inserter(insert_id), "{}", record_line - 1);
        else if (part.column >= 0) insert_id += fields[part.column];
      }
      e.insert_id = batch.Intern(insert_id);
    }
    size_t properties_start = batch.properties.size(), updates_start = batch.user_updates.size();
    auto convert = [&](const CsvProperty& p, int column, Value& out) -> bool {
      std::string_view v = fields[column];
      if (v.empty()) return false;  // an empty cell is "no value", like JSON null
      switch (p.type) {
        case CsvProperty::Type::kString: out = Value::String(v); return true;
        case CsvProperty::Type::kNumber: {
          double d;
          if (!ParseNumber(v, d)) {
            ok = false;
            fail(column, fmt::format("'{}' is not a number", v.substr(0, 60)));
            return false;
          }
          out = Value::Number(d);
          return true;
        }
        case CsvProperty::Type::kBool:
          if (v == "true" || v == "TRUE" || v == "1") out = Value::Bool(true);
          else if (v == "false" || v == "FALSE" || v == "0") out = Value::Bool(false);
          else {
            ok = false;
            fail(column, fmt::format("'{}' is not true or false", v.substr(0, 60)));
            return false;
          }
          return true;
      }
      return false;
    };
    for (size_t i = 0; ok && i < m.event_properties.size(); ++i) {
      Value v;
      if (convert(m.event_properties[i], event_property_columns_[i], v)) {
        batch.properties.push_back({event_property_names[i], v});
      }
    }
    for (size_t i = 0; ok && i < m.products.size(); ++i) {
      double product = 1;
      for (int column : product_columns_[i]) {
        double d;
        if (!ParseNumber(fields[column], d)) {
          ok = false;
          fail(column, fmt::format("'{}' is not a number (needed for {})",
                                   fields[column].substr(0, 60), m.products[i].name));
          break;
        }
        product *= d;
      }
      if (ok) batch.properties.push_back({product_names[i], Value::Number(product)});
    }
    for (size_t i = 0; ok && i < m.user_properties.size(); ++i) {
      Value v;
      if (convert(m.user_properties[i], user_property_columns_[i], v)) {
        batch.user_updates.push_back({UserPropertyOp::kSet, user_property_names[i], v});
      }
    }
    e.properties_begin = static_cast<uint32_t>(properties_start);
    e.properties_end = static_cast<uint32_t>(batch.properties.size());
    e.user_updates_begin = static_cast<uint32_t>(updates_start);
    e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
    if (ok) {
      if (auto problem = ValidateEvent(e, batch, m.validation)) {
        ok = false;
        // Name the CSV column behind the model field when there is one.
        int column = problem->field == "user_id" ? user_id_
                     : problem->field == "device_id" ? device_id_
                     : problem->field == "time" ? time_ : -1;
        if (column >= 0) {
          fail(column, fmt::format("{}: {}", problem->field, problem->reason));
        } else {
          errors.push_back(IngestError{position, std::string(source), false,
                                       std::move(problem->field), std::move(problem->reason)});
        }
      }
    }
    if (!ok) {
      batch.properties.resize(properties_start);
      batch.user_updates.resize(updates_start);
      continue;
    }
    batch.events.push_back(e);
  }
  return skipped;
}

}  // namespace sibyl
