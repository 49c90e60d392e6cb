// `sibyl generate`: simulate a product's events (src/sim, docs/SIMULATOR.md).
#include <cstdio>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "common/progress.h"
#include "common/time.h"
#include "sim/generator.h"

namespace sibyl {
namespace {

struct GenerateFlags {
  sim::SimOptions options;
  std::string start = "2024-01-01";
  std::string cutoff;
  std::vector<int> horizons;
  std::string truth_horizons;  // "7,14"
  std::string regime = "app";
  std::string bgnbd;        // "r,alpha,a,b"
  std::string gamma_gamma;  // "p,q,v"
  std::string seasonality;  // "amplitude[,peak_day]"
};

// "0.243,30.9,0.793,2.426" -> exactly `count` positive numbers.
Result<std::vector<double>> ParseNumberList(const std::string& flag, const std::string& text, size_t count,
                                            const char* names) {
  std::vector<double> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      size_t used = 0;
      double value = std::stod(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      out.push_back(value);
    } catch (const std::exception&) {
      return InvalidArgument("{}: '{}' is not a number (expected {})", flag, item, names);
    }
  }
  if (out.size() != count) {
    return InvalidArgument("{}: expected {} numbers {}, got '{}'", flag, count, names, text);
  }
  return out;
}

Result<std::vector<int>> ParseHorizonList(const std::string& text) {
  std::vector<int> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (item.empty()) continue;
    try {
      size_t used = 0;
      int value = std::stoi(item, &used);
      if (used != item.size()) throw std::invalid_argument(item);
      out.push_back(value);
    } catch (const std::exception&) {
      return InvalidArgument("--truth-horizons: '{}' is not a whole number of days", item);
    }
  }
  return out;
}

void RunGenerate(GenerateFlags& flags, const GlobalOptions& global) {
  sim::SimOptions& options = flags.options;
  auto start = ParseTime(flags.start);
  if (!start.ok()) Check(InvalidArgument("--start: cannot parse '{}'", flags.start));
  options.start_ms = *start;
  if (!flags.cutoff.empty()) {
    auto cutoff = ParseTime(flags.cutoff);
    if (!cutoff.ok()) Check(InvalidArgument("--cutoff: cannot parse '{}'", flags.cutoff));
    options.cutoff_ms = *cutoff;
  }
  if (flags.regime == "bgnbd") {
    options.regime = sim::Regime::kBgNbd;
    if (!flags.bgnbd.empty()) {
      auto v = Check(ParseNumberList("--bgnbd", flags.bgnbd, 4, "r,alpha,a,b"));
      options.bgnbd.r = v[0], options.bgnbd.alpha = v[1], options.bgnbd.a = v[2], options.bgnbd.b = v[3];
    }
    if (!flags.gamma_gamma.empty()) {
      auto v = Check(ParseNumberList("--gamma-gamma", flags.gamma_gamma, 3, "p,q,v"));
      options.bgnbd.spend_p = v[0], options.bgnbd.spend_q = v[1], options.bgnbd.spend_v = v[2];
    }
    if (!flags.seasonality.empty()) {
      const bool with_peak = flags.seasonality.find(',') != std::string::npos;
      auto v = Check(ParseNumberList("--seasonality", flags.seasonality, with_peak ? 2 : 1, "amplitude[,peak_day]"));
      options.bgnbd.seasonal_amplitude = v[0];
      if (with_peak) options.bgnbd.seasonal_peak_day = v[1];
    }
  } else if (flags.regime == "app") {
    if (!flags.bgnbd.empty() || !flags.gamma_gamma.empty() || !flags.seasonality.empty()) {
      Check(InvalidArgument("--bgnbd, --gamma-gamma and --seasonality need --regime bgnbd"));
    }
  } else {
    Check(InvalidArgument("--regime must be app or bgnbd, got '{}'", flags.regime));
  }
  options.horizon_days = flags.horizons;
  for (int h : Check(ParseHorizonList(flags.truth_horizons))) options.horizon_days.push_back(h);
  Check(sim::ValidateOptions(options));
  if (global.json && options.out_path == "-") {
    Check(InvalidArgument("--json prints a summary on stdout, so the events need --out FILE"));
  }

  Progress progress("generate", options.users, "users");
  options.on_progress = [&](uint64_t users, uint64_t) { progress.Update(users); };
  sim::SimSummary summary = Check(sim::Generate(options));
  progress.Finish();

  const double events_per_second = summary.seconds > 0 ? summary.events / summary.seconds : 0;
  const double bytes_per_event = summary.events ? static_cast<double>(summary.bytes) / summary.events : 0;
  if (global.json) {
    nlohmann::json j = {
        {"users", summary.users},
        {"known_users", summary.known_users},
        {"events", summary.events},
        {"identify_lines", summary.identifies},
        {"anonymous_events", summary.anonymous_events},
        {"bytes", summary.bytes},
        {"bytes_per_event", bytes_per_event},
        {"seconds", summary.seconds},
        {"events_per_second", events_per_second},
        {"seed", options.seed},
        {"regime", sim::RegimeName(options.regime)},
        {"start", FormatTime(summary.first_time_ms)},
        {"end", FormatTime(summary.end_time_ms)},
        {"out", options.out_path},
    };
    if (options.regime == sim::Regime::kBgNbd) {
      const sim::BgNbdRegime& m = options.bgnbd;
      j["bgnbd"] = {{"r", m.r}, {"alpha_days", m.alpha}, {"a", m.a}, {"b", m.b}};
      j["gamma_gamma"] = {{"p", m.spend_p}, {"q", m.spend_q}, {"v", m.spend_v}};
      j["seasonality"] = {{"amplitude", m.seasonal_amplitude}, {"peak_day", m.seasonal_peak_day}};
    }
    if (!options.truth_path.empty()) {
      j["truth"] = {{"path", options.truth_path},
                    {"cutoff", FormatTime(options.cutoff_ms)},
                    {"horizon_days", options.horizon_days},
                    {"users", summary.truth_rows}};
    }
    std::fputs((j.dump() + "\n").c_str(), stdout);
    return;
  }
  // The summary goes to stderr when the events go to stdout, so pipes stay clean.
  FILE* report = options.out_path == "-" ? stderr : stdout;
  std::string line = fmt::format(
      "generated {} events ({} identify, {} anonymous) for {} users ({} regime), {} to {}, {:.1f} MB, "
      "{:.0f} bytes/event, {:.2f} s, {:.0f} events/s",
      summary.events, summary.identifies, summary.anonymous_events, summary.users, sim::RegimeName(options.regime),
      FormatTime(summary.first_time_ms),
      FormatTime(summary.end_time_ms), summary.bytes / 1e6, bytes_per_event, summary.seconds, events_per_second);
  if (!options.truth_path.empty()) {
    line += fmt::format("; truth for {} users at {} in {}", summary.truth_rows, FormatTime(options.cutoff_ms),
                        options.truth_path);
  }
  std::fprintf(report, "%s\n", line.c_str());
}

}  // namespace

void AddGenerateCommand(CLI::App& app, const GlobalOptions& global) {
  auto flags = std::make_shared<GenerateFlags>();
  CLI::App* cmd = app.add_subcommand(
      "generate",
      "Simulate an e-commerce app's events as Amplitude-shaped NDJSON (deterministic for a seed; see "
      "docs/SIMULATOR.md). With --cutoff, --truth and horizons, also write each user's true probability of "
      "purchasing and of churning in [cutoff, cutoff + horizon). --regime bgnbd simulates BG/NBD buyers "
      "instead (Purchase events with Gamma-Gamma revenue; truth = P(a purchase in the window)).");
  sim::SimOptions& o = flags->options;
  cmd->add_option("--users", o.users, "number of users to simulate")->capture_default_str();
  cmd->add_option("--days", o.days, "length of the simulated span in days")->capture_default_str();
  cmd->add_option("--seed", o.seed, "random seed; the same seed gives the same bytes")->capture_default_str();
  cmd->add_option("--start", flags->start, "start of the span: ISO-8601 date/time or epoch ms")
      ->capture_default_str();
  cmd->add_option("--out", o.out_path, "NDJSON output file, '-' for stdout")->capture_default_str();
  cmd->add_option("--threads", o.threads, "worker threads (0: one per core); does not change the output")
      ->capture_default_str();
  cmd->add_option("--regime", flags->regime,
                  "what users do: app (the e-commerce app) or bgnbd (BG/NBD buyers with Gamma-Gamma spend)")
      ->capture_default_str();
  cmd->add_option("--bgnbd", flags->bgnbd,
                  "bgnbd regime: r,alpha,a,b with alpha in days (default 0.243,30.9,0.793,2.426, CDNow's fit)");
  cmd->add_option("--gamma-gamma", flags->gamma_gamma,
                  "bgnbd regime: spend p,q,v in dollars (default 6.25,3.74,15.44, CDNow's fit)");
  cmd->add_option("--seasonality", flags->seasonality,
                  "bgnbd regime: purchase rate x (1 + A cos(2 pi (day of year - peak) / 365.25)), as A[,peak] "
                  "with A in [0, 1) (default 0: none; peak 330, late November)");
  cmd->add_option("--cutoff", flags->cutoff, "cutoff T for the truth file: ISO-8601 or epoch ms");
  cmd->add_option("--horizon-days", flags->horizons, "horizon H in days (repeatable)");
  cmd->add_option("--truth-horizons", flags->truth_horizons, "horizons as a list, e.g. 7,14");
  cmd->add_option("--truth", o.truth_path,
                  "CSV of true probabilities: user_id, then purchase_Hd, churn_Hd for each horizon");
  cmd->callback([flags, &global] { RunGenerate(*flags, global); });
}

}  // namespace sibyl
