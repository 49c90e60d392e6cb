// Internal to ingest/: the top-level keys of an Amplitude event or Segment message, and
// the lookup json_parser.cc runs for every key of every event (kept inline: it is the
// parse threads' hottest code).
#pragma once

#include <array>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace sibyl::json_keys {

// The top-level keys we understand. Amplitude and Segment use disjoint names, so one
// table serves both and the message's flavour is decided once all keys are seen.
enum class Key : uint8_t {
  kUnknown,
  kUserId,       // user_id, userId
  kDeviceId,     // device_id, anonymousId
  kEventType,    // event_type, event
  kTime,         // time (Amplitude: epoch ms number)
  kTimestamp,    // timestamp (Segment: ISO-8601 string)
  kInsertId,     // insert_id, messageId, uuid
  kSessionId,
  kEventProperties,  // event_properties, properties
  kUserProperties,   // user_properties (may hold $set/$add/... operations)
  kTraits,           // Segment traits: plain $set
  kTopLevelEventProperty,  // revenue, price, ...: kept as event properties
  kTopLevelUserProperty,   // platform, country, ...: kept as user property $set
  kType,        // Segment message type
  kName,        // Segment page/screen name
  kPreviousId,  // Segment alias
  kGroupId,     // Segment group
  kEvents,      // a body: {"events":[..]}
  kBatch,       // a body: {"batch":[..]}
};

struct KeyEntry {
  std::string_view name;
  Key key;
};

constexpr std::array kKeys = {
    KeyEntry{"user_id", Key::kUserId},
    KeyEntry{"userId", Key::kUserId},
    KeyEntry{"device_id", Key::kDeviceId},
    KeyEntry{"anonymousId", Key::kDeviceId},
    KeyEntry{"event_type", Key::kEventType},
    KeyEntry{"event", Key::kEventType},
    KeyEntry{"time", Key::kTime},
    KeyEntry{"timestamp", Key::kTimestamp},
    KeyEntry{"insert_id", Key::kInsertId},
    KeyEntry{"messageId", Key::kInsertId},
    KeyEntry{"uuid", Key::kInsertId},  // amplitude-js's upload: the event's own id, kept on resends
    KeyEntry{"session_id", Key::kSessionId},
    KeyEntry{"event_properties", Key::kEventProperties},
    KeyEntry{"properties", Key::kEventProperties},
    KeyEntry{"user_properties", Key::kUserProperties},
    KeyEntry{"traits", Key::kTraits},
    KeyEntry{"revenue", Key::kTopLevelEventProperty},
    KeyEntry{"price", Key::kTopLevelEventProperty},
    KeyEntry{"quantity", Key::kTopLevelEventProperty},
    KeyEntry{"productId", Key::kTopLevelEventProperty},
    KeyEntry{"revenueType", Key::kTopLevelEventProperty},
    KeyEntry{"event_id", Key::kTopLevelEventProperty},
    KeyEntry{"location_lat", Key::kTopLevelEventProperty},
    KeyEntry{"location_lng", Key::kTopLevelEventProperty},
    KeyEntry{"platform", Key::kTopLevelUserProperty},
    KeyEntry{"os_name", Key::kTopLevelUserProperty},
    KeyEntry{"os_version", Key::kTopLevelUserProperty},
    KeyEntry{"device_brand", Key::kTopLevelUserProperty},
    KeyEntry{"device_manufacturer", Key::kTopLevelUserProperty},
    KeyEntry{"device_model", Key::kTopLevelUserProperty},
    KeyEntry{"carrier", Key::kTopLevelUserProperty},
    KeyEntry{"country", Key::kTopLevelUserProperty},
    KeyEntry{"region", Key::kTopLevelUserProperty},
    KeyEntry{"city", Key::kTopLevelUserProperty},
    KeyEntry{"dma", Key::kTopLevelUserProperty},
    KeyEntry{"language", Key::kTopLevelUserProperty},
    KeyEntry{"app_version", Key::kTopLevelUserProperty},
    KeyEntry{"version_name", Key::kTopLevelUserProperty},
    KeyEntry{"type", Key::kType},
    KeyEntry{"name", Key::kName},
    KeyEntry{"previousId", Key::kPreviousId},
    KeyEntry{"groupId", Key::kGroupId},
    KeyEntry{"events", Key::kEvents},
    KeyEntry{"batch", Key::kBatch},
};

// Inline comparison of short byte strings: a call to memcmp per key of every event was
// the parse threads' hottest function.
inline bool SameBytes(const char* a, const char* b, size_t n) {
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t x, y;
    std::memcpy(&x, a + i, 8);
    std::memcpy(&y, b + i, 8);
    if (x != y) return false;
  }
  for (; i < n; ++i)
    if (a[i] != b[i]) return false;
  return true;
}

// Keys bucketed by length, so a lookup compares against two or three candidates.
struct KeyTable {
  static constexpr size_t kMaxLength = 24;
  std::array<std::vector<KeyEntry>, kMaxLength> by_length;
  KeyTable() {
    for (const KeyEntry& e : kKeys) by_length[e.name.size()].push_back(e);
  }
  Key Find(std::string_view name) const {
    if (name.size() >= kMaxLength) return Key::kUnknown;
    for (const KeyEntry& e : by_length[name.size()]) {
      if (SameBytes(e.name.data(), name.data(), name.size())) return e.key;
    }
    return Key::kUnknown;
  }
};

// Built before main (no function-local static: its guard was checked for every key of
// every event). A namespace-scope const has internal linkage: each file that includes
// this header has its own table (only json_parser.cc does).
const KeyTable kKeyTable;
inline const KeyTable& Keys() { return kKeyTable; }

}  // namespace sibyl::json_keys
