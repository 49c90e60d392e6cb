// The event model: what one tracked event (or one identify call) carries once parsed,
// whatever wire format it came in (Amplitude, Segment, CSV). See docs/EVENTS.md.
//
// Events are parsed in batches. Strings are views into memory the batch owns (the input
// buffer or the batch's arena), so parsing a million events allocates almost nothing.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace sibyl {

// The kinds of property values we keep. Nested objects are flattened into dotted keys
// ("address.city") before they reach this model; arrays hold scalars only and are kept as
// their canonical JSON text (e.g. ["a",1,true]) so they compare and store as one value.
enum class ValueKind : uint8_t { kNull = 0, kBool = 1, kNumber = 2, kString = 3, kArray = 4 };

struct Value {
  ValueKind kind = ValueKind::kNull;
  bool boolean = false;
  double number = 0;
  std::string_view text;  // kString: the string; kArray: canonical JSON of the array

  static Value Null() { return {}; }
  static Value Bool(bool b) { return {ValueKind::kBool, b, 0, {}}; }
  static Value Number(double d) { return {ValueKind::kNumber, false, d, {}}; }
  static Value String(std::string_view s) { return {ValueKind::kString, false, 0, s}; }
  static Value Array(std::string_view json) { return {ValueKind::kArray, false, 0, json}; }
};

struct Property {
  std::string_view key;
  Value value;
};

// Amplitude identify operations on user properties. `user_properties` on a plain event is
// a sequence of kSet.
enum class UserPropertyOp : uint8_t {
  kSet = 0,
  kSetOnce = 1,  // only if the property has never been set for this user
  kAdd = 2,      // numeric increment (a missing or non-numeric value counts as 0)
  kAppend = 3,   // append to an array (a scalar becomes a one-element array)
  kUnset = 4,    // remove the property
};

struct UserPropertyUpdate {
  UserPropertyOp op = UserPropertyOp::kSet;
  std::string_view key;
  Value value;  // ignored for kUnset
};

// Where an event came from, for error messages: "events.ndjson:17" or "batch index 3".
struct SourcePosition {
  uint32_t file = 0;   // index into EventBatch::files
  uint64_t line = 0;   // 1-based line in that file; 0 when not line-oriented
  uint32_t index = 0;  // 0-based index of the event within its request or JSON array
};

// One parsed event. An identify call (no event type, only user property updates) has
// `is_identify` set and an empty `event_type`; it changes user properties and links ids
// but is not counted as an event.
struct ParsedEvent {
  std::string_view user_id;
  std::string_view device_id;
  std::string_view event_type;
  std::string_view insert_id;
  int64_t time_ms = 0;
  bool has_time = false;     // false: the receiver fills in the time it got the event
  int64_t session_id = -1;   // Amplitude's convention: -1 is "no session"
  bool is_identify = false;
  // Half-open ranges into EventBatch::properties and EventBatch::user_updates.
  uint32_t properties_begin = 0, properties_end = 0;
  uint32_t user_updates_begin = 0, user_updates_end = 0;
  SourcePosition position;
};

// A batch of parsed events and the memory their views point into.
class EventBatch {
 public:
  std::vector<ParsedEvent> events;
  std::vector<Property> properties;
  std::vector<UserPropertyUpdate> user_updates;
  std::vector<std::string> files;  // source names, for SourcePosition::file

  // Dictionary ids a store resolved ahead, on the thread that parsed the batch (see
  // EventStore::Prepare), so its single writer need not hash and probe every string.
  // Parallel to events (event types), properties (keys, string values) and user_updates;
  // empty, or UINT32_MAX for a string not resolved (the writer looks those up itself).
  struct ResolvedIds {
    std::vector<uint32_t> event_types, property_keys, property_values, update_keys,
        update_values;
    std::vector<uint64_t> insert_id_hashes;  // parallel to events; 0 for no insert_id
    uint64_t store = 0;  // serial of the store whose dictionaries the ids belong to
  };
  ResolvedIds resolved;

  // Copies `s` into memory owned by the batch and returns a view of the copy. Views
  // stay valid as long as the batch lives (storage never moves).
  std::string_view Intern(std::string_view s);

  // Keeps `buffer` alive for as long as the batch; parsers put the input here and point
  // views into it.
  std::string_view Own(std::string buffer);
  // The same for a raw buffer of at least `size` bytes (big input chunks are read into
  // one of these: a std::string would be zero-filled first, a tenth of a chunk's cost).
  std::string_view Own(std::unique_ptr<char[]> buffer, size_t size);

  std::span<const Property> PropertiesOf(const ParsedEvent& e) const {
    return {properties.data() + e.properties_begin, e.properties_end - e.properties_begin};
  }
  std::span<const UserPropertyUpdate> UserUpdatesOf(const ParsedEvent& e) const {
    return {user_updates.data() + e.user_updates_begin,
            e.user_updates_end - e.user_updates_begin};
  }

  // "file.ndjson:12", "batch index 4" or "file.json: index 4".
  std::string Describe(const SourcePosition& position) const;

  // Moves every event of `other` to the end of this batch (other stays valid but empty).
  void Append(EventBatch&& other);

  // Empties the batch (also `resolved`); its vectors keep their memory, for reuse.
  void Clear();

 private:
  // Heap-held so that moving a batch, or appending one to another, never moves the bytes
  // that views point into (not even short strings kept inline by std::string).
  std::vector<std::unique_ptr<std::string>> owned_;
  std::vector<std::unique_ptr<char[]>> owned_raw_;
  std::string* arena_ = nullptr;  // the block Intern appends to
};

}  // namespace sibyl
