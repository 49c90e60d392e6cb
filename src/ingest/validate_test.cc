// One test per validation rule: each names the field and the reason.
#include "ingest/validate.h"

#include <gtest/gtest.h>

#include "ingest/json_parser.h"

namespace sibyl {
namespace {

// Parses one Amplitude line and returns its single error ("" if it was accepted).
std::string ErrorOf(const std::string& line, JsonParseOptions options = {}) {
  EventBatch batch;
  batch.files.push_back("t.ndjson");
  std::vector<IngestError> errors;
  JsonEventParser parser(options);
  parser.ParseLines(AdoptInput(batch, line), 0, 1, batch, errors);
  EXPECT_EQ(batch.events.size() + errors.size(), 1u) << line;
  return errors.empty() ? "" : errors[0].ToString();
}

TEST(Validate, ValidEventPasses) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":1700000000000})"), "");
}

TEST(Validate, EventTypeRequired) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1"})"), R"(t.ndjson:1: field "event_type": is required)");
}

TEST(Validate, IdentifyNeedsNoEventType) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"$identify","user_properties":{"$set":{"a":1}}})"), "");
}

TEST(Validate, UserIdOrDeviceIdRequired) {
  EXPECT_EQ(ErrorOf(R"({"event_type":"A"})"),
            R"(t.ndjson:1: field "user_id": an event needs a user_id or a device_id)");
}

TEST(Validate, DeviceIdAloneIsEnough) {
  EXPECT_EQ(ErrorOf(R"({"device_id":"device-1","event_type":"A"})"), "");
}

TEST(Validate, IdAtLeastFiveCharacters) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"abcd","event_type":"A"})"),
            R"(t.ndjson:1: field "user_id": "abcd" is shorter than 5 characters)");
  EXPECT_EQ(ErrorOf(R"({"device_id":"abc","event_type":"A"})"),
            R"(t.ndjson:1: field "device_id": "abc" is shorter than 5 characters)");
}

TEST(Validate, MinIdLengthIsConfigurable) {
  JsonParseOptions options;
  options.validation.min_id_length = 3;
  EXPECT_EQ(ErrorOf(R"({"user_id":"abcd","event_type":"A"})", options), "");
}

TEST(Validate, BlockedIdsCaseInsensitive) {
  for (std::string id : {"null", "NULL", "None", "nil", "undefined", "Anonymous", "-1", "0",
                         "00000000-0000-0000-0000-000000000000", "lmy47d", "unknown", "EMPTY",
                         "(null)", "default", "guest"}) {
    EXPECT_TRUE(IsBlockedId(id)) << id;
    EXPECT_EQ(ErrorOf(R"({"user_id":")" + id + R"(","event_type":"A"})"),
              "t.ndjson:1: field \"user_id\": \"" + id + "\" is a blocked id value");
  }
  EXPECT_EQ(ErrorOf(R"({"device_id":"00000000-0000-0000-0000-000000000000","event_type":"A"})"),
            R"(t.ndjson:1: field "device_id": "00000000-0000-0000-0000-000000000000" is a blocked id value)");
  EXPECT_FALSE(IsBlockedId("nullable"));
}

TEST(Validate, IdMustBeString) {
  EXPECT_EQ(ErrorOf(R"({"user_id":12345,"event_type":"A"})"),
            R"(t.ndjson:1: field "user_id": must be a string)");
}

TEST(Validate, TimeInSecondsRejected) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":1700000000})"),
            R"(t.ndjson:1: field "time": 1700000000 looks like epoch seconds; time must be epoch milliseconds)");
}

TEST(Validate, TimeInMicrosecondsRejected) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":1700000000000000})"),
            R"(t.ndjson:1: field "time": 1700000000000000 looks like epoch microseconds (or nanoseconds); time must be epoch milliseconds)");
}

TEST(Validate, TimeBoundsAreInclusiveAndNamed) {
  JsonParseOptions o;
  o.validation.min_time_ms = kServerMinTimeMs;  // 2000-01-01
  o.validation.max_time_ms = 1'717'243'200'000 + kDefaultFutureToleranceMs;  // 2024-06-02T12:00Z
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":946684800000})", o), "");
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":1717329600000})", o), "");
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":946684799999})", o),
            R"(t.ndjson:1: field "time": 946684799999 (1999-12-31T23:59:59.999Z) is before 2000-01-01T00:00:00.000Z, the earliest time accepted)");
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":1924992000000})", o),
            R"(t.ndjson:1: field "time": 1924992000000 (2031-01-01T00:00:00.000Z) is in the future: after 2024-06-02T12:00:00.000Z, the latest time accepted (the receiver's clock plus its tolerance))");
  // Segment timestamps too.
  EXPECT_NE(ErrorOf(R"({"type":"track","userId":"user-1","event":"A","timestamp":"2031-01-01T00:00:00Z"})", o)
                .find("is in the future"),
            std::string::npos);
  // Without bounds (the library's default) 1980 and 2031 pass.
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":315532800000})"), "");
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":1924992000000})"), "");
}

TEST(Validate, NegativeTimeRejected) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":-5})"),
            R"(t.ndjson:1: field "time": -5 is negative)");
}

TEST(Validate, TimeAsStringRejectedForAmplitude) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":"2024-01-01T00:00:00Z"})"),
            R"(t.ndjson:1: field "time": must be epoch milliseconds (a number), not the string "2024-01-01T00:00:00Z")");
}

TEST(Validate, FractionalTimeRejected) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","time":1700000000000.5})"),
            R"(t.ndjson:1: field "time": 1700000000000.5 is not a whole number of milliseconds)");
}

TEST(Validate, SessionIdMustBeInteger) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","session_id":"abc"})"),
            R"(t.ndjson:1: field "session_id": must be an integer)");
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","session_id":1.5})"),
            R"(t.ndjson:1: field "session_id": must be an integer)");
}

TEST(Validate, StringsAtMost1024Characters) {
  std::string long_text(1025, 'x');
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":")" + long_text + R"("})"),
            R"(t.ndjson:1: field "event_type": is 1025 characters long; at most 1024 are allowed)");
  EXPECT_EQ(ErrorOf(R"({"user_id":")" + long_text + R"(","event_type":"A"})"),
            R"(t.ndjson:1: field "user_id": is 1025 characters long; at most 1024 are allowed)");
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","event_properties":{"k":")" + long_text + R"("}})"),
            R"(t.ndjson:1: field "event_properties.k": is 1025 characters long; at most 1024 are allowed)");
  EXPECT_NE(ErrorOf(R"({"user_id":"user-1","event_type":"A","user_properties":{")" + long_text + R"(":1}})")
                .find("property name"),
            std::string::npos);
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":")" + std::string(1024, 'x') + R"("})"), "");
}

TEST(Validate, PropertyKeysNonEmpty) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","event_properties":{"":1}})"),
            R"(t.ndjson:1: field "event_properties": has an empty property name)");
}

TEST(Validate, PropertiesMustBeObjects) {
  EXPECT_EQ(ErrorOf(R"({"user_id":"user-1","event_type":"A","event_properties":[1]})"),
            R"(t.ndjson:1: field "event_properties": must be an object)");
}

}  // namespace
}  // namespace sibyl
