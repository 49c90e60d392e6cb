// The store's write path, stage by stage, on a real ingest of an NDJSON file (not a timed
// test): store_bench --file PATH [--data DIR]
//   Runs what `sibyl ingest` runs (the de-dup index sized for the file, parse threads with
//   the store's Prepare, one bulk transaction, its commit and checkpoint) and reports: the
//   wall time of the index's reservation; the CPU seconds of the single writer thread
//   inside Transaction::Add (per 1M events); the wall and process CPU of the commit (which
//   checkpoints); and the process CPU of everything else (parsing). Thread CPU time is
//   steadier than wall time on a shared machine, though still within ~10% from run to
//   run: compare writer changes by it, in alternating runs.
#include <sys/resource.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <filesystem>
#include <string>

#include <CLI/CLI.hpp>
#include <fmt/format.h>

#include "ingest/file_source.h"
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

}  // namespace

int main(int argc, char** argv) {
  using namespace sibyl;
  CLI::App app{"Write-path stages of one bulk ingest: writer CPU, commit + checkpoint, parsing."};
  std::string file, data = "/tmp/sibyl-store-bench";
  app.add_option("--file", file, "NDJSON events to ingest")->required();
  app.add_option("--data", data, "data directory to create (removed first)");
  CLI11_PARSE(app, argc, argv);

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
