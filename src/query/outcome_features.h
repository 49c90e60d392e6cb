// The outcome family of the feature query (docs/FEATURES.md, "The outcome family"): how
// often, how regularly and how recently each row did the thing being predicted, before
// the cutoff, over several time scales, plus the BG/NBD quantities when the spec carries
// fitted parameters. Computed from one scan of the outcome's events (query/outcome_scan.h)
// and appended after every other family's columns.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "common/status.h"
#include "query/feature_spec.h"
#include "query/outcome_scan.h"
#include "store/reader.h"

namespace sibyl {

// Rows x OutcomeColumnNames(spec).size() values, row-major, in `rows` order. A row's events
// are its own and those of devices linked to it before the cutoff (as for every feature).
Result<std::vector<float>> ComputeOutcomeColumns(const EventReader& reader, const OutcomeFamilySpec& spec,
                                                 int64_t cutoff_ms, std::span<const ActorId> rows,
                                                 bool parallel);

// The values of a row that never did the outcome: 0 for counts and sums, 1 for "never",
// NaN (missing) for every time, gap and BG/NBD column: "never" is its own signal, not a
// capped number.
std::vector<float> OutcomeEmptyValues(const OutcomeFamilySpec& spec);

// Writes rows' values from their day records (one per day, time ascending): the
// outcome's, and with `spec.unfiltered` the records of its event without the filters.
// The empty row and the window totals are set up once, not per row (a scoring block has
// hundreds of thousands of rows).
class OutcomeRowWriter {
 public:
  explicit OutcomeRowWriter(const OutcomeFamilySpec& spec);
  void Write(std::span<const query_internal::OutcomeDay> days,
             std::span<const query_internal::OutcomeDay> unfiltered_days, int64_t cutoff_ms, float* out);

 private:
  struct Totals {
    double count = 0, days = 0, amount = 0;
  };
  // Sums `days` over every window (the last: all history) into totals_.
  void Total(std::span<const query_internal::OutcomeDay> days);

  const OutcomeFamilySpec& spec_;
  std::vector<float> empty_;
  std::vector<Totals> totals_;
};

// The outcome history a BG/NBD model reads, in days: x repeat active days, t_x from the
// first to the last occurrence, age from the first occurrence to the cutoff. Rows that
// never did the outcome have none.
struct OutcomeRepeatSummary {
  double x = 0, t_x = 0, age = 0;
};
std::optional<OutcomeRepeatSummary> RepeatSummaryOf(std::span<const query_internal::OutcomeDay> days,
                                                    int64_t cutoff_ms);

// RepeatSummaryOf for every row of `rows` at the cutoff.
Result<std::vector<std::optional<OutcomeRepeatSummary>>> ComputeRepeatSummaries(
    const EventReader& reader, const OutcomeFamilySpec& spec, int64_t cutoff_ms, std::span<const ActorId> rows,
    bool parallel);

}  // namespace sibyl
