// The store's write path, stage by stage, on a real ingest of an NDJSON file (not a timed
// test): store_bench --file PATH [--data DIR]
//   Runs what `sibyl ingest` runs (the de-dup index sized for the file, parse threads with
//   the store's Prepare, one bulk transaction, its commit and checkpoint) and reports: the
//   wall time of the index's reservation; the CPU seconds of the single writer thread
//   inside Transaction::Add (per 1M events); the wall and process CPU of the commit (which
//   checkpoints); and the process CPU of everything else (parsing). Thread CPU time is
//   steadier than wall time on a shared machine, though still within ~10% from run to
//   run: compare writer changes by it, in alternating runs.
// The de-dup index alone, for its growth stalls (issue 18), not a test:
//   store_bench --dedup-ids N [--batch 1000] [--as-server] [--reserve] [--probe]
//   Inserts N random ids in batches as a server's commits do (one ingestion time a batch)
//   and reports the batches' insert time, wall and thread CPU (steadier on a shared
//   machine): median, p99, p99.9, max, and ids/s. --as-server sets memory up as `sibyl
//   serve` does (4 KB pages, 2 MB prefault steps); --reserve sizes the index first, as a
//   bulk load does; with --probe a second thread maps, touches and unmaps 64 KB every
//   millisecond and reports how long that took: what a reader needing fresh memory waits.
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "common/memory.h"
#include "ingest/file_source.h"
#include "store/catalog.h"
#include "store/event_store.h"

namespace {

double ThreadCpuSeconds() {
  timespec t;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

double ProcessCpuSeconds() {
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

double Now() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The p-th quantile (0..1) of `v` (sorted in place).
double Quantile(std::vector<double>& v, double p) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(p * static_cast<double>(v.size())))];
}

int DedupBench(uint64_t ids, size_t batch, bool probe, bool reserve) {
  sibyl::DedupIndex index;
  if (reserve) index.Reserve(ids);
  std::vector<uint64_t> hashes(batch);
  std::unique_ptr<bool[]> added(new bool[batch]);
  std::vector<double> times, cpu_times;  // seconds, one a batch: wall, and this thread's CPU
  times.reserve(ids / batch + 1);
  cpu_times.reserve(ids / batch + 1);
  std::atomic<bool> done{false};
  std::vector<double> probe_times;
  probe_times.reserve(size_t{1} << 20);
  std::thread prober;
  if (probe) {
    prober = std::thread([&] {
      while (!done.load(std::memory_order_relaxed)) {
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        const double t0 = Now();
        void* p = mmap(nullptr, 64 << 10, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        if (p == MAP_FAILED) continue;
        std::memset(p, 1, 64 << 10);
        munmap(p, 64 << 10);
        probe_times.push_back(Now() - t0);
      }
    });
  }
  uint64_t state = 0x9E3779B97F4A7C15ull, inserted = 0;
  const double start = Now();
  for (uint64_t at = 0; at < ids; at += batch) {
    const size_t n = static_cast<size_t>(std::min<uint64_t>(batch, ids - at));
    for (size_t i = 0; i < n; ++i) {  // splitmix64: well spread, as insert_id hashes are
      uint64_t z = (state += 0x9E3779B97F4A7C15ull);
      z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
      z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
      hashes[i] = z ^ (z >> 31);
    }
    const double t0 = Now(), c0 = ThreadCpuSeconds();
    index.InsertMany(hashes.data(), n, static_cast<int64_t>(at / batch), added.get());
    times.push_back(Now() - t0);
    cpu_times.push_back(ThreadCpuSeconds() - c0);
    for (size_t i = 0; i < n; ++i) inserted += added[i];
  }
  const double wall = Now() - start;
  done = true;
  if (prober.joinable()) prober.join();
  double inserting = 0, inserting_cpu = 0;
  for (double t : times) inserting += t;
  for (double t : cpu_times) inserting_cpu += t;
  rusage u;
  getrusage(RUSAGE_SELF, &u);
  fmt::print("ids                        {} in batches of {} ({} added)\n", ids, batch, inserted);
  fmt::print("insert time                {:.2f} s ({:.0f} ids/s; {:.2f} s wall with generation)\n", inserting,
             static_cast<double>(ids) / inserting, wall);
  fmt::print("insert thread CPU          {:.2f} s ({:.0f} ids/s: steadier on a shared machine)\n", inserting_cpu,
             static_cast<double>(ids) / inserting_cpu);
  const size_t batches = times.size();
  const double p50 = Quantile(times, 0.5), p99 = Quantile(times, 0.99), p999 = Quantile(times, 0.999);
  fmt::print("batch insert ms            p50 {:.3f}, p99 {:.3f}, p99.9 {:.3f}, max {:.1f} ({} batches)\n", p50 * 1e3,
             p99 * 1e3, p999 * 1e3, times.back() * 1e3, batches);
  // CPU time leaves out the time the thread waited for a core (a time slice is ~4 ms).
  const double c99 = Quantile(cpu_times, 0.99), c999 = Quantile(cpu_times, 0.999);
  fmt::print("batch insert CPU ms        p50 {:.3f}, p99 {:.3f}, p99.9 {:.3f}, max {:.1f}\n",
             Quantile(cpu_times, 0.5) * 1e3, c99 * 1e3, c999 * 1e3, cpu_times.back() * 1e3);
  fmt::print("peak RSS                   {:.0f} MB\n", static_cast<double>(u.ru_maxrss) / 1024);
  if (probe) {
    const size_t probes = probe_times.size();
    const double q99 = Quantile(probe_times, 0.99), q999 = Quantile(probe_times, 0.999);
    fmt::print("probe (map+touch 64 KB) ms p99 {:.3f}, p99.9 {:.3f}, max {:.1f} ({} probes)\n", q99 * 1e3, q999 * 1e3,
               probe_times.empty() ? 0.0 : probe_times.back() * 1e3, probes);
  }
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  using namespace sibyl;
  CLI::App app{"Write-path stages of one bulk ingest: writer CPU, commit + checkpoint, parsing."};
  std::string file, data = "/tmp/sibyl-store-bench";
  uint64_t dedup_ids = 0;
  size_t batch = 1000;
  bool as_server = false, probe = false, reserve = false;
  app.add_option("--file", file, "NDJSON events to ingest");
  app.add_option("--data", data, "data directory to create (removed first)");
  app.add_option("--dedup-ids", dedup_ids, "instead: insert this many random ids into a de-dup index");
  app.add_option("--batch", batch, "--dedup-ids: ids a batch")->check(CLI::PositiveNumber);
  app.add_flag("--as-server", as_server, "--dedup-ids: memory as `sibyl serve` (4 KB pages, 2 MB prefault steps)");
  app.add_flag("--reserve", reserve, "--dedup-ids: reserve the index for every id first (no growth)");
  app.add_flag("--probe", probe, "--dedup-ids: time a second thread's 64 KB map + touch every millisecond");
  CLI11_PARSE(app, argc, argv);
  UseSibylHeapSettings();
  if (as_server) {
    prctl(PR_SET_THP_DISABLE, 1, 0, 0, 0);
    SetPrefaultStep(size_t{2} << 20);
  }
  if (dedup_ids > 0) return DedupBench(dedup_ids, batch, probe, reserve);
  if (file.empty()) {
    fmt::print(stderr, "store_bench: --file or --dedup-ids is required\n");
    return 2;
  }

  std::filesystem::remove_all(data);
  StoreOptions options;
  options.data_dir = data;
  auto opened = EventStore::Open(options);
  if (!opened.ok()) {
    fmt::print(stderr, "store_bench: {}\n", opened.status().ToString());
    return 1;
  }
  std::unique_ptr<EventStore> store = std::move(opened).value();
  auto begun = store->Begin();
  if (!begun.ok()) {
    fmt::print(stderr, "store_bench: {}\n", begun.status().ToString());
    return 1;
  }
  std::unique_ptr<Transaction> txn = std::move(begun).value();
  // As `sibyl ingest`: the de-dup index is sized for the file before parsing starts.
  const double reserve_start = Now();
  txn->ExpectEvents(std::filesystem::file_size(file) / 400);
  const double reserve_wall = Now() - reserve_start;

  FileParseOptions parse;
  parse.prepare = [&store](EventBatch& batch) { store->Prepare(batch); };
  double writer_cpu = 0;
  uint64_t events = 0;
  const double start_wall = Now(), start_cpu = ProcessCpuSeconds();
  auto parsed = ParseFile(file, parse, [&](EventBatch&& batch, std::vector<IngestError>&& errors) -> Status {
    if (!errors.empty()) return InvalidArgument("{}", errors.front().ToString());
    const double t0 = ThreadCpuSeconds();
    auto added = txn->Add(batch);
    writer_cpu += ThreadCpuSeconds() - t0;
    if (!added.ok()) return added.status();
    events += added->events_written;
    return Status::Ok();
  });
  if (!parsed.ok()) {
    fmt::print(stderr, "store_bench: {}\n", parsed.status().ToString());
    return 1;
  }
  const double staged_wall = Now(), staged_cpu = ProcessCpuSeconds();
  if (Status st = txn->Commit(); !st.ok()) {
    fmt::print(stderr, "store_bench: {}\n", st.ToString());
    return 1;
  }
  const double end_wall = Now(), end_cpu = ProcessCpuSeconds();
  const double per_m = 1e6 / static_cast<double>(std::max<uint64_t>(events, 1));
  fmt::print("events                     {}\n", events);
  fmt::print("de-dup index reserved      {:.2f} s wall (before the stages below)\n", reserve_wall);
  fmt::print("writer CPU in Add          {:.2f} s ({:.3f} s per 1M events)\n", writer_cpu, writer_cpu * per_m);
  fmt::print("parse + read CPU           {:.2f} s ({:.3f} s per 1M events)\n", staged_cpu - start_cpu - writer_cpu,
             (staged_cpu - start_cpu - writer_cpu) * per_m);
  fmt::print("staging wall               {:.2f} s\n", staged_wall - start_wall);
  fmt::print("commit + checkpoint        {:.2f} s wall, {:.2f} s CPU\n", end_wall - staged_wall, end_cpu - staged_cpu);
  fmt::print("total                      {:.2f} s wall, {:.2f} s CPU ({:.0f} events/s)\n", end_wall - start_wall,
             end_cpu - start_cpu, static_cast<double>(events) / (end_wall - start_wall));
  return 0;
}
