// generate_bench: how fast the simulator writes NDJSON. Reports events/s, MB/s and
// bytes/event for one run of the generator to a file.
//
//   generate_bench [--users 100000] [--days 90] [--threads 0] [--out /tmp/sibyl_generate_bench.ndjson]
//                  [--keep]
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>

#include "sim/generator.h"

int main(int argc, char** argv) {
  namespace sim = sibyl::sim;
  sim::SimOptions options;
  options.users = 100000;
  options.days = 90;
  options.out_path = "/tmp/sibyl_generate_bench.ndjson";
  bool keep = false;
  for (int i = 1; i < argc; ++i) {
    std::string flag = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "generate_bench: %s needs a value\n", flag.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (flag == "--users") options.users = std::strtoull(value(), nullptr, 10);
    else if (flag == "--days") options.days = std::atoi(value());
    else if (flag == "--threads") options.threads = std::atoi(value());
    else if (flag == "--out") options.out_path = value();
    else if (flag == "--keep") keep = true;
    else {
      std::fprintf(stderr, "usage: generate_bench [--users N] [--days D] [--threads T] [--out FILE] [--keep]\n");
      return 2;
    }
  }
  auto summary = sim::Generate(options);
  if (!summary.ok()) {
    std::fprintf(stderr, "generate_bench: %s\n", summary.status().ToString().c_str());
    return 1;
  }
  const sim::SimSummary& s = *summary;
  std::printf("generate: %llu users, %llu events, %.1f MB to %s in %.2f s: %.0f events/s, %.0f MB/s, %.1f bytes/event\n",
              static_cast<unsigned long long>(s.users), static_cast<unsigned long long>(s.events), s.bytes / 1e6,
              options.out_path.c_str(), s.seconds, s.events / s.seconds, s.bytes / 1e6 / s.seconds,
              static_cast<double>(s.bytes) / static_cast<double>(s.events));
  if (!keep && options.out_path != "-" && options.out_path != "/dev/null") ::unlink(options.out_path.c_str());
  return 0;
}
