#include "ingest/json_values.h"

#include <cstring>

#include <fmt/format.h>

namespace sibyl {

namespace od = simdjson::ondemand;
using simdjson::error_code;

error_code JsonValueReader::ReadKey(od::field& field, EventBatch& batch,
                                    std::string_view& out) {
  // The raw key starts after its opening quote; stage 1 guarantees a closing quote.
  const char* begin = field.key().raw();
  const char* p = begin;
  while (*p != '"' && *p != '\\') ++p;
  if (*p == '"') {
    out = std::string_view(begin, p - begin);
    return simdjson::SUCCESS;
  }
  std::string_view unescaped;
  if (auto e = field.unescaped_key().get(unescaped)) return e;
  out = batch.Intern(unescaped);
  return simdjson::SUCCESS;
}

error_code JsonValueReader::ReadString(od::value& v, EventBatch& batch, std::string_view& out) {
  std::string_view raw = v.raw_json_token();
  while (!raw.empty() && (raw.back() == ' ' || raw.back() == '\t' || raw.back() == '\n' ||
                          raw.back() == '\r')) {
    raw.remove_suffix(1);
  }
  if (raw.size() >= 2 && raw.front() == '"' &&
      std::memchr(raw.data(), '\\', raw.size()) == nullptr) {
    // No escapes: point into the input and just step over the value.
    simdjson::ondemand::raw_json_string skipped;
    if (auto e = v.get_raw_json_string().get(skipped)) return e;
    out = raw.substr(1, raw.size() - 2);
    return simdjson::SUCCESS;
  }
  std::string_view unescaped;
  if (auto e = v.get_string().get(unescaped)) return e;
  out = batch.Intern(unescaped);
  return simdjson::SUCCESS;
}

error_code JsonValueReader::ReadScalar(od::value& v, EventBatch& batch, Value& out,
                                       bool& present) {
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  present = true;
  switch (type) {
    case od::json_type::string: {
      std::string_view s;
      if (auto e = ReadString(v, batch, s)) return e;
      out = Value::String(s);
      return simdjson::SUCCESS;
    }
    case od::json_type::number: {
      double d;
      if (auto e = v.get_double().get(d)) return e;
      out = Value::Number(d);
      return simdjson::SUCCESS;
    }
    case od::json_type::boolean: {
      bool b;
      if (auto e = v.get_bool().get(b)) return e;
      out = Value::Bool(b);
      return simdjson::SUCCESS;
    }
    case od::json_type::null:
      present = false;
      out = Value::Null();
      return v.is_null().error();
    default:
      present = false;
      out = Value::Array({});
      return simdjson::SUCCESS;
  }
}

error_code JsonValueReader::ReadCanonical(od::value& v, EventBatch& batch,
                                          std::string_view& out) {
  json_scratch_.clear();
  if (auto e = WriteCanonical(v, 0)) return e;
  out = batch.Intern(json_scratch_);
  return simdjson::SUCCESS;
}

void JsonValueReader::WriteEscaped(std::string_view s) {
  json_scratch_ += '"';
  for (char c : s) {
    switch (c) {
      case '"': json_scratch_ += "\\\""; break;
      case '\\': json_scratch_ += "\\\\"; break;
      case '\n': json_scratch_ += "\\n"; break;
      case '\r': json_scratch_ += "\\r"; break;
      case '\t': json_scratch_ += "\\t"; break;
      case '\b': json_scratch_ += "\\b"; break;
      case '\f': json_scratch_ += "\\f"; break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          fmt::format_to(std::back_inserter(json_scratch_), "\\u{:04x}", c);
        } else {
          json_scratch_ += c;
        }
    }
  }
  json_scratch_ += '"';
}

// Canonical: no whitespace, strings with minimal escapes, numbers in shortest
// round-trip form (so [1.0, "\u0041"] and [1,"A"] are the same value).
error_code JsonValueReader::WriteCanonical(od::value& v, int depth) {
  // The canonical form is written recursively: a bound keeps hostile input ("[[[[..."
  // thousands deep, found by fuzz_request_body) from exhausting the stack. The event is
  // rejected as invalid JSON ("too deep").
  if (depth >= kMaxArrayNesting) return simdjson::DEPTH_ERROR;
  od::json_type type;
  if (auto e = v.type().get(type)) return e;
  switch (type) {
    case od::json_type::array: {
      od::array array;
      if (auto e = v.get_array().get(array)) return e;
      json_scratch_ += '[';
      bool first = true;
      for (auto element_result : array) {
        od::value element;
        if (auto e = std::move(element_result).get(element)) return e;
        if (!first) json_scratch_ += ',';
        first = false;
        if (auto e = WriteCanonical(element, depth + 1)) return e;
      }
      json_scratch_ += ']';
      return simdjson::SUCCESS;
    }
    case od::json_type::object: {
      od::object object;
      if (auto e = v.get_object().get(object)) return e;
      json_scratch_ += '{';
      bool first = true;
      for (auto field_result : object) {
        od::field field;
        if (auto e = std::move(field_result).get(field)) return e;
        std::string_view key;
        if (auto e = field.unescaped_key().get(key)) return e;
        if (!first) json_scratch_ += ',';
        first = false;
        WriteEscaped(key);
        json_scratch_ += ':';
        od::value& inner = field.value();
        if (auto e = WriteCanonical(inner, depth + 1)) return e;
      }
      json_scratch_ += '}';
      return simdjson::SUCCESS;
    }
    case od::json_type::string: {
      std::string_view s;
      if (auto e = v.get_string().get(s)) return e;
      WriteEscaped(s);
      return simdjson::SUCCESS;
    }
    case od::json_type::number: {
      double d;
      if (auto e = v.get_double().get(d)) return e;
      fmt::format_to(std::back_inserter(json_scratch_), "{}", d);
      return simdjson::SUCCESS;
    }
    case od::json_type::boolean: {
      bool b;
      if (auto e = v.get_bool().get(b)) return e;
      json_scratch_ += b ? "true" : "false";
      return simdjson::SUCCESS;
    }
    case od::json_type::null:
      json_scratch_ += "null";
      return v.is_null().error();
  }
  return simdjson::INCORRECT_TYPE;
}

}  // namespace sibyl
