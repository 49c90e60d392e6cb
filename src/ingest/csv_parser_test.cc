#include "ingest/csv_parser.h"

#include <gtest/gtest.h>

#include <fstream>

#include "ingest/file_source.h"
#include "ingest/json_parser.h"

namespace sibyl {
namespace {

constexpr std::string_view kMapping = R"({
  "user_id": "Customer",
  "time": {"column": "When", "format": "%Y-%m-%d %H:%M:%S", "utc_offset": "+01:00"},
  "event_type": {"if": {"column": "Invoice", "starts_with": "C"},
                 "then": "Order Cancelled", "else": "Product Purchased"},
  "insert_id": {"template": "{Invoice}-{Item}-{row}"},
  "event_properties": [{"name": "item", "column": "Item"},
                       {"name": "quantity", "column": "Qty", "type": "number"}],
  "derived": [{"name": "revenue", "multiply": ["Qty", "Price"]}],
  "user_properties": [{"name": "country", "column": "Country"}],
  "skip_rows_without_id": true
})";

struct Parsed {
  EventBatch batch;
  std::vector<IngestError> errors;
  uint64_t skipped = 0;
};

Parsed Parse(std::string rows, std::string_view header = "Invoice,Item,Qty,Price,When,Customer,Country\n",
             std::string_view mapping_json = kMapping) {
  auto mapping = CsvMapping::FromJson(mapping_json);
  EXPECT_TRUE(mapping.ok()) << mapping.status().ToString();
  auto parser = CsvParser::Create(*mapping, header);
  EXPECT_TRUE(parser.ok()) << parser.status().ToString();
  Parsed p;
  p.batch.files.push_back("sales.csv");
  p.skipped = (*parser)->ParseRows(AdoptInput(p.batch, std::move(rows)), 0, 2, p.batch, p.errors);
  return p;
}

const Property* Find(const EventBatch& b, const ParsedEvent& e, std::string_view key) {
  for (const Property& p : b.PropertiesOf(e)) {
    if (p.key == key) return &p;
  }
  return nullptr;
}

TEST(CsvSplit, Rfc4180Quoting) {
  std::vector<std::string_view> fields;
  std::string scratch;
  ASSERT_TRUE(SplitCsvRecord(R"(a,"b,c","say ""hi""",,"multi
line")", ',', fields, scratch));
  ASSERT_EQ(fields.size(), 5u);
  EXPECT_EQ(fields[0], "a");
  EXPECT_EQ(fields[1], "b,c");
  EXPECT_EQ(fields[2], R"(say "hi")");
  EXPECT_EQ(fields[3], "");
  EXPECT_EQ(fields[4], "multi\nline");
  EXPECT_FALSE(SplitCsvRecord(R"(a,"unterminated)", ',', fields, scratch));
  EXPECT_FALSE(SplitCsvRecord(R"(a,"x"y,b)", ',', fields, scratch));
}

TEST(CsvSplit, RecordBoundariesRespectQuotes) {
  EXPECT_EQ(CsvCompleteRecordsEnd("a,b\nc,\"d\ne\"\nf,g"), 12u);
  EXPECT_EQ(CsvCompleteRecordsEnd("a,\"b\nc"), 0u);
  EXPECT_EQ(CsvFirstRecordEnd("\"h\n1\",h2\nx"), 9u);
}

TEST(CsvParser, MapsRowsToEvents) {
  Parsed p = Parse(
      "489434,85048,12,6.95,2009-12-01 07:45:00,13085,United Kingdom\n"
      "C489449,\"RECORD FRAME 7\"\" SINGLE\",-2,2.1,2009-12-01 10:33:00,16321,Australia\r\n"
      "489435,22041,3,1.5,2009-12-01 10:34:00,,United Kingdom\n");
  ASSERT_TRUE(p.errors.empty()) << p.errors[0].ToString();
  EXPECT_EQ(p.skipped, 1u);
  ASSERT_EQ(p.batch.events.size(), 2u);
  const ParsedEvent& a = p.batch.events[0];
  EXPECT_EQ(a.user_id, "13085");
  EXPECT_EQ(a.event_type, "Product Purchased");
  EXPECT_EQ(a.insert_id, "489434-85048-1");
  EXPECT_EQ(a.time_ms, 1259649900000);  // 07:45 at UTC+1 is 06:45Z
  EXPECT_EQ(a.position.line, 2u);
  EXPECT_DOUBLE_EQ(Find(p.batch, a, "revenue")->value.number, 12 * 6.95);
  EXPECT_EQ(Find(p.batch, a, "quantity")->value.number, 12);
  EXPECT_EQ(p.batch.UserUpdatesOf(a)[0].key, "country");
  EXPECT_EQ(p.batch.UserUpdatesOf(a)[0].value.text, "United Kingdom");
  const ParsedEvent& b = p.batch.events[1];
  EXPECT_EQ(b.event_type, "Order Cancelled");
  EXPECT_EQ(Find(p.batch, b, "item")->value.text, R"(RECORD FRAME 7" SINGLE)");
  EXPECT_EQ(b.insert_id, R"(C489449-RECORD FRAME 7" SINGLE-2)");
}

TEST(CsvParser, ErrorsNameLineAndColumn) {
  Parsed p = Parse(
      "1,A,x,1.0,2009-12-01 07:45:00,13085,UK\n"
      "2,B,1,1.0,yesterday,13085,UK\n"
      "3,C,1,1.0\n"
      "4,\"D\"x,1,1.0,2009-12-01 07:45:00,13085,UK\n"
      "5,E,1,1.0,2009-12-01 07:45:00,null,UK\n");
  ASSERT_EQ(p.errors.size(), 5u);
  EXPECT_EQ(p.errors[0].ToString(), R"(sales.csv:2: field "Qty": (column 3) 'x' is not a number)");
  EXPECT_EQ(p.errors[1].ToString(),
            R"(sales.csv:3: field "When": (column 5) 'yesterday' is not a time in the mapping's format)");
  EXPECT_EQ(p.errors[2].ToString(), "sales.csv:4: row has 4 fields; the header has 7");
  EXPECT_EQ(p.errors[3].position.line, 5u);
  EXPECT_EQ(p.errors[4].ToString(),
            R"(sales.csv:6: field "Customer": (column 6) user_id: "null" is a blocked id value)");
  EXPECT_TRUE(p.batch.events.empty());
  EXPECT_TRUE(p.batch.properties.empty());
}

TEST(CsvParser, MultiLineQuotedFieldKeepsLineNumbers) {
  Parsed p = Parse(
      "1,\"two\nlines\",1,1.0,2009-12-01 07:45:00,13085,UK\n"
      "2,B,bad,1.0,2009-12-01 07:45:00,13085,UK\n");
  ASSERT_EQ(p.errors.size(), 1u);
  EXPECT_EQ(p.errors[0].position.line, 4u);
  ASSERT_EQ(p.batch.events.size(), 1u);
}

TEST(CsvMapping, MissingColumnIsReported) {
  auto mapping = CsvMapping::FromJson(kMapping);
  ASSERT_TRUE(mapping.ok());
  auto parser = CsvParser::Create(*mapping, "Invoice,Item\n");
  ASSERT_FALSE(parser.ok());
  EXPECT_NE(parser.status().message().find("column \"Customer\""), std::string::npos)
      << parser.status().ToString();
}

TEST(CsvMapping, BadMappingsAreReported) {
  EXPECT_FALSE(CsvMapping::FromJson("{").ok());
  EXPECT_FALSE(CsvMapping::FromJson(R"({"event_type":"A"})").ok()) << "no id column";
  EXPECT_FALSE(CsvMapping::FromJson(R"({"user_id":"u"})").ok()) << "no event type";
  EXPECT_FALSE(CsvMapping::FromJson(R"({"user_id":"u","event_type":"A","event_properties":[{"column":"c","type":"date"}]})").ok());
  EXPECT_TRUE(CsvMapping::FromJson(R"({"user_id":"u","event_type":{"column":"e"},"time":{"column":"t","format":"epoch_ms"}})").ok());
}

TEST(CsvMapping, EpochMsAndConstantType) {
  Parsed p = Parse("user-1,1700000000000,Open\n", "uid,ts,kind\n",
                   R"({"user_id":"uid","time":{"column":"ts","format":"epoch_ms"},"event_type":{"column":"kind"}})");
  ASSERT_EQ(p.batch.events.size(), 1u);
  EXPECT_EQ(p.batch.events[0].time_ms, 1700000000000);
  EXPECT_EQ(p.batch.events[0].event_type, "Open");
}

// A mapping can prefix ids (issue 17: short customer numbers), only non-empty ones, and an
// id with an escaped quote (unescaped in the parser's scratch buffer) survives the next row.
TEST(CsvMapping, IdPrefixAndEscapedIds) {
  constexpr std::string_view kPrefixed =
      R"({"user_id": {"column": "uid", "prefix": "cust-"}, "device_id": {"column": "dev", "prefix": "d:"},
          "time": {"column": "ts", "format": "epoch_ms"}, "event_type": "Purchase", "skip_rows_without_id": true})";
  Parsed p = Parse("42,,1700000000000\n,abc,1700000000001\n,,1700000000002\n\"x\"\"y\",,1700000000003\n7,,1700000000004\n",
                   "uid,dev,ts\n", kPrefixed);
  ASSERT_TRUE(p.errors.empty()) << p.errors[0].ToString();
  EXPECT_EQ(p.skipped, 1u);  // neither id
  ASSERT_EQ(p.batch.events.size(), 4u);
  EXPECT_EQ(p.batch.events[0].user_id, "cust-42");
  EXPECT_EQ(p.batch.events[0].device_id, "");
  EXPECT_EQ(p.batch.events[1].user_id, "");
  EXPECT_EQ(p.batch.events[1].device_id, "d:abc");
  EXPECT_EQ(p.batch.events[2].user_id, R"(cust-x"y)");
  EXPECT_EQ(p.batch.events[3].user_id, "cust-7");

  auto bad = CsvMapping::FromJson(R"({"user_id": {"column": "uid", "prefix": 5}, "event_type": "E"})");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("user_id.prefix"), std::string::npos) << bad.status().ToString();
}

// The real Online Retail II file with the shipped mapping, end to end.
TEST(CsvOnlineRetail, LoadsTheRealFile) {
  const std::string data = "/work/shared/data/online_retail_ii/online_retail_ii_2009_2010.csv.gz";
  if (!std::ifstream(data).good()) GTEST_SKIP() << data << " not present";
  auto mapping = CsvMapping::FromFile(std::string(SIBYL_SOURCE_DIR) + "/examples/online_retail_mapping.json");
  ASSERT_TRUE(mapping.ok()) << mapping.status().ToString();
  FileParseOptions options;
  options.csv_mapping = *mapping;
  options.chunk_bytes = 1 << 20;  // several chunks, so order and line numbers are exercised
  uint64_t events = 0, cancelled = 0, errors = 0;
  uint64_t last_line = 0;
  bool ordered = true;
  double revenue = 0;
  auto stats = ParseFile(data, options, [&](EventBatch&& batch, std::vector<IngestError>&& errs) {
    errors += errs.size();
    for (const ParsedEvent& e : batch.events) {
      ordered = ordered && e.position.line > last_line;
      last_line = e.position.line;
      ++events;
      if (e.event_type == "Order Cancelled") ++cancelled;
      for (const Property& p : batch.PropertiesOf(e)) {
        if (p.key == "revenue") revenue += p.value.number;
      }
    }
    return Status::Ok();
  });
  ASSERT_TRUE(stats.ok()) << stats.status().ToString();
  EXPECT_EQ(stats->format, FileFormat::kCsv);
  EXPECT_EQ(errors, 0u);
  EXPECT_EQ(stats->skipped_rows, 107'927u);  // rows without a Customer ID
  EXPECT_EQ(events, 417'534u);
  EXPECT_EQ(events + stats->skipped_rows, 525'461u);  // every data row accounted for
  EXPECT_EQ(cancelled, 9'839u);
  EXPECT_EQ(last_line, 525'462u);  // header is line 1
  EXPECT_TRUE(ordered);
  EXPECT_GT(revenue, 0);
}

}  // namespace
}  // namespace sibyl
