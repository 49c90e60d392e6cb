// Loading a CsvMapping from its JSON document.
#include <nlohmann/json.hpp>

#include "common/file.h"
#include "ingest/csv_parser.h"

namespace sibyl {
namespace {

using Json = nlohmann::json;

// "+02:00", "-0530", "Z" → milliseconds east of UTC.
Result<int64_t> ParseUtcOffset(const std::string& text) {
  if (text.empty() || text == "Z" || text == "UTC") return int64_t{0};
  int sign = text[0] == '-' ? -1 : text[0] == '+' ? 1 : 0;
  std::string digits;
  for (char c : text.substr(1)) {
    if (c >= '0' && c <= '9') digits += c;
    else if (c != ':') digits.clear(), sign = 0;
  }
  if (sign == 0 || digits.size() != 4) {
    return InvalidArgument("mapping: utc_offset '{}' should look like +02:00", text);
  }
  int64_t hours = std::stoi(digits.substr(0, 2)), minutes = std::stoi(digits.substr(2));
  return sign * (hours * 60 + minutes) * 60'000;
}

// A column reference is "Name" or {"column": "Name"}.
Result<std::string> ColumnOf(const Json& j, std::string_view key) {
  if (j.is_string()) return j.get<std::string>();
  if (j.is_object() && j.contains("column") && j["column"].is_string()) {
    return j["column"].get<std::string>();
  }
  return InvalidArgument("mapping: \"{}\" should be a column name or {{\"column\": NAME}}", key);
}

// The optional "prefix" of an id column given as an object.
Result<std::string> PrefixOf(const Json& j, std::string_view key) {
  if (!j.is_object() || !j.contains("prefix")) return std::string();
  if (!j["prefix"].is_string()) return InvalidArgument("mapping: {}.prefix should be a string", key);
  return j["prefix"].get<std::string>();
}

Result<std::vector<CsvProperty>> PropertiesOf(const Json& j, std::string_view key) {
  std::vector<CsvProperty> out;
  if (!j.is_array()) return InvalidArgument("mapping: \"{}\" should be an array", key);
  for (const Json& p : j) {
    if (!p.is_object() || !p.contains("column") || !p["column"].is_string()) {
      return InvalidArgument("mapping: each of \"{}\" needs a \"column\"", key);
    }
    CsvProperty prop;
    prop.column = p["column"].get<std::string>();
    prop.name = p.value("name", prop.column);
    std::string type = p.value("type", "string");
    if (type == "string") prop.type = CsvProperty::Type::kString;
    else if (type == "number") prop.type = CsvProperty::Type::kNumber;
    else if (type == "bool" || type == "boolean") prop.type = CsvProperty::Type::kBool;
    else return InvalidArgument("mapping: {}.{}: type '{}' is not string, number or bool", key, prop.name, type);
    out.push_back(std::move(prop));
  }
  return out;
}

Status Load(const Json& j, CsvMapping& m) {
  if (!j.is_object()) return InvalidArgument("mapping: expected a JSON object");
  if (j.contains("delimiter")) {
    std::string d = j["delimiter"].get<std::string>();
    if (d.size() != 1) return InvalidArgument("mapping: delimiter must be one character");
    m.delimiter = d[0];
  }
  if (j.contains("user_id")) {
    ASSIGN_OR_RETURN(m.user_id_column, ColumnOf(j["user_id"], "user_id"));
    ASSIGN_OR_RETURN(m.user_id_prefix, PrefixOf(j["user_id"], "user_id"));
  }
  if (j.contains("device_id")) {
    ASSIGN_OR_RETURN(m.device_id_column, ColumnOf(j["device_id"], "device_id"));
    ASSIGN_OR_RETURN(m.device_id_prefix, PrefixOf(j["device_id"], "device_id"));
  }
  if (m.user_id_column.empty() && m.device_id_column.empty()) {
    return InvalidArgument("mapping: \"user_id\" or \"device_id\" must name a column");
  }
  m.skip_rows_without_id = j.value("skip_rows_without_id", false);
  if (j.contains("session_id")) { ASSIGN_OR_RETURN(m.session_id_column, ColumnOf(j["session_id"], "session_id")); }
  if (j.contains("time")) {
    const Json& t = j["time"];
    ASSIGN_OR_RETURN(m.time_column, ColumnOf(t, "time"));
    std::string format = t.is_object() ? t.value("format", "iso") : "iso";
    if (format == "iso") m.time_format = CsvTimeFormat::kIso;
    else if (format == "epoch_ms") m.time_format = CsvTimeFormat::kEpochMs;
    else if (format == "epoch_s" || format == "epoch_seconds") m.time_format = CsvTimeFormat::kEpochSeconds;
    else {
      m.time_format = CsvTimeFormat::kPattern;
      m.time_pattern = format;
    }
    if (t.is_object() && t.contains("utc_offset")) {
      ASSIGN_OR_RETURN(m.utc_offset_ms, ParseUtcOffset(t["utc_offset"].get<std::string>()));
    }
  }
  if (!j.contains("event_type")) return InvalidArgument("mapping: \"event_type\" is required");
  const Json& et = j["event_type"];
  if (et.is_string()) {
    m.event_type.value.constant = et.get<std::string>();
  } else if (et.is_object() && et.contains("constant")) {
    m.event_type.value.constant = et["constant"].get<std::string>();
  } else if (et.is_object() && et.contains("column")) {
    m.event_type.value.column = et["column"].get<std::string>();
  } else if (et.is_object() && et.contains("if")) {
    const Json& cond = et["if"];
    if (!cond.is_object() || !cond.contains("column")) {
      return InvalidArgument("mapping: event_type.if needs a \"column\"");
    }
    m.event_type.if_column = cond["column"].get<std::string>();
    if (cond.contains("starts_with")) m.event_type.if_starts_with = cond["starts_with"].get<std::string>();
    else if (cond.contains("equals")) m.event_type.if_equals = cond["equals"].get<std::string>();
    else return InvalidArgument("mapping: event_type.if needs \"starts_with\" or \"equals\"");
    if (!et.contains("then") || !et.contains("else")) {
      return InvalidArgument("mapping: event_type with \"if\" needs \"then\" and \"else\"");
    }
    m.event_type.then_type = et["then"].get<std::string>();
    m.event_type.else_type = et["else"].get<std::string>();
  } else {
    return InvalidArgument("mapping: event_type should be a name, {{\"column\"}}, or {{\"if\",\"then\",\"else\"}}");
  }
  if (j.contains("insert_id")) {
    const Json& ins = j["insert_id"];
    m.insert_id_template = ins.is_object() ? ins.value("template", "") : ins.get<std::string>();
  }
  if (j.contains("event_properties")) {
    ASSIGN_OR_RETURN(m.event_properties, PropertiesOf(j["event_properties"], "event_properties"));
  }
  if (j.contains("user_properties")) {
    ASSIGN_OR_RETURN(m.user_properties, PropertiesOf(j["user_properties"], "user_properties"));
  }
  if (j.contains("derived")) {
    for (const Json& d : j["derived"]) {
      if (!d.contains("name") || !d.contains("multiply") || !d["multiply"].is_array()) {
        return InvalidArgument("mapping: each \"derived\" needs \"name\" and \"multiply\": [columns]");
      }
      CsvProduct product{d["name"].get<std::string>(), d["multiply"].get<std::vector<std::string>>()};
      m.products.push_back(std::move(product));
    }
  }
  if (j.contains("min_id_length")) m.validation.min_id_length = j["min_id_length"].get<size_t>();
  return Status::Ok();
}

}  // namespace

Result<std::shared_ptr<const CsvMapping>> CsvMapping::FromJson(std::string_view text) {
  auto mapping = std::make_shared<CsvMapping>();
  try {
    Json j = Json::parse(text);
    RETURN_IF_ERROR(Load(j, *mapping));
  } catch (const Json::exception& e) {
    return InvalidArgument("mapping: {}", e.what());
  }
  return std::shared_ptr<const CsvMapping>(std::move(mapping));
}

Result<std::shared_ptr<const CsvMapping>> CsvMapping::FromFile(const std::string& path) {
  ASSIGN_OR_RETURN(std::string text, ReadFile(path));
  auto mapping = FromJson(text);
  if (!mapping.ok()) return mapping.status().WithContext(path);
  return mapping;
}

}  // namespace sibyl
