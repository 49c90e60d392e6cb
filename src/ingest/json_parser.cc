#include "ingest/json_parser.h"

#include <algorithm>
#include <array>
#include <cstring>
#include <optional>

#include <fmt/format.h>
#include <simdjson.h>

#include "common/time.h"
#include "ingest/json_keys.h"
#include "ingest/json_values.h"

namespace sibyl {
namespace {

namespace od = simdjson::ondemand;
using simdjson::error_code;

static_assert(kMaxPropertyNesting == kMaxPropertyNestingForReader);

#define JSON_TRY(expr)                                          \
  do {                                                          \
    ::simdjson::error_code _e = (expr);                         \
    if (_e != ::simdjson::SUCCESS) return _e;                   \
  } while (0)

using namespace json_keys;

// Items are filled in place: a braced temporary was built on the stack and copied, and
// its one-byte field stalled the 16-byte loads of the copy (store forwarding).
inline void AddProperty(EventBatch& batch, std::string_view key, const Value& value) {
  Property& p = batch.properties.emplace_back();
  p.key = key;
  p.value = value;
}
inline void AddUpdate(EventBatch& batch, UserPropertyOp op, std::string_view key, const Value& value) {
  UserPropertyUpdate& u = batch.user_updates.emplace_back();
  u.op = op;
  u.key = key;
  u.value = value;
}

// What the caller knows about the objects being parsed.
enum class Hint : uint8_t {
  kAuto,      // decide from the keys
  kIdentify,  // an Amplitude identify API element: no event, only updates
  kSegment,   // a Segment batch element
};

}  // namespace

struct JsonEventParser::Impl {
  JsonParseOptions options;
  od::parser parser;
  JsonValueReader reader;

  // Per-object state while its fields are read.
  struct Builder {
    ParsedEvent event;
    size_t properties_start = 0;
    size_t updates_start = 0;
    std::optional<FieldProblem> problem;
    bool segment = false;
    bool is_body = false;  // the object turned out to be a request body
    std::string_view segment_type;
    std::string_view name;
    std::string_view previous_id;
    std::string_view group_id;
    bool unsupported_type = false;  // a Segment message of a type sibyl does not use
    std::string_view time_text;  // a string given for time/timestamp
    std::string_view time_field;
    // Where the top-level event properties (price, revenue, ...) went in
    // batch.properties: one entry per key, so at most one per kTopLevelEventProperty name.
    // Left uninitialised: most events have none, and only the first n are read.
    static constexpr size_t kMaxTopLevel = 8;
    uint32_t top_level_at[kMaxTopLevel];
    uint8_t n_top_level = 0;

    void Fail(std::string_view field, std::string reason) {
      if (!problem) problem = FieldProblem{std::string(field), std::move(reason)};
    }
  };

  // Where the events of the current unit (line or body) go.
  struct Target {
    EventBatch* batch;
    std::vector<IngestError>* errors;
    uint32_t file_index;
    std::string_view source;  // file name, "" for a request body
    uint64_t line;
    const char* start;  // where `line` begins, to count the lines of array elements
  };

  explicit Impl(JsonParseOptions o) : options(std::move(o)) {}

  error_code ReadIdField(od::value& v, std::string_view field, std::string_view& out,
                         Builder& b, EventBatch& batch) {
    od::json_type type;
    JSON_TRY(v.type().get(type));
    if (type == od::json_type::null) return v.is_null().error();
    if (type != od::json_type::string) {
      b.Fail(field, "must be a string");
      return simdjson::SUCCESS;  // the unread value is skipped by the iterator
    }
    return reader.ReadString(v, batch, out);
  }

  error_code ReadFields(od::object obj, bool allow_body, Builder& b, const Target& t) {
    EventBatch& batch = *t.batch;
    for (auto field_result : obj) {
      // Used in place (value_unsafe after the error check), not moved into a local copy.
      JSON_TRY(field_result.error());
      od::field& field = field_result.value_unsafe();
      std::string_view key;
      JSON_TRY(reader.ReadKey(field, batch, key));
      // A reference, not a copy: copying the value's iterator right after it was written
      // stalled on store forwarding (a third of this function's samples).
      od::value& v = field.value();
      const Key key_kind = Keys().Find(key);
      switch (key_kind) {
        case Key::kUnknown:
          break;
        case Key::kUserId:
          JSON_TRY(ReadIdField(v, "user_id", b.event.user_id, b, batch));
          break;
        case Key::kDeviceId:
          JSON_TRY(ReadIdField(v, "device_id", b.event.device_id, b, batch));
          break;
        case Key::kEventType:
          JSON_TRY(ReadIdField(v, "event_type", b.event.event_type, b, batch));
          break;
        case Key::kInsertId:
          JSON_TRY(ReadIdField(v, "insert_id", b.event.insert_id, b, batch));
          break;
        case Key::kType:
          JSON_TRY(ReadIdField(v, "type", b.segment_type, b, batch));
          b.segment = true;
          break;
        case Key::kName:
          JSON_TRY(ReadIdField(v, "name", b.name, b, batch));
          break;
        case Key::kPreviousId:
          JSON_TRY(ReadIdField(v, "previousId", b.previous_id, b, batch));
          break;
        case Key::kGroupId:
          JSON_TRY(ReadIdField(v, "groupId", b.group_id, b, batch));
          break;
        case Key::kTime:
        case Key::kTimestamp:
          JSON_TRY(ReadTime(v, key, b, batch));
          break;
        case Key::kSessionId:
          JSON_TRY(ReadSessionId(v, b));
          break;
        case Key::kEventProperties:
          JSON_TRY(ReadPropertyObject(v, key, PropertyTarget::kEvent, b, batch));
          break;
        case Key::kTraits:
          JSON_TRY(ReadPropertyObject(v, key, PropertyTarget::kUserSet, b, batch));
          break;
        case Key::kUserProperties:
          JSON_TRY(ReadPropertyObject(v, key, PropertyTarget::kUserOps, b, batch));
          break;
        case Key::kTopLevelEventProperty:
        case Key::kTopLevelUserProperty: {
          const bool user = key_kind == Key::kTopLevelUserProperty;
          Value value;
          bool present = false;
          JSON_TRY(reader.ReadScalar(v, batch, value, present));
          if (!present) {
            if (value.kind == ValueKind::kNull) break;
            b.Fail(key, "must be a string, number or boolean");
            break;
          }
          if (user) {
            AddUpdate(batch, UserPropertyOp::kSet, key, value);
          } else {
            AddTopLevelProperty(key, value, b, batch);
          }
          break;
        }
        case Key::kEvents:
        case Key::kBatch: {
          od::json_type type;
          JSON_TRY(v.type().get(type));
          if (!allow_body || type != od::json_type::array) break;
          b.is_body = true;
          od::array elements;
          JSON_TRY(v.get_array().get(elements));
          const Hint element_hint = key_kind == Key::kBatch ? Hint::kSegment : Hint::kAuto;
          JSON_TRY(ParseArray(elements, element_hint, t));
          break;
        }
      }
    }
    return simdjson::SUCCESS;
  }

  // A top-level event property (Amplitude's price, quantity, revenue, ...). A key given
  // twice at the top level keeps its last value, as JSON readers usually do; whether
  // event_properties has it too is settled in Finish, once every field is read.
  static void AddTopLevelProperty(std::string_view key, const Value& value, Builder& b,
                                  EventBatch& batch) {
    for (uint8_t i = 0; i < b.n_top_level; ++i) {
      Property& p = batch.properties[b.top_level_at[i]];
      if (p.key == key) {
        p.value = value;
        return;
      }
    }
    // One slot per distinct name of the key table, so this never overflows; checked in
    // case a name is added to the table without growing kMaxTopLevel.
    if (b.n_top_level == Builder::kMaxTopLevel) return;
    b.top_level_at[b.n_top_level++] = static_cast<uint32_t>(batch.properties.size());
    AddProperty(batch, key, value);
  }

  // The event property wins over the top-level field of the same name: Amplitude's
  // Purchase lines often carry price both as event_properties.price and as top-level
  // price, and keeping both stored the key twice, so the feature query's property sums
  // counted it twice. A top-level field only fills in a key event_properties lacks.
  static void DropShadowedTopLevel(Builder& b, EventBatch& batch) {
    if (b.n_top_level == 0) return;
    const size_t begin = b.properties_start, end = batch.properties.size();
    bool drop[Builder::kMaxTopLevel] = {};
    bool any = false;
    for (uint8_t t = 0; t < b.n_top_level; ++t) {
      const size_t at = b.top_level_at[t];
      for (size_t i = begin; i < end; ++i) {
        // Other top-level entries have other keys (one entry per key), so a match is an
        // event property.
        if (i != at && batch.properties[i].key == batch.properties[at].key) {
          drop[t] = any = true;
          break;
        }
      }
    }
    if (!any) return;
    // Compact in place, keeping the order of the rest.
    size_t out = begin;
    for (size_t i = begin; i < end; ++i) {
      bool dropped = false;
      for (uint8_t t = 0; t < b.n_top_level; ++t) dropped |= drop[t] && b.top_level_at[t] == i;
      if (!dropped) batch.properties[out++] = batch.properties[i];
    }
    batch.properties.resize(out);
  }

  // Amplitude's SDKs send a Revenue object as event properties `$price`, `$quantity`,
  // `$revenue`, `$productId` and `$revenueType` (on a `revenue_amount` event). The same
  // values are also stored under the plain names a revenue prediction and the features
  // use (`price`, ...), unless the event has those already; without `$revenue`, revenue
  // is price x quantity, as Amplitude computes it (docs/INGEST.md).
  static void AddRevenueAliases(Builder& b, EventBatch& batch) {
    const size_t begin = b.properties_start, end = batch.properties.size();
    bool any = false;
    for (size_t i = begin; i < end && !any; ++i) any = batch.properties[i].key.starts_with('$');
    if (!any) return;
    static constexpr std::pair<std::string_view, std::string_view> kAliases[] = {
        {"$price", "price"}, {"$quantity", "quantity"}, {"$revenue", "revenue"},
        {"$productId", "productId"}, {"$revenueType", "revenueType"}};
    auto find = [&](std::string_view key) -> const Value* {
      for (size_t i = begin; i < batch.properties.size(); ++i)
        if (batch.properties[i].key == key) return &batch.properties[i].value;
      return nullptr;
    };
    for (const auto& [from, to] : kAliases) {
      const Value* value = find(from);
      if (value != nullptr && find(to) == nullptr) {
        const Value copy = *value;  // AddProperty may move the vector
        AddProperty(batch, to, copy);
      }
    }
    const Value* price = find("$price");
    const Value* quantity = find("$quantity");
    if (find("revenue") == nullptr && price != nullptr && price->kind == ValueKind::kNumber) {
      const double q = quantity != nullptr && quantity->kind == ValueKind::kNumber ? quantity->number : 1.0;
      AddProperty(batch, "revenue", Value::Number(price->number * q));
    }
  }

  error_code ReadTime(od::value& v, std::string_view key, Builder& b, EventBatch& batch) {
    od::json_type type;
    JSON_TRY(v.type().get(type));
    switch (type) {
      case od::json_type::null:
        return v.is_null().error();
      case od::json_type::string:
        b.time_field = key;
        return reader.ReadString(v, batch, b.time_text);
      case od::json_type::number: {
        int64_t ms;
        if (v.get_int64().get(ms) != simdjson::SUCCESS) {
          double d;
          JSON_TRY(v.get_double().get(d));
          // Integral doubles (1.7e12) are fine; fractions of a millisecond are not.
          if (!(d >= -9.2e18 && d <= 9.2e18) || d != static_cast<double>(static_cast<int64_t>(d))) {
            b.Fail(key, fmt::format("{} is not a whole number of milliseconds", d));
            return simdjson::SUCCESS;
          }
          ms = static_cast<int64_t>(d);
        }
        b.event.time_ms = ms;
        b.event.has_time = true;
        return simdjson::SUCCESS;
      }
      default:
        b.Fail(key, "must be epoch milliseconds");
        return simdjson::SUCCESS;
    }
  }

  error_code ReadSessionId(od::value& v, Builder& b) {
    od::json_type type;
    JSON_TRY(v.type().get(type));
    if (type == od::json_type::null) return v.is_null().error();
    int64_t id;
    if (type != od::json_type::number || v.get_int64().get(id) != simdjson::SUCCESS) {
      b.Fail("session_id", "must be an integer");
      return simdjson::SUCCESS;
    }
    b.event.session_id = id;
    return simdjson::SUCCESS;
  }

  enum class PropertyTarget { kEvent, kUserSet, kUserOps };

  error_code ReadPropertyObject(od::value& v, std::string_view key, PropertyTarget target,
                                Builder& b, EventBatch& batch) {
    od::json_type type;
    JSON_TRY(v.type().get(type));
    if (type == od::json_type::null) return v.is_null().error();
    if (type != od::json_type::object) {
      b.Fail(key, "must be an object");
      return simdjson::SUCCESS;
    }
    od::object obj;
    JSON_TRY(v.get_object().get(obj));
    if (target == PropertyTarget::kEvent) {
      return reader.Flatten(obj, {}, 1, batch, [&](std::string_view k, const Value& value) {
        AddProperty(batch, k, value);
      }, [&](std::string_view k, std::string reason) { b.Fail(fmt::format("{}.{}", key, k), std::move(reason)); });
    }
    if (target == PropertyTarget::kUserSet) return FlattenUpdates(obj, key, UserPropertyOp::kSet, b, batch);
    // user_properties: "$op": {..} entries are operations; anything else is a $set.
    for (auto field_result : obj) {
      JSON_TRY(field_result.error());
      od::field& field = field_result.value_unsafe();
      std::string_view name;
      JSON_TRY(reader.ReadKey(field, batch, name));
      od::value& value = field.value();
      if (!name.empty() && name[0] == '$') {
        std::optional<UserPropertyOp> op = ParseOp(name);
        if (!op) {
          b.Fail(fmt::format("{}.{}", key, name), "is not a supported operation "
                 "($set, $setOnce, $add, $append, $unset)");
          continue;
        }
        od::json_type op_type;
        JSON_TRY(value.type().get(op_type));
        if (op_type != od::json_type::object) {
          b.Fail(fmt::format("{}.{}", key, name), "must be an object");
          continue;
        }
        od::object op_obj;
        JSON_TRY(value.get_object().get(op_obj));
        JSON_TRY(FlattenUpdates(op_obj, fmt::format("{}.{}", key, name), *op, b, batch));
        continue;
      }
      // A plain key: $set of this one value (flattened if it is an object).
      JSON_TRY(reader.FlattenValue(value, name, 1, batch, [&](std::string_view k, const Value& val) {
        AddUpdate(batch, UserPropertyOp::kSet, k, val);
      }, [&](std::string_view k, std::string reason) { b.Fail(fmt::format("{}.{}", key, k), std::move(reason)); }));
    }
    return simdjson::SUCCESS;
  }

  error_code FlattenUpdates(od::object obj, std::string_view group, UserPropertyOp op,
                            Builder& b, EventBatch& batch) {
    return reader.Flatten(
        obj, {}, 1, batch,
        [&](std::string_view k, const Value& value) {
          if (op == UserPropertyOp::kAdd && value.kind != ValueKind::kNumber) {
            b.Fail(fmt::format("{}.{}", group, k), "$add needs a number");
            return;
          }
          AddUpdate(batch, op, k, op == UserPropertyOp::kUnset ? Value::Null() : value);
        },
        [&](std::string_view k, std::string reason) {
          b.Fail(fmt::format("{}.{}", group, k), std::move(reason));
        },
        /*keep_nulls=*/op == UserPropertyOp::kUnset);
  }

  static std::optional<UserPropertyOp> ParseOp(std::string_view name) {
    if (name == "$set") return UserPropertyOp::kSet;
    if (name == "$setOnce") return UserPropertyOp::kSetOnce;
    if (name == "$add") return UserPropertyOp::kAdd;
    if (name == "$append") return UserPropertyOp::kAppend;
    if (name == "$unset") return UserPropertyOp::kUnset;
    return std::nullopt;
  }

  // Turns the collected fields into an event (or an error) once the object is read.
  void Finish(Builder& b, Hint hint, const SourcePosition& position, bool in_array,
              const Target& t) {
    EventBatch& batch = *t.batch;
    ParsedEvent& e = b.event;
    e.position = position;
    if (hint == Hint::kSegment) b.segment = true;
    if (hint == Hint::kIdentify) e.is_identify = true;
    if (b.segment) {
      FinishSegment(b, batch);
    } else {
      if (e.event_type == "$identify") {
        e.is_identify = true;
        e.event_type = {};
      }
      if (!b.time_text.empty()) {
        b.Fail(b.time_field, fmt::format("must be epoch milliseconds (a number), not the "
                                         "string \"{}\"", b.time_text.substr(0, 40)));
      }
    }
    DropShadowedTopLevel(b, batch);
    AddRevenueAliases(b, batch);
    e.properties_begin = static_cast<uint32_t>(b.properties_start);
    e.properties_end = static_cast<uint32_t>(batch.properties.size());
    e.user_updates_begin = static_cast<uint32_t>(b.updates_start);
    e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
    if (!b.problem) b.problem = ValidateEvent(e, batch, options.validation);
    if (b.problem) {
      batch.properties.resize(b.properties_start);
      batch.user_updates.resize(b.updates_start);
      t.errors->push_back(IngestError{position, std::string(t.source), in_array,
                                      std::move(b.problem->field),
                                      std::move(b.problem->reason)});
      t.errors->back().unsupported_type = b.unsupported_type;
      return;
    }
    batch.events.push_back(e);
  }

  void FinishSegment(Builder& b, EventBatch& batch) {
    ParsedEvent& e = b.event;
    if (!b.time_text.empty()) {
      Result<int64_t> ms = ParseIsoTime(b.time_text);
      if (!ms.ok()) {
        b.Fail(b.time_field, ms.status().message());
      } else {
        e.time_ms = *ms;
        e.has_time = true;
      }
    }
    std::string_view type = b.segment_type;
    if (type == "track") return;
    if (type == "identify") {
      e.is_identify = true;
      e.event_type = {};
      return;
    }
    if (type == "page" || type == "screen") {
      // As Segment's Amplitude destination names them.
      e.event_type = type == "page" ? "Loaded a Page" : "Loaded a Screen";
      if (!b.name.empty()) batch.properties.push_back({"name", Value::String(b.name)});
      return;
    }
    if (type == "alias") {
      // previousId and userId are the same person: link them as a device id would be.
      e.is_identify = true;
      e.event_type = {};
      if (!b.previous_id.empty()) e.device_id = b.previous_id;
      else b.Fail("previousId", "is required for alias");
      return;
    }
    if (type == "group") {
      // A user-level record: the group's traits become the user's properties under
      // "group.", and the group id "group.id", so they never overwrite the user's own
      // traits. (One group a user; a later group call replaces what it sets.)
      e.is_identify = true;
      e.event_type = {};
      for (size_t i = b.updates_start; i < batch.user_updates.size(); ++i) {
        UserPropertyUpdate& u = batch.user_updates[i];
        u.key = batch.Intern(fmt::format("group.{}", u.key));
      }
      if (b.group_id.empty()) {
        b.Fail("groupId", "is required for group");
      } else {
        AddUpdate(batch, UserPropertyOp::kSet, "group.id", Value::String(b.group_id));
      }
      return;
    }
    if (type.empty()) {
      b.Fail("type", "is required for a Segment message");
    } else {
      b.unsupported_type = true;
      b.Fail("type", fmt::format("\"{}\" is not a supported Segment message type "
                                 "(track, identify, page, screen, group, alias)",
                                 type.substr(0, 40)));
    }
  }

  // Parses one object as an event; a syntax error is returned, anything else reported.
  error_code ParseObject(od::object obj, Hint hint, bool allow_body,
                         const SourcePosition& position, bool in_array, const Target& t) {
    Builder b;
    b.properties_start = t.batch->properties.size();
    b.updates_start = t.batch->user_updates.size();
    JSON_TRY(ReadFields(obj, allow_body, b, t));
    if (b.is_body) return simdjson::SUCCESS;
    Finish(b, hint, position, in_array, t);
    return simdjson::SUCCESS;
  }

  error_code ParseArray(od::array elements, Hint hint, const Target& t) {
    uint32_t index = 0;
    const char* counted_to = t.start;
    uint64_t line = t.line;
    for (auto element_result : elements) {
      od::value element;
      JSON_TRY(std::move(element_result).get(element));
      SourcePosition position{t.file_index, t.line, index};
      if (t.line > 0) {
        // Bodies spread over lines: name the line each element starts on.
        const char* at = element.raw_json_token().data();
        line += std::count(counted_to, at, '\n');
        counted_to = at;
        position.line = line;
      }
      od::json_type type;
      JSON_TRY(element.type().get(type));
      if (type != od::json_type::object) {
        t.errors->push_back(IngestError{position, std::string(t.source), true, "",
                                        "is not a JSON object"});
      } else {
        od::object obj;
        JSON_TRY(element.get_object().get(obj));
        JSON_TRY(ParseObject(obj, hint, /*allow_body=*/false, position, true, t));
      }
      ++index;
    }
    return simdjson::SUCCESS;
  }

  void Rollback(EventBatch& batch, size_t events, size_t properties, size_t updates) {
    batch.events.resize(events);
    batch.properties.resize(properties);
    batch.user_updates.resize(updates);
  }

  error_code ParseDocument(od::document& doc, Hint array_hint, Hint object_hint,
                           const SourcePosition& position, const Target& t,
                           bool& not_json_object) {
    od::json_type type;
    JSON_TRY(doc.type().get(type));
    if (type == od::json_type::array) {
      od::array elements;
      JSON_TRY(doc.get_array().get(elements));
      JSON_TRY(ParseArray(elements, array_hint, t));
    } else if (type == od::json_type::object) {
      od::object obj;
      JSON_TRY(doc.get_object().get(obj));
      JSON_TRY(ParseObject(obj, object_hint, /*allow_body=*/true, position, false, t));
    } else {
      not_json_object = true;
      return simdjson::SUCCESS;
    }
    // current_location() succeeds only while tokens remain after the value.
    const char* trailing;
    if (doc.current_location().get(trailing) == simdjson::SUCCESS) return simdjson::TRAILING_CONTENT;
    return simdjson::SUCCESS;
  }

  void ParseLine(std::string_view line_text, size_t capacity, const Target& t) {
    EventBatch& batch = *t.batch;
    size_t events = batch.events.size(), properties = batch.properties.size(),
           updates = batch.user_updates.size(), errors = t.errors->size();
    SourcePosition position{t.file_index, t.line, 0};
    od::document doc;
    bool not_object = false;
    error_code e = parser.iterate(line_text.data(), line_text.size(), capacity).get(doc);
    if (e == simdjson::SUCCESS) {
      e = ParseDocument(doc, Hint::kAuto, Hint::kAuto, position, t, not_object);
    }
    if (e == simdjson::SUCCESS && !not_object) return;
    // A line is one unit: a syntax error anywhere in it takes back all of it.
    Rollback(batch, events, properties, updates);
    t.errors->resize(errors);
    t.errors->push_back(IngestError{
        position, std::string(t.source), false, "",
        not_object ? std::string("line is not a JSON object")
                   : fmt::format("invalid JSON: {}", simdjson::error_message(e))});
  }
};

std::string_view AdoptInput(EventBatch& batch, std::string buffer) {
  size_t size = buffer.size();
  buffer.append(simdjson::SIMDJSON_PADDING, '\0');
  return batch.Own(std::move(buffer)).substr(0, size);
}

static_assert(kInputPadding == simdjson::SIMDJSON_PADDING);

std::string_view AdoptInput(EventBatch& batch, std::unique_ptr<char[]> buffer, size_t size) {
  std::memset(buffer.get() + size, 0, kInputPadding);
  return batch.Own(std::move(buffer), size);
}

JsonEventParser::JsonEventParser(JsonParseOptions options)
    : impl_(std::make_unique<Impl>(std::move(options))) {}
JsonEventParser::~JsonEventParser() = default;

uint64_t JsonEventParser::ParseLines(std::string_view text, uint32_t file_index,
                                 uint64_t first_line, EventBatch& batch,
                                 std::vector<IngestError>& errors) {
  std::string_view source =
      file_index < batch.files.size() ? std::string_view(batch.files[file_index]) : "";
  Impl::Target t{&batch, &errors, file_index, source, first_line, text.data()};
  const char* p = text.data();
  const char* end = p + text.size();
  uint64_t newlines = 0;
  while (p < end) {
    const char* newline = static_cast<const char*>(std::memchr(p, '\n', end - p));
    if (newline == nullptr) newline = end;
    else ++newlines;
    std::string_view line(p, newline - p);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    bool blank = true;
    for (char c : line) {
      if (c != ' ' && c != '\t') {
        blank = false;
        break;
      }
    }
    if (!blank) {
      t.start = line.data();
      impl_->ParseLine(line, static_cast<size_t>(end - p) + simdjson::SIMDJSON_PADDING, t);
    }
    ++t.line;
    p = newline + 1;
  }
  return newlines;
}

Status JsonEventParser::ParseBody(std::string_view body, BodyKind kind, EventBatch& batch,
                                  std::vector<IngestError>& errors, int64_t file_index) {
  std::string_view source;
  uint32_t file = 0;
  if (file_index >= 0 && static_cast<size_t>(file_index) < batch.files.size()) {
    file = static_cast<uint32_t>(file_index);
    source = batch.files[file];
  }
  Impl::Target t{&batch, &errors, file, source, source.empty() ? 0u : 1u, body.data()};
  size_t events = batch.events.size(), properties = batch.properties.size(),
         updates = batch.user_updates.size(), error_count = errors.size();
  Hint array_hint = kind == BodyKind::kAmplitudeIdentify ? Hint::kIdentify
                          : kind == BodyKind::kSegment         ? Hint::kSegment
                                                               : Hint::kAuto;
  Hint object_hint = array_hint;
  od::document doc;
  bool not_object = false;
  error_code e = impl_->parser.iterate(body.data(), body.size(), body.size() + simdjson::SIMDJSON_PADDING).get(doc);
  if (e == simdjson::SUCCESS) {
    e = impl_->ParseDocument(doc, array_hint, object_hint, SourcePosition{file, t.line, 0}, t,
                             not_object);
  }
  if (e == simdjson::SUCCESS && !not_object) return Status::Ok();
  impl_->Rollback(batch, events, properties, updates);
  errors.resize(error_count);
  if (not_object) return InvalidArgument("request body is not a JSON object or array");
  return InvalidArgument("request body is not valid JSON: {}", simdjson::error_message(e));
}

void JsonEventParser::set_options(const JsonParseOptions& options) {
  impl_->options = options;
}

namespace {
// simdjson's parser keeps its buffers between documents: reuse one per thread.
JsonEventParser& ThreadParser(const JsonParseOptions& options) {
  thread_local JsonEventParser parser;
  parser.set_options(options);
  return parser;
}
}  // namespace

void ParseJsonLines(std::string_view text, uint32_t file_index, uint64_t first_line,
                    EventBatch& batch, std::vector<IngestError>& errors,
                    const JsonParseOptions& options) {
  JsonEventParser& parser = ThreadParser(options);
  parser.ParseLines(text, file_index, first_line, batch, errors);
}

Status ParseRequestBody(std::string body, BodyKind kind, EventBatch& batch,
                        std::vector<IngestError>& errors, const JsonParseOptions& options) {
  JsonEventParser& parser = ThreadParser(options);
  std::string_view view = AdoptInput(batch, std::move(body));
  return parser.ParseBody(view, kind, batch, errors);
}

}  // namespace sibyl
