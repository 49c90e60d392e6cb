// Internal to ingest: reading JSON values (simdjson ondemand) into the event model's
// Values, with strings kept as views into the input whenever they need no unescaping.
#pragma once

#include <string>
#include <string_view>

#include <simdjson.h>

#include "event/event.h"

namespace sibyl {

inline constexpr int kMaxPropertyNestingForReader = 8;  // == kMaxPropertyNesting
// Array values (kept as canonical JSON) may nest arrays and objects this deep.
inline constexpr int kMaxArrayNesting = 64;

class JsonValueReader {
 public:
  using error_code = simdjson::error_code;
  using value = simdjson::ondemand::value;
  using object = simdjson::ondemand::object;

  // An object key: a view into the input, or (if it has escapes) interned in `batch`.
  error_code ReadKey(simdjson::ondemand::field& field, EventBatch& batch,
                     std::string_view& out);

  // A string value, the same way. The caller has checked that `v` is a string.
  error_code ReadString(value& v, EventBatch& batch, std::string_view& out);

  // A scalar as a Value. `present` is false for null (consumed, kind kNull) and for an
  // object or array (left unread, kind set to kArray).
  error_code ReadScalar(value& v, EventBatch& batch, Value& out, bool& present);

  // Canonical minified JSON of an array (or object) value, interned in `batch`.
  error_code ReadCanonical(value& v, EventBatch& batch, std::string_view& out);

  // Emits every leaf of `obj` as (dotted key, Value): objects are flattened with "."
  // down to kMaxPropertyNesting levels, arrays become canonical JSON, nulls are dropped
  // unless `keep_nulls`. Problems (too deep) go to fail(key, reason).
  template <typename Emit, typename Fail>
  error_code Flatten(object obj, std::string_view prefix, int depth, EventBatch& batch,
                     Emit&& emit, Fail&& fail, bool keep_nulls = false) {
    for (auto field_result : obj) {
      if (auto e = field_result.error()) return e;
      simdjson::ondemand::field& field = field_result.value_unsafe();
      std::string_view key;
      if (auto e = ReadKey(field, batch, key)) return e;
      std::string_view full = key;
      if (!prefix.empty()) {
        key_scratch_.assign(prefix);
        key_scratch_ += '.';
        key_scratch_ += key;
        full = batch.Intern(key_scratch_);
      }
      value& v = field.value();
      if (auto e = FlattenValue(v, full, depth, batch, emit, fail, keep_nulls)) return e;
    }
    return simdjson::SUCCESS;
  }

  template <typename Emit, typename Fail>
  error_code FlattenValue(value& v, std::string_view key, int depth, EventBatch& batch,
                          Emit&& emit, Fail&& fail, bool keep_nulls = false) {
    simdjson::ondemand::json_type type;
    if (auto e = v.type().get(type)) return e;
    if (type == simdjson::ondemand::json_type::object) {
      if (depth >= kMaxPropertyNestingForReader) {
        fail(key, "nests objects more than 8 levels deep");
        return simdjson::SUCCESS;
      }
      object inner;
      if (auto e = v.get_object().get(inner)) return e;
      return Flatten(inner, key, depth + 1, batch, emit, fail, keep_nulls);
    }
    Value out;
    if (type == simdjson::ondemand::json_type::array) {
      std::string_view json;
      if (auto e = ReadCanonical(v, batch, json)) return e;
      emit(key, Value::Array(json));
      return simdjson::SUCCESS;
    }
    bool present = false;
    if (auto e = ReadScalar(v, batch, out, present)) return e;
    if (present || keep_nulls) emit(key, out);
    return simdjson::SUCCESS;
  }

 private:
  error_code WriteCanonical(value& v, int depth);
  void WriteEscaped(std::string_view s);

  std::string key_scratch_;
  std::string json_scratch_;
};

}  // namespace sibyl
