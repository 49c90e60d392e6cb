#include "ingest/file_source.h"

#include "ingest/csv_parser.h"

#include <unistd.h>
#include <zlib.h>

#include <filesystem>
#include <fstream>

#include <fmt/format.h>
#include <gtest/gtest.h>

namespace sibyl {
namespace {

class FileSourceTest : public ::testing::Test {
 protected:
  std::string dir_ = fmt::format("/tmp/sibyl_ingest_test_{}", getpid());
  void SetUp() override { std::filesystem::create_directories(dir_); }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::string Write(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    std::ofstream(path, std::ios::binary) << text;
    return path;
  }
  std::string WriteGzip(const std::string& name, const std::string& text) {
    std::string path = dir_ + "/" + name;
    gzFile f = gzopen(path.c_str(), "wb");
    gzwrite(f, text.data(), static_cast<unsigned>(text.size()));
    gzclose(f);
    return path;
  }

  struct Collected {
    std::vector<std::string> event_types;
    std::vector<uint64_t> lines;
    std::vector<std::string> errors;
    int batches = 0;
    FileParseStats stats;
  };
  Collected Parse(const std::string& path, FileParseOptions options = {}) {
    Collected c;
    auto stats = ParseFile(path, options, [&](EventBatch&& batch, std::vector<IngestError>&& errors) {
      ++c.batches;
      for (const ParsedEvent& e : batch.events) {
        c.event_types.emplace_back(e.event_type);
        c.lines.push_back(e.position.line);
        EXPECT_EQ(batch.Describe(e.position), fmt::format("{}:{}", batch.files[0], e.position.line));
      }
      for (const IngestError& e : errors) c.errors.push_back(e.ToString());
      return Status::Ok();
    });
    EXPECT_TRUE(stats.ok()) << stats.status().ToString();
    if (stats.ok()) c.stats = *stats;
    return c;
  }
};

std::string Lines(int n, int bad_every = 0) {
  std::string text;
  for (int i = 1; i <= n; ++i) {
    if (bad_every > 0 && i % bad_every == 0) {
      text += fmt::format(R"({{"user_id":"-1","event_type":"E{}"}})", i) + "\n";
    } else {
      text += fmt::format(R"({{"user_id":"user-{:05}","event_type":"E{}","time":1700000000000}})", i, i) + "\n";
    }
  }
  return text;
}

TEST_F(FileSourceTest, OrderAndLineNumbersAcrossChunksAndThreads) {
  std::string path = Write("events.ndjson", Lines(20000, 997));
  for (int threads : {1, 2, 4}) {
    FileParseOptions options;
    options.threads = threads;
    options.chunk_bytes = 4096;  // hundreds of chunks
    Collected c = Parse(path, options);
    EXPECT_GT(c.batches, 100);
    ASSERT_EQ(c.event_types.size() + c.errors.size(), 20000u);
    ASSERT_EQ(c.errors.size(), 20u);
    EXPECT_EQ(c.errors[0], fmt::format(R"({}:997: field "user_id": "-1" is a blocked id value)", path));
    EXPECT_EQ(c.errors[19], fmt::format(R"({}:19940: field "user_id": "-1" is a blocked id value)", path));
    for (size_t i = 0; i < c.lines.size(); ++i) {
      ASSERT_EQ(c.event_types[i], fmt::format("E{}", c.lines[i]));
      if (i > 0) {
        ASSERT_GT(c.lines[i], c.lines[i - 1]) << "file order";
      }
    }
    EXPECT_EQ(c.stats.format, FileFormat::kJsonLines);
    EXPECT_EQ(c.stats.events, 19980u);
  }
}

TEST_F(FileSourceTest, GzipIsReadDirectly) {
  std::string text = Lines(3000);
  std::string path = WriteGzip("events.ndjson.gz", text);
  FileParseOptions options;
  options.chunk_bytes = 10000;
  Collected c = Parse(path, options);
  EXPECT_EQ(c.event_types.size(), 3000u);
  EXPECT_EQ(c.lines.back(), 3000u);
  EXPECT_EQ(c.stats.bytes, text.size());
}

TEST_F(FileSourceTest, LastLineWithoutNewlineAndLongLines) {
  std::string long_value(50000, 'x');
  std::string text = R"({"user_id":"user-1","event_type":"A"})" "\n" +
                     std::string(R"({"user_id":"user-1","event_type":"B","event_properties":{"k":")") + long_value.substr(0, 1000) +
                     R"("}})" "\n" R"({"user_id":"user-1","event_type":"C","event_properties":{"blob":")" + long_value + R"("}})";
  FileParseOptions options;
  options.chunk_bytes = 512;  // lines longer than a chunk
  Collected c = Parse(Write("e.ndjson", text), options);
  ASSERT_EQ(c.event_types.size(), 2u);
  EXPECT_EQ(c.event_types[1], "B");
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_NE(c.errors[0].find(":3: field \"event_properties.blob\""), std::string::npos) << c.errors[0];
}

TEST_F(FileSourceTest, PrettyPrintedBodyFile) {
  std::string path = Write("body.json", R"({
  "api_key": "k",
  "events": [
    {"user_id": "user-1", "event_type": "A"},
    {"user_id": "user-2",
     "event_type": "B"},
    {"user_id": "nil", "event_type": "C"}
  ]
})");
  Collected c = Parse(path);
  EXPECT_EQ(c.stats.format, FileFormat::kJsonBody);
  EXPECT_EQ(c.event_types, (std::vector<std::string>{"A", "B"}));
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_EQ(c.errors[0], fmt::format(R"({}:7: batch index 2: field "user_id": "nil" is a blocked id value)", path));
}

TEST_F(FileSourceTest, ArrayFileIsABody) {
  Collected c = Parse(Write("a.json", R"([{"user_id":"user-1","event_type":"A"},{"user_id":"user-1","event_type":"B"}])"));
  EXPECT_EQ(c.stats.format, FileFormat::kJsonBody);
  EXPECT_EQ(c.event_types.size(), 2u);
}

TEST_F(FileSourceTest, BrokenFirstLineFallsBackToLines) {
  Collected c = Parse(Write("e.ndjson", "{\"user_id\":\n{\"user_id\":\"user-1\",\"event_type\":\"A\"}\n"));
  EXPECT_EQ(c.event_types.size(), 1u);
  ASSERT_EQ(c.errors.size(), 1u);
  EXPECT_NE(c.errors[0].find(":1: "), std::string::npos);
}

TEST_F(FileSourceTest, DetectFormat) {
  EXPECT_EQ(DetectFormat("x.csv", "a,b\n"), FileFormat::kCsv);
  EXPECT_EQ(DetectFormat("x.csv.gz", ""), FileFormat::kCsv);
  EXPECT_EQ(DetectFormat("x.ndjson", "{\"a\":1}\n{\"a\":2}\n"), FileFormat::kJsonLines);
  EXPECT_EQ(DetectFormat("x.json", "  [\n{}]"), FileFormat::kJsonBody);
  EXPECT_EQ(DetectFormat("x.json", "{\n \"events\": []\n}"), FileFormat::kJsonBody);
}

TEST_F(FileSourceTest, CsvNeedsMapping) {
  auto stats = ParseFile(Write("x.csv", "a,b\n1,2\n"), {}, [](EventBatch&&, std::vector<IngestError>&&) {
    return Status::Ok();
  });
  EXPECT_FALSE(stats.ok());
}

// The time bounds of options.json.validation apply to NDJSON and CSV alike, and the
// errors name the file and line.
TEST_F(FileSourceTest, TimeBoundsApplyToEveryFormat) {
  FileParseOptions options;
  options.json.validation.min_time_ms = kFileMinTimeMs;           // 1990-01-01
  options.json.validation.max_time_ms = 1'717'243'200'000;        // 2024-06-01T12:00Z
  Collected json = Parse(Write("e.ndjson",
                               R"({"user_id":"user-1","event_type":"A","time":1262304000000})" "\n"
                               R"({"user_id":"user-1","event_type":"B","time":1924992000000})" "\n"
                               R"({"user_id":"user-1","event_type":"C","time":600000000000})" "\n"),
                         options);
  EXPECT_EQ(json.event_types, std::vector<std::string>{"A"});
  ASSERT_EQ(json.errors.size(), 2u);
  EXPECT_EQ(json.errors[0].rfind(dir_ + "/e.ndjson:2: field \"time\": 1924992000000 (2031-01-01", 0), 0u) << json.errors[0];
  EXPECT_NE(json.errors[1].find("e.ndjson:3: field \"time\": 600000000000 (1989-01-05"), std::string::npos) << json.errors[1];
  auto mapping = CsvMapping::FromJson(R"({"user_id":"Customer","event_type":"Purchase",
                                          "time":{"column":"When","format":"iso"}})");
  ASSERT_TRUE(mapping.ok()) << mapping.status().ToString();
  options.csv_mapping = *mapping;
  Collected csv = Parse(Write("s.csv", "Customer,When\ncust-1,2009-12-01T07:45:00Z\ncust-2,2031-01-01T00:00:00Z\n"), options);
  EXPECT_EQ(csv.event_types.size(), 1u) << "2009 imports";
  ASSERT_EQ(csv.errors.size(), 1u);
  EXPECT_NE(csv.errors[0].find("s.csv:3: field \"When\""), std::string::npos) << csv.errors[0];
  EXPECT_NE(csv.errors[0].find("in the future"), std::string::npos) << csv.errors[0];
}

TEST_F(FileSourceTest, MissingFileAndSinkErrorStop) {
  EXPECT_EQ(ParseFile(dir_ + "/nope.ndjson", {}, [](EventBatch&&, std::vector<IngestError>&&) {
              return Status::Ok();
            }).status().code(),
            StatusCode::kIoError);
  FileParseOptions options;
  options.chunk_bytes = 1000;
  int calls = 0;
  auto stats = ParseFile(Write("e.ndjson", Lines(5000)), options, [&](EventBatch&&, std::vector<IngestError>&&) {
    ++calls;
    return calls == 3 ? InvalidArgument("stop") : Status::Ok();
  });
  EXPECT_EQ(stats.status().message(), "stop");
  EXPECT_EQ(calls, 3);
}

}  // namespace
}  // namespace sibyl
