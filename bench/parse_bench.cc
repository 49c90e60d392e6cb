// Parse + validation throughput of the ingest layer (not a timed test).
//   parse_bench [--events N] [--file PATH] [--threads T]
// Without --file it writes a representative Amplitude NDJSON file (~350 bytes an event,
// properties included) to a temp path. Reports single-thread ParseLines speed on an
// in-memory buffer, then ParseFile (read + split + parse on T threads, in order).
#include <malloc.h>
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <random>
#include <string>

#include <fmt/format.h>

#include "common/file.h"
#include "ingest/file_source.h"
#include "ingest/json_parser.h"

namespace {

double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Events shaped like the simulator's: ids, session, a few typed properties, a nested
// object now and then, device fields, occasional user_properties.
std::string Generate(size_t events) {
  static const char* kTypes[] = {"Page Viewed", "Product Viewed", "Add To Cart", "Checkout Started",
                                 "Purchase", "Search", "Login", "Share", "Video Played", "Settings Opened"};
  static const char* kCategories[] = {"books", "electronics", "garden", "toys", "fashion"};
  static const char* kSources[] = {"organic", "email", "ads", "referral"};
  static const char* kPlatforms[] = {"iOS", "Android", "Web"};
  static const char* kCountries[] = {"United States", "Germany", "France", "Brazil", "India"};
  std::mt19937_64 rng(42);
  std::string out;
  out.reserve(events * 360);
  int64_t time = 1700000000000;
  for (size_t i = 0; i < events; ++i) {
    uint64_t r = rng();
    uint64_t user = r % 200000;
    time += static_cast<int64_t>(r % 1000);
    fmt::format_to(std::back_inserter(out),
                   R"({{"user_id":"user-{:06}","device_id":"dev-{:08x}","event_type":"{}","time":{},)"
                   R"("insert_id":"{:016x}","session_id":{},"platform":"{}","os_name":"{}","country":"{}",)"
                   R"("event_properties":{{"category":"{}","price":{:.2f},"quantity":{},"source":"{}",)"
                   R"("in_stock":{},"item_id":"item-{}")",
                   user, user * 2654435761u % 0xffffffffu, kTypes[(r >> 8) % 10], time, rng(),
                   time - static_cast<int64_t>(r % 3600000), kPlatforms[user % 3],
                   user % 3 == 0 ? "ios" : user % 3 == 1 ? "android" : "linux", kCountries[user % 5],
                   kCategories[(r >> 16) % 5], static_cast<double>((r >> 20) % 10000) / 100, (r >> 32) % 5 + 1,
                   kSources[(r >> 40) % 4], (r >> 44) & 1 ? "true" : "false", (r >> 45) % 5000);
    if ((r >> 50) % 8 == 0) out += R"(,"address":{"city":"Paris","zip":"75001"})";
    out += "}";
    if ((r >> 54) % 16 == 0) fmt::format_to(std::back_inserter(out), R"(,"user_properties":{{"plan":"pro","visits":{}}})", r % 100);
    out += "}\n";
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  size_t events = 2'000'000;
  std::string file;
  int threads = 2;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--events")) events = std::strtoull(argv[i + 1], nullptr, 10);
    else if (!std::strcmp(argv[i], "--file")) file = argv[i + 1];
    else if (!std::strcmp(argv[i], "--threads")) threads = std::atoi(argv[i + 1]);
  }
  if (std::getenv("PARSE_BENCH_KEEP_HEAP")) {
    // Keep freed batch memory in the heap for reuse instead of returning it to the OS:
    // on this VM a fresh page fault costs more than parsing the bytes on it.
    mallopt(M_MMAP_THRESHOLD, 1 << 30);
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
  }
  std::string text;
  if (file.empty()) {
    text = Generate(events);
    file = fmt::format("/tmp/parse_bench_{}.ndjson", getpid());
    std::ofstream(file, std::ios::binary) << text;
  } else {
    auto r = sibyl::ReadFileMaybeGzip(file);
    if (!r.ok()) { fmt::print(stderr, "{}\n", r.status().ToString()); return 1; }
    text = std::move(*r);
  }
  fmt::print("input: {} ({:.1f} MB)\n", file, text.size() / 1e6);

  // 1. One thread, in-memory, 4 MB chunks: the parser's own speed.
  {
    sibyl::JsonEventParser parser;
    size_t parsed = 0, errors = 0;
    double wall0 = Now(), cpu0 = CpuSeconds();
    uint64_t line = 1;
    for (size_t at = 0; at < text.size();) {
      size_t end = std::min(text.size(), at + (4 << 20));
      end = text.find('\n', end);
      end = end == std::string::npos ? text.size() : end + 1;
      sibyl::EventBatch batch;
      batch.events.reserve((end - at) / 32);
      batch.properties.reserve((end - at) / 8);
      batch.user_updates.reserve((end - at) / 16);
      std::vector<sibyl::IngestError> errs;
      std::string_view chunk = sibyl::AdoptInput(batch, text.substr(at, end - at));
      parser.ParseLines(chunk, 0, line, batch, errs);
      line += std::count(chunk.begin(), chunk.end(), '\n');
      parsed += batch.events.size();
      errors += errs.size();
      at = end;
    }
    double wall = Now() - wall0, cpu = CpuSeconds() - cpu0;
    fmt::print("ParseLines, 1 thread:  {} events, {} errors, wall {:.3f}s, cpu {:.3f}s -> "
               "{:.2f}M events/s per cpu-second ({:.0f} MB/s), {:.2f}M events/s wall\n",
               parsed, errors, wall, cpu, parsed / cpu / 1e6, text.size() / cpu / 1e6,
               parsed / wall / 1e6);
  }

  // 1b. The same parser on one 4 MB chunk again and again, reusing the batch's memory:
  // parse + validation alone, without the cost of first touching fresh pages.
  {
    size_t end = text.find('\n', std::min(text.size(), size_t{4} << 20));
    end = end == std::string::npos ? text.size() : end + 1;
    std::string chunk_text = text.substr(0, end);
    chunk_text.append(64, '\0');
    std::string_view chunk(chunk_text.data(), end);
    sibyl::JsonEventParser parser;
    sibyl::EventBatch batch;
    std::vector<sibyl::IngestError> errs;
    size_t parsed = 0;
    double cpu0 = CpuSeconds();
    while (parsed < events) {
      batch.events.clear();
      batch.properties.clear();
      batch.user_updates.clear();
      parser.ParseLines(chunk, 0, 1, batch, errs);
      parsed += batch.events.size();
    }
    double cpu = CpuSeconds() - cpu0;
    fmt::print("ParseLines, 1 thread, warm memory: {} events, cpu {:.3f}s -> {:.2f}M events/s "
               "({:.0f} MB/s)\n", parsed, cpu, parsed / cpu / 1e6, parsed * (double(end) / std::count(chunk.begin(), chunk.end(), '\n')) / cpu / 1e6);
  }

  // 2. The whole file path: read, split, parse on N threads, deliver in order.
  for (int t : {1, threads}) {
    sibyl::FileParseOptions options;
    options.threads = t;
    size_t parsed = 0;
    double wall0 = Now(), cpu0 = CpuSeconds();
    auto stats = sibyl::ParseFile(file, options, [&](sibyl::EventBatch&& b, std::vector<sibyl::IngestError>&&) {
      parsed += b.events.size();
      return sibyl::Status::Ok();
    });
    double wall = Now() - wall0, cpu = CpuSeconds() - cpu0;
    if (!stats.ok()) { fmt::print(stderr, "{}\n", stats.status().ToString()); return 1; }
    fmt::print("ParseFile, {} thread(s): {} events, wall {:.3f}s ({:.2f}M events/s), cpu {:.3f}s\n",
               t, parsed, wall, parsed / wall / 1e6, cpu);
  }
  if (argc < 3 || file.rfind("/tmp/parse_bench_", 0) == 0) std::remove(file.c_str());
  return 0;
}
