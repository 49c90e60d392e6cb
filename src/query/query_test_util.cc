#include "query/query_test_util.h"

#include <gtest/gtest.h>

#include <charconv>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace sibyl::testing_util {

TempStore::TempStore() {
  std::string tmpl = (std::filesystem::temp_directory_path() / "sibyl-query-XXXXXX").string();
  dir_ = mkdtemp(tmpl.data());
  StoreOptions options;
  options.data_dir = dir_;
  options.clock = &clock_;
  auto store = EventStore::Open(options);
  if (!store.ok()) ADD_FAILURE() << store.status().ToString();
  else store_ = std::move(store).value();
}

TempStore::~TempStore() {
  store_.reset();
  std::filesystem::remove_all(dir_);
}

int64_t ParseTestTime(const nlohmann::json& time, int64_t cutoff_ms) {
  if (time.is_number()) return time.get<int64_t>();
  std::string s = time.get<std::string>();
  if (s.empty() || s[0] != 'T') throw std::runtime_error("bad test time " + s);
  if (s == "T") return cutoff_ms;
  int sign = s[1] == '-' ? -1 : 1;
  int64_t amount = 0;
  auto [end, ec] = std::from_chars(s.data() + 2, s.data() + s.size(), amount);
  std::string unit(end, static_cast<size_t>(s.data() + s.size() - end));
  int64_t scale = unit == "ms" ? 1 : unit == "s" ? 1000 : unit == "m" ? 60'000
                : unit == "h" ? 3'600'000 : unit == "d" ? 86'400'000 : unit == "w" ? 604'800'000 : 0;
  if (ec != std::errc() || scale == 0) throw std::runtime_error("bad test time " + s);
  return cutoff_ms + sign * amount * scale;
}

namespace {

Value ToValue(const nlohmann::json& v, EventBatch& batch) {
  if (v.is_string()) return Value::String(batch.Intern(v.get<std::string>()));
  if (v.is_boolean()) return Value::Bool(v.get<bool>());
  if (v.is_number()) return Value::Number(v.get<double>());
  if (v.is_array()) return Value::Array(batch.Intern(v.dump()));
  return Value::Null();
}

}  // namespace

void AddLogLine(const nlohmann::json& line, int64_t cutoff_ms, EventBatch& batch) {
  ParsedEvent e;
  e.user_id = batch.Intern(line.value("user_id", std::string()));
  e.device_id = batch.Intern(line.value("device_id", std::string()));
  e.event_type = batch.Intern(line.value("event_type", std::string()));
  e.insert_id = batch.Intern(line.value("insert_id", std::string()));
  e.time_ms = ParseTestTime(line.at("time"), cutoff_ms);
  e.has_time = true;
  e.session_id = line.value("session_id", int64_t{-1});
  e.is_identify = line.value("identify", false);
  e.properties_begin = static_cast<uint32_t>(batch.properties.size());
  if (auto p = line.find("event_properties"); p != line.end())
    for (const auto& [k, v] : p->items()) batch.properties.push_back({batch.Intern(k), ToValue(v, batch)});
  e.properties_end = static_cast<uint32_t>(batch.properties.size());
  e.user_updates_begin = static_cast<uint32_t>(batch.user_updates.size());
  if (auto p = line.find("user_properties"); p != line.end()) {
    for (const auto& [k, v] : p->items()) {
      UserPropertyUpdate u;
      u.op = v.is_null() ? UserPropertyOp::kUnset : UserPropertyOp::kSet;
      u.key = batch.Intern(k);
      u.value = ToValue(v, batch);
      batch.user_updates.push_back(u);
    }
  }
  e.user_updates_end = static_cast<uint32_t>(batch.user_updates.size());
  batch.events.push_back(e);
}

nlohmann::json ParseEventLog(const std::string& ndjson, int64_t cutoff_ms, EventBatch& batch) {
  nlohmann::json header;
  std::istringstream in(ndjson);
  std::string text;
  while (std::getline(in, text)) {
    if (text.empty() || text[0] == '#') continue;
    nlohmann::json line = nlohmann::json::parse(text);
    if (line.contains("header")) {
      header = line["header"];
      continue;
    }
    AddLogLine(line, cutoff_ms, batch);
  }
  return header;
}

std::string ReadTextFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

std::string DescribeMatrix(const FeatureMatrix& matrix, const std::vector<std::string>& row_ids) {
  std::string out;
  for (size_t r = 0; r < matrix.rows(); ++r) {
    out += row_ids[r] + "\n";
    for (size_t c = 0; c < matrix.cols(); ++c)
      if (float v = matrix.at(r, c); v != 0) out += fmt::format("  {} = {}\n", matrix.columns[c], v);
  }
  return out;
}

}  // namespace sibyl::testing_util
