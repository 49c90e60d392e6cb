// The sibyl binary end to end: generate → ingest → stats agree with the file; a second
// ingest of the same file only drops duplicates; a bad line stops ingest and changes
// nothing; --skip-invalid ingests the rest and reports the bad line.
#include <sys/wait.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include "store/event_store.h"

namespace sibyl {
namespace {

struct RunResult {
  int exit_code = -1;
  std::string out;
};

RunResult Sibyl(const std::string& args) {
  std::string command = std::string(SIBYL_BINARY_DIR) + "/sibyl --quiet " + args + " 2>&1";
  RunResult run;
  FILE* pipe = popen(command.c_str(), "r");
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof(buffer), pipe)) > 0) run.out.append(buffer, n);
  int status = pclose(pipe);
  run.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return run;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    std::string tmpl = (std::filesystem::temp_directory_path() / "sibyl-cli-XXXXXX").string();
    dir_ = mkdtemp(tmpl.data());
    data_ = "--data " + dir_ + "/data ";
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }
  nlohmann::json Stats() {
    RunResult r = Sibyl(data_ + "--json stats");
    EXPECT_EQ(r.exit_code, 0) << r.out;
    return nlohmann::json::parse(r.out);
  }
  std::string dir_, data_;
};

TEST_F(CliTest, IngestThenStatsAgreesWithTheGeneratedFile) {
  std::string file = dir_ + "/events.ndjson";
  RunResult gen = Sibyl("generate --users 300 --days 21 --seed 5 --out " + file);
  ASSERT_EQ(gen.exit_code, 0) << gen.out;
  // What the file holds, counted independently of sibyl's parser.
  uint64_t events = 0, identifies = 0, with_insert_id = 0;
  std::set<std::string> users, types;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    auto e = nlohmann::json::parse(line);
    with_insert_id += e.contains("insert_id");
    if (e.value("event_type", "") == "$identify") {
      ++identifies;
      continue;
    }
    ++events;
    if (e.contains("user_id")) users.insert(e["user_id"].get<std::string>());
    types.insert(e["event_type"].get<std::string>());
  }
  ASSERT_GT(events, 1000u);

  RunResult ingest = Sibyl(data_ + "--json ingest " + file);
  ASSERT_EQ(ingest.exit_code, 0) << ingest.out;
  auto report = nlohmann::json::parse(ingest.out);
  EXPECT_EQ(report["events_written"], events);
  EXPECT_EQ(report["identify_calls"], identifies);

  auto stats = Stats();
  EXPECT_EQ(stats["events"], events);
  EXPECT_EQ(stats["users"], users.size());
  EXPECT_EQ(stats["event_type_count"], types.size());
  EXPECT_EQ(stats["duplicates_dropped"], 0u);

  // The same file again: every line with an insert_id (events and identify calls) repeats.
  RunResult again = Sibyl(data_ + "--json ingest " + file);
  ASSERT_EQ(again.exit_code, 0) << again.out;
  EXPECT_EQ(nlohmann::json::parse(again.out)["events_written"], 0u);
  stats = Stats();
  EXPECT_EQ(stats["events"], events);
  EXPECT_EQ(stats["duplicates_dropped"], with_insert_id);
}

TEST_F(CliTest, BadLineStopsIngestAndChangesNothingUnlessSkipped) {
  std::string file = dir_ + "/mixed.ndjson";
  {
    std::ofstream out(file);
    out << R"({"user_id":"user-0001","event_type":"View","time":1700000000000})" "\n";
    out << R"({"user_id":"null","event_type":"View","time":1700000000000})" "\n";
    out << R"({"user_id":"user-0002","event_type":"View","time":1700000001000})" "\n";
  }
  RunResult bad = Sibyl(data_ + "ingest " + file);
  EXPECT_EQ(bad.exit_code, 2) << bad.out;
  EXPECT_NE(bad.out.find(file + ":2"), std::string::npos) << bad.out;
  EXPECT_NE(bad.out.find("user_id"), std::string::npos) << bad.out;
  // Nothing was written: the store holds no events (it may not even exist yet).
  RunResult stats = Sibyl(data_ + "--json stats");
  if (stats.exit_code == 0) {
    EXPECT_EQ(nlohmann::json::parse(stats.out)["events"], 0u);
  } else {
    EXPECT_EQ(stats.exit_code, 3) << stats.out;  // not found: no store
  }

  RunResult skipped = Sibyl(data_ + "--json ingest --skip-invalid " + file);
  ASSERT_EQ(skipped.exit_code, 0) << skipped.out;
  auto report = nlohmann::json::parse(skipped.out);
  EXPECT_EQ(report["events_written"], 2u);
  EXPECT_EQ(report["invalid_skipped"], 1u);
  EXPECT_NE(report["invalid_examples"][0].get<std::string>().find(file + ":2"), std::string::npos);
  EXPECT_EQ(Stats()["events"], 2u);
}

// A new user importing a shop export (issue 17): a CSV not named .csv is read as CSV when
// a mapping is given; short customer ids get a hint at min_id_length; --skip-invalid
// that ingests nothing fails (exit 2); a failed first ingest leaves no data directory;
// --quiet prints nothing on success.
TEST_F(CliTest, CsvExportWithAMappingWhateverItsName) {
  const std::string csv = dir_ + "/export.txt", mapping = dir_ + "/mapping.json";
  {
    std::ofstream out(csv);
    out << "Invoice,Customer ID,InvoiceDate\n"
        << "A1,123,2010-01-04 10:00:00\n"
        << "A2,123,2010-01-05 11:00:00\n"
        << "A3,4567,2010-01-06 12:00:00\n";
    std::ofstream m(mapping);
    m << R"({"delimiter": ",", "user_id": {"column": "Customer ID"},
             "time": {"column": "InvoiceDate", "format": "%Y-%m-%d %H:%M:%S"},
             "event_type": "Purchase", "insert_id": {"template": "{Invoice}"}})";
  }
  const std::string data_dir = dir_ + "/data";
  RunResult short_ids = Sibyl(data_ + "ingest --mapping " + mapping + " " + csv);
  EXPECT_EQ(short_ids.exit_code, 2) << short_ids.out;
  EXPECT_NE(short_ids.out.find("is shorter than 5"), std::string::npos) << short_ids.out;
  EXPECT_NE(short_ids.out.find("min_id_length"), std::string::npos) << short_ids.out;
  EXPECT_FALSE(std::filesystem::exists(data_dir)) << "a failed first ingest leaves no data directory";

  RunResult nothing = Sibyl(data_ + "ingest --skip-invalid --mapping " + mapping + " " + csv);
  EXPECT_EQ(nothing.exit_code, 2) << nothing.out;
  EXPECT_NE(nothing.out.find("no valid events"), std::string::npos) << nothing.out;
  EXPECT_FALSE(std::filesystem::exists(data_dir));

  {
    std::ofstream m(mapping);
    m << R"({"delimiter": ",", "user_id": {"column": "Customer ID"}, "min_id_length": 1,
             "time": {"column": "InvoiceDate", "format": "%Y-%m-%d %H:%M:%S"},
             "event_type": "Purchase", "insert_id": {"template": "{Invoice}"}})";
  }
  RunResult ok = Sibyl(data_ + "ingest --mapping " + mapping + " " + csv);
  EXPECT_EQ(ok.exit_code, 0) << ok.out;
  EXPECT_EQ(ok.out, "") << "--quiet prints nothing on success";
  EXPECT_EQ(Stats()["events"], 3u);

  // Without a mapping, --format csv is refused with the reason.
  RunResult no_mapping = Sibyl(data_ + "ingest --format csv " + csv);
  EXPECT_EQ(no_mapping.exit_code, 2) << no_mapping.out;
  EXPECT_NE(no_mapping.out.find("--mapping"), std::string::npos) << no_mapping.out;
  EXPECT_EQ(Stats()["events"], 3u);
}

// `cohort` prints CSV by default and NDJSON under --json; with --out and --json it prints
// what it wrote as one JSON object.
TEST_F(CliTest, CohortExportFollowsJson) {
  const std::string file = dir_ + "/events.ndjson", def = dir_ + "/p.json";
  ASSERT_EQ(Sibyl("generate --users 3000 --days 70 --seed 3 --out " + file).exit_code, 0);
  ASSERT_EQ(Sibyl(data_ + "ingest " + file).exit_code, 0);
  {
    std::ofstream out(def);
    out << R"({"name": "buy", "kind": "propensity", "outcome": {"event": "Purchase"}, "horizon_days": 7,
               "cohort": {"all": [{"active_within_days": 30}]}})";
  }
  ASSERT_EQ(Sibyl(data_ + "predict create --file " + def).exit_code, 0);
  RunResult train = Sibyl(data_ + "train buy --threads 1");
  ASSERT_EQ(train.exit_code, 0) << train.out;
  ASSERT_EQ(Sibyl(data_ + "score buy").exit_code, 0);

  RunResult csv = Sibyl(data_ + "cohort buy --top 10");
  ASSERT_EQ(csv.exit_code, 0) << csv.out;
  EXPECT_EQ(csv.out.substr(0, csv.out.find('\n')), "user_id,score,percentile,model_version");
  RunResult ndjson = Sibyl(data_ + "--json cohort buy --top 10");
  ASSERT_EQ(ndjson.exit_code, 0) << ndjson.out;
  std::istringstream lines(ndjson.out);
  size_t rows = 0;
  for (std::string line; std::getline(lines, line); ++rows) {
    auto row = nlohmann::json::parse(line);
    EXPECT_TRUE(row.contains("user_id") && row.contains("score") && row.contains("percentile")) << line;
  }
  EXPECT_EQ(rows, 10u);
  RunResult written = Sibyl(data_ + "--json cohort buy --top 10 --format csv --out " + dir_ + "/top.csv");
  ASSERT_EQ(written.exit_code, 0) << written.out;
  auto summary = nlohmann::json::parse(written.out);
  EXPECT_EQ(summary["users"], 10u);
  EXPECT_EQ(summary["format"], "csv");
  EXPECT_TRUE(std::filesystem::exists(dir_ + "/top.csv"));
}

TEST_F(CliTest, UsageErrorsExitTwo) {
  EXPECT_EQ(Sibyl("").exit_code, 2);
  EXPECT_EQ(Sibyl("no-such-verb").exit_code, 2);
  EXPECT_EQ(Sibyl("stats --no-such-flag").exit_code, 2);
  EXPECT_EQ(Sibyl("ingest").exit_code, 2);  // the files argument is required
  EXPECT_EQ(Sibyl("--help").exit_code, 0);
}

TEST_F(CliTest, EveryVerbHasHelpAndUnknownFlagsFail) {
  for (const char* verb : {"generate", "ingest", "stats"}) {
    RunResult help = Sibyl(std::string(verb) + " --help");
    EXPECT_EQ(help.exit_code, 0) << verb;
    EXPECT_NE(help.out.find("Usage"), std::string::npos) << verb;
  }
  EXPECT_NE(Sibyl("stats --no-such-flag").exit_code, 0);
  RunResult missing = Sibyl("--data /nonexistent/sibyl-test stats");
  EXPECT_EQ(missing.exit_code, 3) << missing.out;
  EXPECT_NE(missing.out.find("/nonexistent/sibyl-test"), std::string::npos);
}

// Issue 16's price bug, end to end: an Amplitude Purchase with the top-level `price` and
// `quantity` beside the same keys in event_properties (as Amplitude's SDKs and the
// simulator send them) counts its price once in sum("price"), not twice.
TEST_F(CliTest, TopLevelPriceBesideTheEventPropertyIsSummedOnce) {
  const std::string file = dir_ + "/purchases.ndjson";
  {
    std::ofstream out(file);
    // One day's purchases of two users; user-2 has only the top-level field.
    out << R"({"user_id":"user-1","event_type":"Purchase","time":1704067200000,"insert_id":"a","price":10.5,)"
           R"("quantity":2,"event_properties":{"price":10.5,"quantity":2}})"
        << "\n"
        << R"({"user_id":"user-1","event_type":"Purchase","time":1704070800000,"insert_id":"b",)"
           R"("event_properties":{"price":4}})"
        << "\n"
        << R"({"user_id":"user-2","event_type":"Purchase","time":1704067200000,"insert_id":"c","price":7})"
        << "\n";
  }
  RunResult ingest = Sibyl(data_ + "ingest " + file);
  ASSERT_EQ(ingest.exit_code, 0) << ingest.out;
  const std::string csv = dir_ + "/features.csv";
  RunResult features = Sibyl(data_ + "features --as-of 2024-01-02 --out " + csv);
  ASSERT_EQ(features.exit_code, 0) << features.out;
  std::ifstream in(csv);
  std::string header, line;
  ASSERT_TRUE(std::getline(in, header));
  // The column of sum("price") week -1 (names are quoted as JSON strings, CSV-escaped).
  std::vector<std::string> names;
  {
    std::string cell;
    bool quoted = false;
    for (char c : header) {
      if (c == '"') quoted = !quoted;
      if (c == ',' && !quoted) {
        names.push_back(cell);
        cell.clear();
      } else {
        cell += c;
      }
    }
    names.push_back(cell);
  }
  size_t column = names.size();
  for (size_t i = 0; i < names.size(); ++i)
    if (names[i].find("sum(") != std::string::npos && names[i].find("price") != std::string::npos &&
        names[i].find("week -1") != std::string::npos)
      column = i;
  ASSERT_LT(column, names.size()) << header;
  std::map<std::string, double> price_of;
  while (std::getline(in, line)) {
    std::vector<std::string> cells;
    std::stringstream row(line);
    for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
    ASSERT_GT(cells.size(), column) << line;
    price_of[cells[0]] = std::stod(cells[column]);
  }
  EXPECT_DOUBLE_EQ(price_of["user-1"], 14.5);  // 10.5 once, plus 4
  EXPECT_DOUBLE_EQ(price_of["user-2"], 7.0);   // the top-level field fills in
}

// A flipped bit in an acknowledged log record: every verb refuses the store naming the
// file and offset (exit 6), `sibyl repair` keeps the rest and says what it dropped.
TEST_F(CliTest, DamagedLogIsRefusedThenRepairReportsWhatItDropped) {
  StoreOptions options;
  options.data_dir = dir_ + "/data";
  {
    auto store = EventStore::Open(options);
    ASSERT_TRUE(store.ok()) << store.status().ToString();
    for (int i = 0; i < 3; ++i) {
      EventBatch batch;
      ParsedEvent e;
      e.user_id = batch.Intern("user-" + std::to_string(i));
      e.event_type = batch.Intern("View");
      e.time_ms = 1'700'000'000'000 + i;
      e.has_time = true;
      batch.events.push_back(e);
      ASSERT_TRUE((*store)->Append(batch).ok());
    }
  }
  std::string log;
  for (const auto& entry : std::filesystem::directory_iterator(dir_ + "/data/wal"))
    if (std::filesystem::file_size(entry.path()) > 0) log = entry.path().string();
  ASSERT_FALSE(log.empty());
  uint64_t size = std::filesystem::file_size(log);
  {
    std::fstream f(log, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(size - 1));  // the last commit record's payload
    f.put('\x7f');
  }
  RunResult refused = Sibyl(data_ + "stats");
  EXPECT_EQ(refused.exit_code, 6) << refused.out;
  EXPECT_NE(refused.out.find(log + ": damaged record at byte " + std::to_string(size - 14)), std::string::npos)
      << refused.out;
  EXPECT_NE(refused.out.find("sibyl repair"), std::string::npos) << refused.out;

  RunResult repair = Sibyl(data_ + "--json repair");
  ASSERT_EQ(repair.exit_code, 0) << repair.out;
  auto report = nlohmann::json::parse(repair.out);
  const auto& store = report["store"];
  EXPECT_EQ(store["repaired"], true);
  EXPECT_EQ(store["events"], 2);
  ASSERT_EQ(store["damaged"].size(), 1u);
  EXPECT_EQ(store["damaged"][0]["file"], log);
  EXPECT_EQ(store["damaged"][0]["offset"], size - 14);
  EXPECT_EQ(store["damaged"][0]["bytes"], 14);
  EXPECT_EQ(store["damaged"][0]["torn"], false);
  EXPECT_EQ(store["transactions_dropped"], nlohmann::json::array({3}));
  EXPECT_EQ(store["events_dropped"], 1);
  EXPECT_EQ(store["kept_copies"], nlohmann::json::array({log + ".before-repair"}));
  EXPECT_EQ(report["runs_log"]["repaired"], false);
  EXPECT_EQ(Stats()["events"], 2);
  RunResult again = Sibyl(data_ + "repair");
  EXPECT_EQ(again.exit_code, 0) << again.out;
  EXPECT_NE(again.out.find("store: nothing to repair (2 events)"), std::string::npos) << again.out;
  EXPECT_EQ(Sibyl("--data " + dir_ + "/nothing repair").exit_code, 3);
}

}  // namespace
}  // namespace sibyl
