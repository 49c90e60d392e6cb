#include "ingest/json_parser.h"
#include "ingest/json_values.h"

#include <gtest/gtest.h>

namespace sibyl {
namespace {

struct Parsed {
  EventBatch batch;
  std::vector<IngestError> errors;
};

Parsed ParseLines(std::string text, std::string file = "events.ndjson", uint64_t first_line = 1) {
  Parsed p;
  p.batch.files.push_back(file);
  std::string_view view = AdoptInput(p.batch, std::move(text));
  JsonEventParser parser;
  parser.ParseLines(view, 0, first_line, p.batch, p.errors);
  return p;
}

std::string Errors(const Parsed& p) {
  std::string out;
  for (const auto& e : p.errors) out += e.ToString() + "\n";
  return out;
}

const Property* FindProperty(const EventBatch& b, const ParsedEvent& e, std::string_view key) {
  for (const Property& p : b.PropertiesOf(e)) {
    if (p.key == key) return &p;
  }
  return nullptr;
}

const UserPropertyUpdate* FindUpdate(const EventBatch& b, const ParsedEvent& e,
                                     std::string_view key) {
  for (const UserPropertyUpdate& u : b.UserUpdatesOf(e)) {
    if (u.key == key) return &u;
  }
  return nullptr;
}

TEST(JsonParser, AmplitudeEvent) {
  Parsed p = ParseLines(
      R"({"user_id":"user-1","device_id":"device-1","event_type":"Purchase","time":1700000000123,)"
      R"("insert_id":"ins-1","session_id":1700000000000,"event_properties":{"price":9.5,)"
      R"("plan":"pro","gift":true,"nothing":null},"user_properties":{"age":35},)"
      R"("revenue":19.0,"productId":"sku-1","platform":"iOS","country":"France"})");
  ASSERT_EQ(p.errors.size(), 0u) << Errors(p);
  ASSERT_EQ(p.batch.events.size(), 1u);
  const ParsedEvent& e = p.batch.events[0];
  EXPECT_EQ(e.user_id, "user-1");
  EXPECT_EQ(e.device_id, "device-1");
  EXPECT_EQ(e.event_type, "Purchase");
  EXPECT_EQ(e.insert_id, "ins-1");
  EXPECT_TRUE(e.has_time);
  EXPECT_EQ(e.time_ms, 1700000000123);
  EXPECT_EQ(e.session_id, 1700000000000);
  EXPECT_FALSE(e.is_identify);
  EXPECT_EQ(e.position.line, 1u);
  ASSERT_NE(FindProperty(p.batch, e, "price"), nullptr);
  EXPECT_EQ(FindProperty(p.batch, e, "price")->value.number, 9.5);
  EXPECT_EQ(FindProperty(p.batch, e, "plan")->value.text, "pro");
  EXPECT_TRUE(FindProperty(p.batch, e, "gift")->value.boolean);
  EXPECT_EQ(FindProperty(p.batch, e, "nothing"), nullptr) << "nulls are dropped";
  EXPECT_EQ(FindProperty(p.batch, e, "revenue")->value.number, 19.0);
  EXPECT_EQ(FindProperty(p.batch, e, "productId")->value.text, "sku-1");
  EXPECT_EQ(p.batch.PropertiesOf(e).size(), 5u);
  const UserPropertyUpdate* age = FindUpdate(p.batch, e, "age");
  ASSERT_NE(age, nullptr);
  EXPECT_EQ(age->op, UserPropertyOp::kSet);
  EXPECT_EQ(age->value.number, 35);
  EXPECT_EQ(FindUpdate(p.batch, e, "platform")->value.text, "iOS");
  EXPECT_EQ(FindUpdate(p.batch, e, "country")->value.text, "France");
}

size_t CountProperty(const EventBatch& b, const ParsedEvent& e, std::string_view key) {
  size_t n = 0;
  for (const Property& p : b.PropertiesOf(e)) n += p.key == key;
  return n;
}

// Regression: a Purchase with both event_properties.price and top-level price stored price
// twice, so sum("price") counted it twice. The event property wins, in either order.
TEST(JsonParser, EventPropertyWinsOverTopLevelField) {
  Parsed p = ParseLines(
      R"({"user_id":"user-1","event_type":"Purchase","price":5,"quantity":3,"revenue":15,)"
      R"("event_properties":{"price":9.5,"quantity":2,"category":"shoes"}})" "\n"
      R"({"user_id":"user-1","event_type":"Purchase","event_properties":{"price":9.5},)"
      R"("price":5,"productId":"sku-1"})");
  ASSERT_EQ(p.errors.size(), 0u) << Errors(p);
  ASSERT_EQ(p.batch.events.size(), 2u);
  const ParsedEvent& first = p.batch.events[0];
  EXPECT_EQ(CountProperty(p.batch, first, "price"), 1u);
  EXPECT_EQ(FindProperty(p.batch, first, "price")->value.number, 9.5);
  EXPECT_EQ(CountProperty(p.batch, first, "quantity"), 1u);
  EXPECT_EQ(FindProperty(p.batch, first, "quantity")->value.number, 2);
  // Only at the top level: kept.
  EXPECT_EQ(FindProperty(p.batch, first, "revenue")->value.number, 15);
  EXPECT_EQ(FindProperty(p.batch, first, "category")->value.text, "shoes");
  EXPECT_EQ(p.batch.PropertiesOf(first).size(), 4u);
  const ParsedEvent& second = p.batch.events[1];
  EXPECT_EQ(CountProperty(p.batch, second, "price"), 1u);
  EXPECT_EQ(FindProperty(p.batch, second, "price")->value.number, 9.5);
  EXPECT_EQ(FindProperty(p.batch, second, "productId")->value.text, "sku-1");
  EXPECT_EQ(p.batch.PropertiesOf(second).size(), 2u);
}

// Amplitude's SDK Revenue object arrives as $price / $quantity / $productId (and maybe
// $revenue): the plain names a revenue prediction sums are added, revenue = price x
// quantity when $revenue is absent, and a plain key the event has already is kept.
TEST(JsonParser, SdkRevenuePropertiesAlsoStoredUnderPlainNames) {
  Parsed p = ParseLines(
      R"({"user_id":"user-1","event_type":"revenue_amount","event_properties":{"$price":9.5,)"
      R"("$quantity":2,"$productId":"sku-1","$revenueType":"sale"}})" "\n"
      R"({"user_id":"user-1","event_type":"revenue_amount","event_properties":{"$price":3,)"
      R"("$revenue":7,"price":4}})" "\n"
      R"({"user_id":"user-1","event_type":"Purchase","event_properties":{"$mode":"x"}})");
  ASSERT_EQ(p.errors.size(), 0u) << Errors(p);
  ASSERT_EQ(p.batch.events.size(), 3u);
  const ParsedEvent& first = p.batch.events[0];
  EXPECT_EQ(FindProperty(p.batch, first, "price")->value.number, 9.5);
  EXPECT_EQ(FindProperty(p.batch, first, "quantity")->value.number, 2);
  EXPECT_EQ(FindProperty(p.batch, first, "productId")->value.text, "sku-1");
  EXPECT_EQ(FindProperty(p.batch, first, "revenueType")->value.text, "sale");
  EXPECT_EQ(FindProperty(p.batch, first, "revenue")->value.number, 19);
  EXPECT_EQ(FindProperty(p.batch, first, "$price")->value.number, 9.5) << "the SDK's own keys stay";
  const ParsedEvent& second = p.batch.events[1];
  EXPECT_EQ(CountProperty(p.batch, second, "price"), 1u);
  EXPECT_EQ(FindProperty(p.batch, second, "price")->value.number, 4) << "the event's own price wins";
  EXPECT_EQ(FindProperty(p.batch, second, "revenue")->value.number, 7) << "$revenue, not price x quantity";
  const ParsedEvent& third = p.batch.events[2];
  EXPECT_EQ(p.batch.PropertiesOf(third).size(), 1u) << "other $ keys add nothing";
}

TEST(JsonParser, TopLevelFieldsAloneAreKeptOnce) {
  Parsed p = ParseLines(
      R"({"user_id":"user-1","event_type":"Purchase","price":5,"quantity":3,"price":6,)"
      R"("revenueType":"sale","event_properties":{"category":"shoes"}})");
  ASSERT_EQ(p.errors.size(), 0u) << Errors(p);
  const ParsedEvent& e = p.batch.events.at(0);
  EXPECT_EQ(CountProperty(p.batch, e, "price"), 1u);
  EXPECT_EQ(FindProperty(p.batch, e, "price")->value.number, 6) << "a repeated key: the last value";
  EXPECT_EQ(FindProperty(p.batch, e, "quantity")->value.number, 3);
  EXPECT_EQ(FindProperty(p.batch, e, "revenueType")->value.text, "sale");
  EXPECT_EQ(p.batch.PropertiesOf(e).size(), 4u);
}

TEST(JsonParser, MissingTimeMeansReceiverTime) {
  Parsed p = ParseLines(R"({"user_id":"user-1","event_type":"Open"})");
  ASSERT_EQ(p.batch.events.size(), 1u);
  EXPECT_FALSE(p.batch.events[0].has_time);
}

TEST(JsonParser, NestedObjectsFlattenAndArraysAreCanonical) {
  Parsed p = ParseLines(
      R"({"user_id":"user-1","event_type":"E","event_properties":{"address":{"city":"Paris",)"
      R"("geo":{"lat":1.5}},"tags":[ "a", 1.0, true, null, {"k" : "v"}, "\u0041" ]}})");
  ASSERT_EQ(p.errors.size(), 0u) << Errors(p);
  const ParsedEvent& e = p.batch.events[0];
  EXPECT_EQ(FindProperty(p.batch, e, "address.city")->value.text, "Paris");
  EXPECT_EQ(FindProperty(p.batch, e, "address.geo.lat")->value.number, 1.5);
  const Property* tags = FindProperty(p.batch, e, "tags");
  ASSERT_NE(tags, nullptr);
  EXPECT_EQ(tags->value.kind, ValueKind::kArray);
  EXPECT_EQ(tags->value.text, R"(["a",1,true,null,{"k":"v"},"A"])");
}

TEST(JsonParser, TooDeepNestingIsRejected) {
  std::string deep = "1";
  for (int i = 0; i < kMaxPropertyNesting + 1; ++i) deep = "{\"k\":" + deep + "}";
  Parsed p = ParseLines(R"({"user_id":"user-1","event_type":"E","event_properties":)" + deep + "}");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_NE(p.errors[0].reason.find("8 levels"), std::string::npos) << Errors(p);
}

TEST(JsonParser, ArraysNestedTooDeepAreRejectedNotACrash) {
  // Thousands of "[" (a fuzzer's find): canonicalising them must not recurse without end.
  const std::string deep = std::string(5000, '[') + std::string(5000, ']');
  Parsed p = ParseLines(R"({"user_id":"user-1","event_type":"E","event_properties":{"x":)" + deep + "}}\n" +
                        R"({"user_id":"user-2","event_type":"E","event_properties":{"x":[[1,[2]]]}})");
  ASSERT_EQ(p.errors.size(), 1u) << Errors(p);
  EXPECT_EQ(p.errors[0].position.line, 1u);
  EXPECT_NE(p.errors[0].reason.find("deep"), std::string::npos) << Errors(p);
  ASSERT_EQ(p.batch.events.size(), 1u);  // the next line still parses
  const Property* x = FindProperty(p.batch, p.batch.events[0], "x");
  ASSERT_NE(x, nullptr);
  EXPECT_EQ(x->value.text, "[[1,[2]]]");
  // As deep as allowed is kept.
  const std::string ok = std::string(kMaxArrayNesting, '[') + std::string(kMaxArrayNesting, ']');
  Parsed q = ParseLines(R"({"user_id":"user-1","event_type":"E","event_properties":{"x":)" + ok + "}}");
  EXPECT_TRUE(q.errors.empty()) << Errors(q);
}

TEST(JsonParser, EscapedStringsAreUnescaped) {
  Parsed p = ParseLines(R"({"user_id":"us\"er-1","event_type":"Caf\u00e9","event_properties":{"k\ney":"a\\b"}})");
  ASSERT_EQ(p.errors.size(), 0u) << Errors(p);
  const ParsedEvent& e = p.batch.events[0];
  EXPECT_EQ(e.user_id, "us\"er-1");
  EXPECT_EQ(e.event_type, "Caf\xc3\xa9");
  EXPECT_EQ(FindProperty(p.batch, e, "k\ney")->value.text, "a\\b");
}

TEST(JsonParser, IdentifyOperations) {
  Parsed p = ParseLines(
      R"({"user_id":"user-1","event_type":"$identify","user_properties":{"$set":{"plan":"pro"},)"
      R"("$setOnce":{"first":"x"},"$add":{"visits":2},"$append":{"tags":["a"]},"$unset":{"old":"-"}}})");
  ASSERT_EQ(p.errors.size(), 0u) << Errors(p);
  const ParsedEvent& e = p.batch.events[0];
  EXPECT_TRUE(e.is_identify);
  EXPECT_TRUE(e.event_type.empty());
  EXPECT_EQ(FindUpdate(p.batch, e, "plan")->op, UserPropertyOp::kSet);
  EXPECT_EQ(FindUpdate(p.batch, e, "first")->op, UserPropertyOp::kSetOnce);
  EXPECT_EQ(FindUpdate(p.batch, e, "visits")->op, UserPropertyOp::kAdd);
  EXPECT_EQ(FindUpdate(p.batch, e, "visits")->value.number, 2);
  EXPECT_EQ(FindUpdate(p.batch, e, "tags")->op, UserPropertyOp::kAppend);
  EXPECT_EQ(FindUpdate(p.batch, e, "tags")->value.text, R"(["a"])");
  EXPECT_EQ(FindUpdate(p.batch, e, "old")->op, UserPropertyOp::kUnset);
}

TEST(JsonParser, UnsupportedOperationAndBadAdd) {
  Parsed p = ParseLines(
      R"({"user_id":"user-1","event_type":"$identify","user_properties":{"$prepend":{"a":1}}})" "\n"
      R"({"user_id":"user-1","event_type":"$identify","user_properties":{"$add":{"a":"x"}}})");
  ASSERT_EQ(p.errors.size(), 2u);
  EXPECT_EQ(p.errors[0].field, "user_properties.$prepend");
  EXPECT_EQ(p.errors[1].field, "user_properties.$add.a");
  EXPECT_TRUE(p.batch.events.empty());
  EXPECT_TRUE(p.batch.user_updates.empty()) << "a rejected event leaves nothing behind";
}

TEST(JsonParser, LineNumbersAndBlankLines) {
  Parsed p = ParseLines(
      "{\"user_id\":\"user-1\",\"event_type\":\"A\"}\n\n"
      "{\"user_id\":\"null\",\"event_type\":\"B\"}\r\n"
      "not json\n"
      "{\"user_id\":\"user-1\",\"event_type\":\"C\"}",
      "events.ndjson", 10);
  ASSERT_EQ(p.batch.events.size(), 2u);
  EXPECT_EQ(p.batch.events[0].position.line, 10u);
  EXPECT_EQ(p.batch.events[1].position.line, 14u);
  ASSERT_EQ(p.errors.size(), 2u);
  EXPECT_EQ(p.errors[0].ToString(), R"(events.ndjson:12: field "user_id": "null" is a blocked id value)");
  EXPECT_EQ(p.errors[1].position.line, 13u);
  EXPECT_EQ(p.errors[1].reason, "line is not a JSON object");
}

TEST(JsonParser, MalformedJsonVariants) {
  for (std::string bad : {R"({"user_id":"user-1","event_type":"A")", R"({"user_id":"user-1",})",
                          R"({"user_id":"user-1","event_type":"A"} x)", R"([1,2)", R"("just a string")",
                          R"(42)", R"({"user_id":"user-1","event_type":"A","event_properties":{"a":[1,}})"}) {
    Parsed p = ParseLines(bad);
    EXPECT_EQ(p.batch.events.size(), 0u) << bad;
    EXPECT_EQ(p.errors.size(), 1u) << bad;
  }
}

TEST(JsonParser, BodyOnOneLine) {
  Parsed p = ParseLines(
      R"({"api_key":"k","events":[{"user_id":"user-1","event_type":"A"},{"user_id":"x","event_type":"B"}]})");
  ASSERT_EQ(p.batch.events.size(), 1u);
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].ToString(),
            R"(events.ndjson:1: batch index 1: field "user_id": "x" is shorter than 5 characters)");
}

TEST(JsonParser, SegmentMessages) {
  Parsed p = ParseLines(
      R"({"type":"track","userId":"user-1","anonymousId":"anon-1","event":"Signed Up","properties":{"plan":"pro"},"timestamp":"2024-03-01T12:00:00.250Z","messageId":"m-1"})" "\n"
      R"({"type":"identify","userId":"user-1","traits":{"email":"a@b.c","address":{"city":"Oslo"}}})" "\n"
      R"({"type":"page","anonymousId":"anon-1","name":"Home","properties":{"path":"/"}})" "\n"
      R"({"type":"screen","userId":"user-1","name":"Cart"})" "\n"
      R"({"type":"alias","userId":"user-1","previousId":"anon-1"})" "\n"
      R"({"type":"group","userId":"user-1","groupId":"g1","traits":{"name":"Acme","plan":"pro"}})" "\n"
      R"({"type":"futuretype","userId":"user-1"})");
  ASSERT_EQ(p.batch.events.size(), 6u) << Errors(p);
  const auto& track = p.batch.events[0];
  EXPECT_EQ(track.event_type, "Signed Up");
  EXPECT_EQ(track.user_id, "user-1");
  EXPECT_EQ(track.device_id, "anon-1");
  EXPECT_EQ(track.insert_id, "m-1");
  EXPECT_EQ(track.time_ms, 1709294400250);
  EXPECT_EQ(FindProperty(p.batch, track, "plan")->value.text, "pro");
  const auto& identify = p.batch.events[1];
  EXPECT_TRUE(identify.is_identify);
  EXPECT_EQ(FindUpdate(p.batch, identify, "address.city")->value.text, "Oslo");
  const auto& page = p.batch.events[2];
  EXPECT_EQ(page.event_type, "Loaded a Page");
  EXPECT_EQ(FindProperty(p.batch, page, "name")->value.text, "Home");
  EXPECT_EQ(FindProperty(p.batch, page, "path")->value.text, "/");
  EXPECT_EQ(p.batch.events[3].event_type, "Loaded a Screen");
  const auto& alias = p.batch.events[4];
  EXPECT_TRUE(alias.is_identify);
  EXPECT_EQ(alias.device_id, "anon-1");
  // group: a user-level record, traits under "group." so the user's own stay.
  const auto& group = p.batch.events[5];
  EXPECT_TRUE(group.is_identify);
  EXPECT_EQ(group.user_id, "user-1");
  EXPECT_EQ(FindUpdate(p.batch, group, "group.id")->value.text, "g1");
  EXPECT_EQ(FindUpdate(p.batch, group, "group.name")->value.text, "Acme");
  EXPECT_EQ(FindUpdate(p.batch, group, "group.plan")->value.text, "pro");
  EXPECT_EQ(FindUpdate(p.batch, group, "name"), nullptr);
  // An unknown type is an error marked so receivers can skip it.
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "type");
  EXPECT_EQ(p.errors[0].position.line, 7u);
  EXPECT_TRUE(p.errors[0].unsupported_type);
}

TEST(JsonParser, SegmentGroupNeedsGroupIdAndMissingTypeIsInvalid) {
  Parsed p = ParseLines(R"({"type":"group","userId":"user-1","traits":{"a":1}})" "\n"
                        R"({"type":"","userId":"user-1","event":"A"})");
  ASSERT_EQ(p.errors.size(), 2u) << Errors(p);
  EXPECT_EQ(p.errors[0].field, "groupId");
  EXPECT_FALSE(p.errors[0].unsupported_type);
  EXPECT_EQ(p.errors[1].field, "type");
  EXPECT_FALSE(p.errors[1].unsupported_type) << "a missing type is an invalid message, not an unknown one";
}

TEST(JsonParser, SegmentBadTimestamp) {
  Parsed p = ParseLines(R"({"type":"track","userId":"user-1","event":"A","timestamp":"yesterday"})");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].field, "timestamp");
}

TEST(RequestBody, AmplitudeV2WithBatchIndices) {
  EventBatch batch;
  std::vector<IngestError> errors;
  ASSERT_TRUE(ParseRequestBody(R"({"api_key":"k","events":[
      {"user_id":"user-1","event_type":"A","time":1700000000000},
      {"user_id":"user-2","event_type":"B","time":1700000000},
      {"device_id":"device-3","event_type":"C"},
      {"user_id":"user-4"}]})", BodyKind::kAmplitudeEvents, batch, errors).ok());
  ASSERT_EQ(batch.events.size(), 2u);
  EXPECT_EQ(batch.events[1].position.index, 2u);
  ASSERT_EQ(errors.size(), 2u);
  EXPECT_EQ(errors[0].ToString().substr(0, 30), R"(batch index 1: field "time": 1)");
  EXPECT_EQ(errors[1].ToString(), R"(batch index 3: field "event_type": is required)");
}

TEST(RequestBody, IdentifyApiArray) {
  EventBatch batch;
  std::vector<IngestError> errors;
  ASSERT_TRUE(ParseRequestBody(R"([{"user_id":"user-1","user_properties":{"$set":{"plan":"pro"}},"country":"Chile"},
      {"device_id":"device-2","user_properties":{"age":3}}])", BodyKind::kAmplitudeIdentify, batch, errors).ok());
  ASSERT_EQ(batch.events.size(), 2u);
  EXPECT_TRUE(batch.events[0].is_identify);
  EXPECT_TRUE(batch.events[1].is_identify);
  EXPECT_EQ(batch.UserUpdatesOf(batch.events[0]).size(), 2u);
  EXPECT_TRUE(errors.empty());
}

TEST(RequestBody, SegmentBatch) {
  EventBatch batch;
  std::vector<IngestError> errors;
  ASSERT_TRUE(ParseRequestBody(R"({"batch":[{"type":"track","userId":"user-1","event":"A"},
      {"type":"identify","userId":"user-1","traits":{"plan":"pro"}},{"userId":"user-1","event":"A"}]})",
      BodyKind::kSegment, batch, errors).ok());
  EXPECT_EQ(batch.events.size(), 2u);
  ASSERT_EQ(errors.size(), 1u);
  EXPECT_EQ(errors[0].ToString(), R"(batch index 2: field "type": is required for a Segment message)");
}

TEST(RequestBody, MalformedBodyAddsNothing) {
  EventBatch batch;
  std::vector<IngestError> errors;
  Status s = ParseRequestBody(R"({"events":[{"user_id":"user-1","event_type":"A"},{"user_id":)",
                              BodyKind::kAuto, batch, errors);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(batch.events.empty());
  EXPECT_TRUE(errors.empty());
}

}  // namespace
}  // namespace sibyl
