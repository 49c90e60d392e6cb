#include "pipeline/training_set.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include <fmt/format.h>

#include "common/memory.h"
#include "common/time.h"
#include "ml/clv.h"
#include "ml/split.h"

namespace sibyl::pipeline {
namespace {

using SteadyClock = std::chrono::steady_clock;

// Salt of the per-cutoff sample, distinct from ml's split salts so that which users are
// sampled says nothing about which side of the split they land on.
constexpr uint64_t kSampleSalt = 0x5eed'5a3b'1e00'0001ULL;

// Accumulates seconds per stage name (stacked cutoffs run each stage several times).
class StageClock {
 public:
  StageClock(std::vector<StageSeconds>& times, const std::function<void(std::string_view)>& on_stage)
      : times_(times), on_stage_(on_stage) {}
  ~StageClock() { Stop(); }
  void Start(std::string_view stage) {
    Stop();
    if (on_stage_) on_stage_(stage);
    current_ = stage;
    start_ = SteadyClock::now();
  }
  void Stop() {
    if (current_.empty()) return;
    double s = std::chrono::duration<double>(SteadyClock::now() - start_).count();
    auto it = std::find_if(times_.begin(), times_.end(), [&](const StageSeconds& t) { return t.stage == current_; });
    if (it == times_.end()) times_.push_back({current_, s});
    else it->seconds += s;
    current_.clear();
  }

 private:
  std::vector<StageSeconds>& times_;
  const std::function<void(std::string_view)>& on_stage_;
  std::string current_;
  SteadyClock::time_point start_;
};

std::string Day(int64_t ms) { return FormatTime(ms).substr(0, 10); }

TaxonomyOptions TaxonomyFor(const PredictionDefinition& definition, const CohortExpr& cohort,
                            TaxonomyOptions options) {
  std::vector<std::string> events, event_props, user_props;
  CollectNames(cohort, events, event_props, user_props);
  // The outcome's own history ("hours since last Purchase") is usually the best feature.
  if (!definition.outcome_event.empty()) events.push_back(definition.outcome_event);
  if (!definition.revenue_property.empty()) event_props.push_back(definition.revenue_property);
  for (auto* list : {&events, &event_props, &user_props}) {
    std::sort(list->begin(), list->end());
    list->erase(std::unique(list->begin(), list->end()), list->end());
  }
  options.required_event_types.insert(options.required_event_types.end(), events.begin(), events.end());
  options.required_event_properties.insert(options.required_event_properties.end(), event_props.begin(),
                                           event_props.end());
  options.required_user_properties.insert(options.required_user_properties.end(), user_props.begin(),
                                          user_props.end());
  return options;
}

bool IsPositive(float label) { return label != 0.0f; }

}  // namespace

void SampleUsers(UserSet& users, std::vector<std::string>& ids, uint64_t max_users, uint64_t seed) {
  if (users.actors.size() <= max_users) return;
  std::vector<uint64_t> hashes(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) hashes[i] = ml::MixHash(UserKey(ids[i]), kSampleSalt + seed);
  std::vector<uint64_t> sorted = hashes;
  std::nth_element(sorted.begin(), sorted.begin() + (max_users - 1), sorted.end());
  const uint64_t threshold = sorted[max_users - 1];
  size_t kept = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    if (hashes[i] > threshold || kept == max_users) continue;
    users.actors[kept] = users.actors[i];
    ids[kept] = std::move(ids[i]);
    ++kept;
  }
  users.actors.resize(kept);
  ids.resize(kept);
}

// The outcome family of a prediction: its outcome exactly as defined (churn without an
// event: any event; revenue: the amounts too), over windows that follow the horizon and
// the data's span. A window longer than the history before the oldest training cutoff
// would be cut short for every training row but not at scoring time (the model would
// learn a truncated version of it), so such windows are left out.
Result<OutcomeFamilySpec> OutcomeFamilyFor(const PredictionDefinition& definition, const LabelSpec& label,
                                           int64_t first_event_ms, int64_t oldest_cutoff_ms) {
  OutcomeFamilySpec outcome;
  outcome.enabled = true;
  outcome.event = label.event;
  outcome.where = label.where;
  outcome.unfiltered = !outcome.where.empty();
  if (definition.kind == PredictionKind::kRevenue) outcome.amount_property = label.revenue_property;
  outcome.horizon_days = definition.horizon_days;
  const double span_days = static_cast<double>(oldest_cutoff_ms - first_event_ms) / kMsPerDay;
  std::vector<int> windows = {7, 30, 90, 180, 365, definition.horizon_days};
  std::sort(windows.begin(), windows.end());
  windows.erase(std::unique(windows.begin(), windows.end()), windows.end());
  for (int w : windows)
    if (w <= span_days || outcome.window_days.empty()) outcome.window_days.push_back(w);
  return outcome;
}

namespace {

// BG/NBD on repeat summaries into `into`; returns what happened, in words.
std::string FitBgNbdInto(std::span<const std::optional<OutcomeRepeatSummary>> summaries, const char* what,
                         std::optional<OutcomeBgNbd>& into) {
  std::vector<ml::RfmSummary> customers;
  size_t repeaters = 0;
  for (const auto& s : summaries) {
    if (!s) continue;
    customers.push_back({s->x, s->t_x, s->age});
    repeaters += s->x > 0;
  }
  if (customers.size() < 50 || repeaters == 0)
    return fmt::format("BG/NBD not fitted: {} users with {}, {} repeating (needs 50 and 1)", customers.size(), what,
                       repeaters);
  auto fit = ml::FitBgNbd(customers);
  if (!fit.ok()) return fmt::format("BG/NBD not fitted: {}", fit.status().ToString());
  const ml::BgNbdParams& p = fit->params;
  for (double v : {p.r, p.alpha, p.a, p.b})
    if (!std::isfinite(v) || v <= 0) return fmt::format("BG/NBD not fitted: the fit gave a parameter of {}", v);
  into = OutcomeBgNbd{p.r, p.alpha, p.a, p.b};
  return fmt::format("BG/NBD fitted on {} users with {} (r {:.4g}, alpha {:.4g}, a {:.4g}, b {:.4g}; {} iterations{})",
                     customers.size(), what, p.r, p.alpha, p.a, p.b, fit->iterations,
                     fit->converged ? "" : ", stopped at the cap");
}

}  // namespace

// For the outcome family's P(alive) / P(outcome within H) / expected-occurrence columns.
// Training calls it at the oldest training cutoff, so no stacked cutoff's label window is
// seen. Too little history to fit (fewer than 50 users with the outcome, or nobody
// repeating) leaves the columns out.
Result<std::string> FitOutcomeModels(const QueryEngine& engine, int64_t cutoff_ms, uint64_t max_users, uint64_t seed,
                                     OutcomeFamilySpec& outcome) {
  CohortExpr base = CohortExpr::Everyone();
  if (!outcome.event.empty()) {
    // The event without its filters: a superset of who did the filtered outcome too (users
    // who never did the outcome itself have no summary and are left out of its fit).
    base.kind = CohortExpr::Kind::kPerformed;
    base.event = outcome.event;
  }
  ASSIGN_OR_RETURN(UserSet users, engine.Cohort(base, cutoff_ms));
  if (users.actors.size() > max_users) {  // the ids (strings) only when sampling needs them
    std::vector<std::string> ids = engine.UserIds(users);
    SampleUsers(users, ids, max_users, seed);
  }
  ASSIGN_OR_RETURN(auto summaries, engine.RepeatSummaries(outcome, cutoff_ms, users));
  std::string note = FitBgNbdInto(summaries, "the outcome, in the cohort or not", outcome.bgnbd);
  if (outcome.unfiltered) {
    OutcomeFamilySpec unfiltered = outcome;  // the event without its filters
    unfiltered.where.clear();
    unfiltered.amount_property.clear();
    ASSIGN_OR_RETURN(summaries, engine.RepeatSummaries(unfiltered, cutoff_ms, users));
    note += "; without the filters: " + FitBgNbdInto(summaries, "the event", outcome.unfiltered_bgnbd);
  }
  return note;
}

std::vector<uint32_t> OutcomeColumnsOf(const FeatureSpec& spec) {
  std::vector<uint32_t> columns;
  if (!spec.outcome.enabled) return columns;
  const size_t k = spec.ColumnNames().size();
  const size_t family = OutcomeColumnNames(spec.outcome).size();
  // The family's columns are the layout's last ones (feature_spec.cc, ColumnNames).
  for (size_t j = k - family; j < k; ++j) columns.push_back(static_cast<uint32_t>(j));
  return columns;
}

std::optional<ml::TrainOptions::BgNbdCandidate> BgNbdCandidateFor(const FeatureSpec& spec, PredictionKind kind,
                                                                  std::span<const float> rows) {
  if (!spec.outcome.enabled || !spec.outcome.bgnbd) return std::nullopt;
  const size_t k = spec.ColumnNames().size();
  const size_t family = OutcomeColumnNames(spec.outcome).size(), base = k - family;
  const size_t scales = spec.outcome.window_days.size() + 1;
  ml::TrainOptions::BgNbdCandidate c;
  // Positions in the family's order (feature_spec.cc, OutcomeColumnNames): the BG/NBD
  // columns come last, after counts, active days and (revenue) sums over every scale.
  c.columns.probability = k - 2;
  c.columns.expected_days = k - 1;
  c.columns.active_days = base + 2 * scales - 1;
  c.columns.amount = spec.outcome.amount_property.empty() ? c.columns.active_days : base + 3 * scales - 1;
  const OutcomeBgNbd& b = *spec.outcome.bgnbd;
  const ml::BgNbdParams params{b.r, b.alpha, b.a, b.b};
  const ml::RfmSummary newcomer{0, 0, 0};
  const double horizon = spec.outcome.horizon_days;
  c.prior = ml::BgNbdProbAnyWithin(params, newcomer, horizon);
  if (kind == PredictionKind::kChurn) c.output = ml::BgNbdModel::Output::kOneMinusProbability;
  if (kind == PredictionKind::kRevenue) {
    c.output = ml::BgNbdModel::Output::kAmount;
    double amount = 0, days = 0;
    for (size_t r = 0; r + 1 <= rows.size() / k; ++r) {
      const float a = rows[r * k + c.columns.amount], d = rows[r * k + c.columns.active_days];
      if (std::isfinite(a) && d > 0) {
        amount += a;
        days += d;
      }
    }
    c.prior = ml::BgNbdExpectedTransactions(params, newcomer, horizon) * (days > 0 ? amount / days : 0.0);
    if (!std::isfinite(c.prior) || c.prior < 0) c.prior = 0;
  }
  return c;
}

ml::TaskKind TaskFor(PredictionKind kind) {
  return kind == PredictionKind::kRevenue ? ml::TaskKind::kRegression : ml::TaskKind::kClassification;
}

int64_t DefaultAsOf(const EventReader& reader, int64_t now_ms) {
  return std::min(reader.max_time_ms(), now_ms);
}

int64_t TrainCutoff(int64_t as_of_ms, int horizon_days) {
  return FloorHour(as_of_ms - static_cast<int64_t>(horizon_days) * kMsPerDay);
}

std::vector<int64_t> StackedCutoffs(int64_t train_cutoff_ms, int stack) {
  std::vector<int64_t> cutoffs;
  for (int k = 0; k <= std::max(0, stack); ++k) cutoffs.push_back(train_cutoff_ms - k * kMsPerWeek);
  return cutoffs;
}

int AutoStackWeeks(int horizon_days, const TrainingSetOptions& options) {
  const int within_span = (options.auto_stack_span_days - horizon_days) / 7;
  return std::max(options.auto_stack_max, std::min(within_span, options.auto_deep_stack_max));
}

std::vector<int64_t> CandidateCutoffs(int64_t train_cutoff_ms, int horizon_days, const TrainingSetOptions& options) {
  return StackedCutoffs(train_cutoff_ms, options.stack == TrainingSetOptions::kAutoStack
                                             ? AutoStackWeeks(horizon_days, options)
                                             : options.stack);
}

uint64_t UserKey(std::string_view row_id) {
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : row_id) {
    h ^= c;
    h *= 0x100000001b3ULL;
  }
  return h;
}

Status CheckHistory(const EventReader& reader, int64_t earliest_cutoff_ms, const EligibilityOptions& options) {
  const int64_t first = reader.min_time_ms();
  const int64_t needed_from = earliest_cutoff_ms - static_cast<int64_t>(options.min_history_days) * kMsPerDay;
  if (reader.event_count() == 0 || first == INT64_MAX) {
    return FailedPrecondition("not eligible: the store holds no events (ingest some first)");
  }
  if (first > needed_from) {
    const double found_days = std::max<double>(0, static_cast<double>(earliest_cutoff_ms - first) / kMsPerDay);
    return FailedPrecondition(
        "not eligible: the data before the training cutoff {} spans {:.1f} days (from {}); the weekly "
        "feature windows need {} days of history (events from {} or earlier). Use a later --as-of, fewer "
        "--stack cutoffs, a shorter horizon, or ingest older events",
        FormatTime(earliest_cutoff_ms), found_days, Day(first), options.min_history_days, Day(needed_from));
  }
  return Status::Ok();
}

Status CheckLabelCounts(PredictionKind kind, uint64_t positives, uint64_t negatives,
                        const std::vector<CutoffSummary>& summaries, const EligibilityOptions& options) {
  if (positives >= options.min_positives && negatives >= options.min_negatives) return Status::Ok();
  const char* pos_word = kind == PredictionKind::kChurn     ? "users who churned"
                         : kind == PredictionKind::kRevenue ? "users with revenue"
                                                            : "users who did the outcome";
  const char* neg_word = kind == PredictionKind::kChurn     ? "users who stayed"
                         : kind == PredictionKind::kRevenue ? "users without revenue"
                                                            : "users who did not";
  std::string per_cutoff;
  for (const CutoffSummary& s : summaries) {
    per_cutoff += fmt::format("{}{}: {} of {}", per_cutoff.empty() ? "" : "; ", FormatTime(s.cutoff_ms),
                              s.positives, s.rows);
  }
  return FailedPrecondition(
      "not eligible: found {} {} and {} {} in the cohort ({}); training needs at least {} and {}. "
      "Widen the cohort, lengthen the horizon, or stack earlier cutoffs (--stack)",
      positives, pos_word, negatives, neg_word, per_cutoff, options.min_positives, options.min_negatives);
}

Result<TrainingSet> BuildTrainingSet(const EventReader& reader, const QueryEngine& engine,
                                     const PredictionDefinition& definition,
                                     const std::vector<int64_t>& cutoffs, const TrainingSetOptions& options) {
  if (cutoffs.empty()) return InvalidArgument("no training cutoff");
  TrainingSet set;
  set.cutoffs = cutoffs;
  StageClock clock(set.stage_times, options.on_stage);
  const bool automatic = options.stack == TrainingSetOptions::kAutoStack;

  clock.Start("eligibility");
  RETURN_IF_ERROR(ValidateAgainstStore(definition, reader));
  if (automatic) {
    // Automatic stacking leaves out the older weeks that lack history instead of failing.
    while (set.cutoffs.size() > 1 && !CheckHistory(reader, set.cutoffs.back(), options.eligibility).ok())
      set.cutoffs.pop_back();
  }
  RETURN_IF_ERROR(
      CheckHistory(reader, *std::min_element(set.cutoffs.begin(), set.cutoffs.end()), options.eligibility));
  ASSIGN_OR_RETURN(LabelSpec label, ToLabelSpec(definition));
  ASSIGN_OR_RETURN(CohortExpr cohort, ToCohort(definition));

  struct PerCutoff {
    UserSet users;
    std::vector<std::string> ids;
    std::vector<float> labels;
  };
  std::vector<PerCutoff> parts(set.cutoffs.size());
  uint64_t rows_so_far = 0;
  for (size_t c = 0; c < set.cutoffs.size(); ++c) {
    clock.Start("cohort");
    PerCutoff& part = parts[c];
    ASSIGN_OR_RETURN(part.users, engine.Cohort(cohort, set.cutoffs[c]));
    part.ids = engine.UserIds(part.users);
    CutoffSummary summary{.cutoff_ms = set.cutoffs[c], .cohort_users = part.users.actors.size()};
    SampleUsers(part.users, part.ids, options.max_users, options.seed);
    summary.rows = part.users.actors.size();
    clock.Start("labels");
    ASSIGN_OR_RETURN(part.labels, engine.Labels(label, set.cutoffs[c], part.users));
    for (float y : part.labels) {
      summary.positives += IsPositive(y);
      summary.label_sum += y;
    }
    set.positives += summary.positives;
    set.negatives += summary.rows - summary.positives;
    set.summaries.push_back(summary);
    rows_so_far += summary.rows;
    // Automatic stacking stops once there are rows enough and both classes are eligible;
    // the weeks past `auto_stack_max` are for small cohorts only.
    const bool next_is_deep = static_cast<int>(c) + 1 > options.auto_stack_max;
    const uint64_t enough_rows =
        next_is_deep ? std::min(options.auto_stack_rows, options.auto_deep_stack_rows) : options.auto_stack_rows;
    if (automatic && rows_so_far >= enough_rows &&
        set.positives >= options.eligibility.min_positives && set.negatives >= options.eligibility.min_negatives) {
      parts.resize(c + 1);
      set.cutoffs.resize(c + 1);
      break;
    }
  }
  clock.Start("eligibility");
  RETURN_IF_ERROR(CheckLabelCounts(definition.kind, set.positives, set.negatives, set.summaries, options.eligibility));

  // One taxonomy for every stacked cutoff, from the newest: the columns must line up, and
  // the newest data is what scoring will look like.
  clock.Start("taxonomy");
  ASSIGN_OR_RETURN(set.spec.taxonomy,
                   engine.BuildTaxonomy(set.cutoffs.front(), TaxonomyFor(definition, cohort, options.taxonomy)));
  clock.Start("outcome history");
  ASSIGN_OR_RETURN(set.spec.outcome, OutcomeFamilyFor(definition, label, reader.min_time_ms(), set.cutoffs.back()));
  ASSIGN_OR_RETURN(set.outcome_model_note, FitOutcomeModels(engine, set.cutoffs.back(), options.customer_base_users,
                                                            options.seed, set.spec.outcome));
  const std::vector<std::string> columns = set.spec.ColumnNames();
  const size_t p = columns.size();
  size_t total_rows = 0;
  for (const PerCutoff& part : parts) total_rows += part.labels.size();

  set.data.kind = TaskFor(definition.kind);
  set.data.feature_names = columns;
  // One prefaulted allocation for every cutoff's rows (first touches of fresh pages are
  // what a copy of this size costs on a virtual machine).
  ReservePrefaulted(set.data.values, total_rows * p);
  set.data.labels.reserve(total_rows);
  set.data.user_keys.reserve(total_rows);
  set.row_ids.reserve(total_rows);
  set.row_cutoff.reserve(total_rows);
  set.data.row_groups.reserve(total_rows);
  for (size_t c = 0; c < set.cutoffs.size(); ++c) {
    clock.Start("features");
    PerCutoff& part = parts[c];
    ASSIGN_OR_RETURN(FeatureMatrix matrix, engine.Features(set.spec, set.cutoffs[c], part.users));
    if (matrix.cols() != p || matrix.rows() != part.labels.size())
      return Internal("feature matrix is {}x{}, expected {}x{}", matrix.rows(), matrix.cols(), part.labels.size(), p);
    clock.Start("dataset");
    // Rows go in the order of their user keys (then ids), not the store's dense ids, which
    // follow arrival order: the same events ingested in another order must give the
    // learners the same rows in the same order, hence byte-identical models and scores.
    std::vector<uint64_t> keys(part.ids.size());
    std::vector<uint32_t> order(part.ids.size());
    for (size_t r = 0; r < part.ids.size(); ++r) {
      keys[r] = UserKey(part.ids[r]);
      order[r] = static_cast<uint32_t>(r);
    }
    std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) {
      return keys[a] != keys[b] ? keys[a] < keys[b] : part.ids[a] < part.ids[b];
    });
    for (uint32_t r : order) {
      set.data.values.insert(set.data.values.end(), matrix.values.data() + r * p,
                             matrix.values.data() + (r + 1) * p);
      // One key per user for all its rows: a user never sits on both sides of the split.
      set.data.user_keys.push_back(keys[r]);
      set.data.labels.push_back(part.labels[r]);
      set.row_cutoff.push_back(static_cast<uint32_t>(c));
      set.data.row_groups.push_back(static_cast<uint32_t>(c));
      set.row_ids.push_back(std::move(part.ids[r]));
    }
    part = PerCutoff{};
  }
  clock.Stop();
  return set;
}

Result<ScoringRows> BuildScoringRows(const EventReader& reader, const QueryEngine& engine,
                                     const PredictionDefinition& definition, const FeatureSpec& spec,
                                     int64_t cutoff_ms, bool with_labels) {
  ASSIGN_OR_RETURN(CohortExpr cohort, ToCohort(definition));
  ASSIGN_OR_RETURN(UserSet users, engine.Cohort(cohort, cutoff_ms));
  ScoringRows rows;
  rows.row_ids = engine.UserIds(users);
  ASSIGN_OR_RETURN(FeatureMatrix matrix, engine.Features(spec, cutoff_ms, users));
  const size_t n = matrix.rows() * matrix.cols();
  rows.values.assign(matrix.values.data(), matrix.values.data() + n);
  if (with_labels) {
    ASSIGN_OR_RETURN(LabelSpec label, ToLabelSpec(definition));
    ASSIGN_OR_RETURN(rows.labels, engine.Labels(label, cutoff_ms, users));
  }
  return rows;
}

}  // namespace sibyl::pipeline
