// Segment encode and merge speed on generated rows shaped like the simulator's batches
// (not a timed test): segment_bench [--inputs K] [--rows N]
//   Build K segments of N events (sessions, ~2.3 properties an event), then times
//   Encode(1) of each (the write-ahead log's copy), and MergeByPartition of all of them
//   into weekly partitions in waves (the checkpoint's merge), in CPU seconds.
#include <sys/resource.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>

#include "store/segment.h"

namespace {
double CpuSeconds() {
  rusage u;
  getrusage(RUSAGE_THREAD, &u);
  return u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + u.ru_stime.tv_sec + u.ru_stime.tv_usec / 1e6;
}
}  // namespace

int main(int argc, char** argv) {
  int inputs = 300, rows = 12000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--inputs")) inputs = std::atoi(argv[i + 1]);
    if (!std::strcmp(argv[i], "--rows")) rows = std::atoi(argv[i + 1]);
  }
  using namespace sibyl;
  std::mt19937_64 rng(3);
  std::vector<std::shared_ptr<const Segment>> segments;
  const int64_t start = 1'704'067'200'000, span = 90 * 86'400'000LL;
  for (int k = 0; k < inputs; ++k) {
    std::vector<EncodedEvent> events;
    std::vector<EncodedProperty> props;
    ActorId first_actor = static_cast<ActorId>(k * 40);
    for (int i = 0; i < rows; ++i) {
      uint32_t begin = static_cast<uint32_t>(props.size());
      props.push_back({static_cast<DictId>(rng() % 3), {ValueKind::kString, 0, static_cast<DictId>(rng() % 30)}});
      if (rng() % 3 == 0) props.push_back({3, {ValueKind::kNumber, static_cast<double>(rng() % 10000) / 100, kNoDictId}});
      if (rng() % 3 == 0) props.push_back({4, {ValueKind::kString, 0, static_cast<DictId>(rng() % 20000)}});
      int64_t time = start + static_cast<int64_t>(rng() % span);
      events.push_back({first_actor + static_cast<ActorId>(rng() % 300), static_cast<EventTypeId>(rng() % 20), time,
                        time - static_cast<int64_t>(rng() % 3'600'000), begin, static_cast<uint32_t>(props.size())});
    }
    segments.push_back(Segment::Build(events, props));
  }
  double cpu0 = CpuSeconds();
  size_t bytes = 0;
  for (const auto& s : segments) bytes += s->Encode(1).size();
  double encode = CpuSeconds() - cpu0;
  cpu0 = CpuSeconds();
  size_t merged_rows = 0;
  Status st = Segment::MergeEachPartition(segments, 7 * 86'400'000LL, [&](std::shared_ptr<const Segment> p) {
    merged_rows += p->size();
    return Status::Ok();
  });
  double merge = CpuSeconds() - cpu0;
  std::printf("%d x %d rows: Encode(1) %.3f CPU-s (%zu MB), merge into weeks %.3f CPU-s of the calling thread (%zu rows, %s)\n",
              inputs, rows, encode, bytes >> 20, merge, merged_rows, st.ok() ? "ok" : "failed");
  return 0;
}
