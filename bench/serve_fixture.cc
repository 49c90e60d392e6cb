#include "serve_fixture.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <thread>

#include "ingest/file_source.h"
#include "sim/generator.h"
#include "store/event_store.h"

namespace sibyl::bench {

Status GenerateStore(const std::string& dir, uint64_t users, int days) {
  sim::SimOptions sim;
  sim.users = users;
  sim.days = days;
  sim.seed = 7;
  sim.out_path = dir + "/events.ndjson";
  RETURN_IF_ERROR(sim::Generate(sim).status());
  ASSIGN_OR_RETURN(auto store, EventStore::Open(StoreOptions{.data_dir = dir + "/data"}));
  {
    ASSIGN_OR_RETURN(auto txn, store->Begin());
    RETURN_IF_ERROR(ParseFile(sim.out_path, FileParseOptions{}, [&](EventBatch&& b, std::vector<IngestError>&&) {
                      return txn->Add(b).status();
                    }).status());
    RETURN_IF_ERROR(txn->Commit());
  }
  return store->Checkpoint();
}

std::string BatchBody(int client, int64_t request, int64_t base_time) {
  std::string body = "{\"api_key\":\"" + kIngestKey + "\",\"events\":[";
  for (int i = 0; i < 1000; ++i) {
    const int64_t n = request * 1000 + i;
    if (i) body += ',';
    body += "{\"user_id\":\"bench-" + std::to_string(client) + "-" + std::to_string(n % 5000) +
            "\",\"event_type\":\"Bench " + std::to_string(n % 20) + "\",\"time\":" + std::to_string(base_time + n) +
            ",\"insert_id\":\"b" + std::to_string(client) + "-" + std::to_string(n) +
            "\",\"event_properties\":{\"price\":" + std::to_string(n % 97) + ",\"plan\":\"p" +
            std::to_string(n % 3) + "\"}}";
  }
  return body + "]}";
}

nlohmann::json GetJson(httplib::Client& client, const std::string& path) {
  auto r = client.Get(path);
  if (!r) return nullptr;
  auto j = nlohmann::json::parse(r->body, nullptr, false);
  return j.is_discarded() ? nlohmann::json() : j;
}

bool WaitRun(httplib::Client& admin, uint64_t id, int seconds) {
  for (int i = 0; i < seconds * 20; ++i) {
    auto run = GetJson(admin, "/api/v1/runs/" + std::to_string(id));
    std::string state = run.is_object() ? run.value("state", "") : "";
    if (state == "succeeded") return true;
    if (state == "failed" || state == "aborted") {
      std::fprintf(stderr, "run %lu %s: %s\n", static_cast<unsigned long>(id), state.c_str(),
                   run.value("error", "").c_str());
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return false;
}

Result<ScoredPrediction> CreateScoredPrediction(httplib::Client& admin) {
  ScoredPrediction p;
  auto created = admin.Post("/api/v1/predictions", R"({"name":"purchase_7d","kind":"propensity",
      "outcome":{"event":"Purchase"},"horizon_days":7,"cohort":{"all":[{"active_within_days":30}]}})",
                            "application/json");
  if (!created || created->status != 201)
    return Internal("creating the prediction: {}", created ? created->body : httplib::to_string(created.error()));
  // The first train and full score run come from the scheduler; wait for both.
  uint64_t score_run = 0;
  for (int i = 0; i < 6000 && score_run == 0; ++i) {
    auto runs = GetJson(admin, "/api/v1/runs");
    if (runs.is_object())
      for (const auto& r : runs["runs"])
        if (r["kind"] == "score_full" && r["state"] == "succeeded") score_run = r["id"].get<uint64_t>();
    if (!score_run) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  if (!score_run) return Internal("no successful scoring run within 10 minutes");
  auto cohort = GetJson(admin, "/api/v1/predictions/" + p.name + "/cohort?limit=100000");
  for (const auto& u : cohort["users"]) p.user_ids.push_back(u["user_id"]);
  if (p.user_ids.empty()) return Internal("the scored cohort is empty");
  p.cutoff_ms = GetJson(admin, "/api/v1/runs/" + std::to_string(score_run))["detail"]["cutoff_ms"].get<int64_t>();
  return p;
}

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace sibyl::bench
