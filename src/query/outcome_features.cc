#include "query/outcome_features.h"

#include <cassert>
#include <cmath>
#include <limits>

#include "common/time.h"
#include "ml/clv.h"
#include "query/scan_util.h"

namespace sibyl {
namespace {

constexpr float kMissing = std::numeric_limits<float>::quiet_NaN();

// The columns of the outcome's own history: counts, active days, sums, never, five times
// and gaps, the share of recent days (OutcomeEmptyValues lists them).
size_t OwnColumnCount(const OutcomeFamilySpec& spec) {
  const size_t scales = spec.window_days.size() + 1;
  return 2 * scales + (spec.amount_property.empty() ? 0 : scales) + 1 + 5 + (spec.window_days.size() >= 2 ? 1 : 0);
}

}  // namespace

std::vector<float> OutcomeEmptyValues(const OutcomeFamilySpec& spec) {
  const size_t scales = spec.window_days.size() + 1;
  std::vector<float> values;
  values.insert(values.end(), 2 * scales, 0.0f);                               // counts, active days
  if (!spec.amount_property.empty()) values.insert(values.end(), scales, 0.0f);  // sums
  values.push_back(1.0f);                                                       // never
  values.insert(values.end(), 5, kMissing);  // since last, since first, mean gap, last gap, ratio
  if (spec.window_days.size() >= 2) values.push_back(kMissing);  // share of recent days
  assert(values.size() == OwnColumnCount(spec));
  if (spec.unfiltered) {
    values.insert(values.end(), 2 * scales, 0.0f);  // unfiltered counts, active days
    values.insert(values.end(), 2, kMissing);       // since last unfiltered, share passing
    if (spec.unfiltered_bgnbd) values.insert(values.end(), 2, kMissing);
  }
  if (spec.bgnbd) values.insert(values.end(), 3, kMissing);
  return values;
}

std::optional<OutcomeRepeatSummary> RepeatSummaryOf(std::span<const query_internal::OutcomeDay> days,
                                                    int64_t cutoff_ms) {
  if (days.empty()) return std::nullopt;
  const int64_t first = days.front().first_ms, last = days.back().last_ms;
  OutcomeRepeatSummary s;
  s.x = static_cast<double>(days.size() - 1);
  s.t_x = s.x == 0 ? 0.0 : static_cast<double>(last - first) / kMsPerDay;
  s.age = static_cast<double>(cutoff_ms - first) / kMsPerDay;
  return s;
}

OutcomeRowWriter::OutcomeRowWriter(const OutcomeFamilySpec& spec)
    : spec_(spec), empty_(OutcomeEmptyValues(spec)), totals_(spec.window_days.size() + 1) {}

void OutcomeRowWriter::Total(std::span<const query_internal::OutcomeDay> days) {
  const size_t windows = spec_.window_days.size();
  std::fill(totals_.begin(), totals_.end(), Totals{});
  for (const query_internal::OutcomeDay& d : days) {
    for (size_t w = 0; w <= windows; ++w) {
      if (w < windows && d.day >= spec_.window_days[w]) continue;
      totals_[w].count += d.count;
      totals_[w].days += 1;
      totals_[w].amount += d.amount;
    }
  }
}

void OutcomeRowWriter::Write(std::span<const query_internal::OutcomeDay> days,
                             std::span<const query_internal::OutcomeDay> unfiltered_days, int64_t cutoff_ms,
                             float* out) {
  const OutcomeFamilySpec& spec = spec_;
  if (days.empty() && unfiltered_days.empty()) {
    std::copy(empty_.begin(), empty_.end(), out);
    return;
  }
  const size_t windows = spec.window_days.size();
  const std::vector<Totals>& totals = totals_;  // the last: all history
  Total(days);
  const double outcome_count = totals[windows].count;
  size_t c = 0;
  if (days.empty()) {
    // Only the unfiltered part has anything: the outcome's part is the empty row's.
    c = OwnColumnCount(spec);
    std::copy(empty_.begin(), empty_.begin() + static_cast<std::ptrdiff_t>(c), out);
  } else {
    for (size_t w = 0; w <= windows; ++w) out[c++] = static_cast<float>(totals[w].count);
    for (size_t w = 0; w <= windows; ++w) out[c++] = static_cast<float>(totals[w].days);
    if (!spec.amount_property.empty())
      for (size_t w = 0; w <= windows; ++w) out[c++] = static_cast<float>(totals[w].amount);
    out[c++] = 0.0f;  // never
    const double since_last = static_cast<double>(cutoff_ms - days.back().last_ms) / kMsPerHour;
    out[c++] = static_cast<float>(since_last);
    out[c++] = static_cast<float>(static_cast<double>(cutoff_ms - days.front().first_ms) / kMsPerHour);
    const size_t n = days.size();
    if (n >= 2) {
      // Days count back from the cutoff, so the first occurrence has the largest index.
      const double mean_gap = static_cast<double>(days.front().day - days.back().day) / static_cast<double>(n - 1);
      out[c++] = static_cast<float>(mean_gap);
      out[c++] = static_cast<float>(days[n - 2].day - days[n - 1].day);
      out[c++] = static_cast<float>(since_last / 24.0 / mean_gap);
    } else {
      out[c++] = kMissing;
      out[c++] = kMissing;
      out[c++] = kMissing;
    }
    if (windows >= 2) {
      const double longest = totals[windows - 1].days;
      out[c++] = longest > 0 ? static_cast<float>(totals[0].days / longest) : kMissing;
    }
  }
  if (spec.unfiltered) {
    Total(unfiltered_days);
    for (size_t w = 0; w <= windows; ++w) out[c++] = static_cast<float>(totals[w].count);
    for (size_t w = 0; w <= windows; ++w) out[c++] = static_cast<float>(totals[w].days);
    const double all = totals[windows].count;
    out[c++] = unfiltered_days.empty()
                   ? kMissing
                   : static_cast<float>(static_cast<double>(cutoff_ms - unfiltered_days.back().last_ms) / kMsPerHour);
    out[c++] = all > 0 ? static_cast<float>(outcome_count / all) : kMissing;
    if (spec.unfiltered_bgnbd) {
      if (unfiltered_days.empty()) {
        out[c++] = kMissing;
        out[c++] = kMissing;
      } else {
        const OutcomeRepeatSummary s = *RepeatSummaryOf(unfiltered_days, cutoff_ms);
        const OutcomeBgNbd& b = *spec.unfiltered_bgnbd;
        const ml::BgNbdParams p{b.r, b.alpha, b.a, b.b};
        const ml::RfmSummary rfm{s.x, s.t_x, s.age};
        out[c++] = static_cast<float>(ml::BgNbdProbAlive(p, rfm));
        out[c++] = static_cast<float>(ml::BgNbdProbAnyWithin(p, rfm, spec.horizon_days));
      }
    }
  }
  if (spec.bgnbd) {
    if (days.empty()) {
      std::fill(out + c, out + c + 3, kMissing);
      return;
    }
    const OutcomeRepeatSummary s = *RepeatSummaryOf(days, cutoff_ms);
    const ml::BgNbdParams p{spec.bgnbd->r, spec.bgnbd->alpha, spec.bgnbd->a, spec.bgnbd->b};
    const ml::RfmSummary rfm{s.x, s.t_x, s.age};
    out[c++] = static_cast<float>(ml::BgNbdProbAlive(p, rfm));
    out[c++] = static_cast<float>(ml::BgNbdProbAnyWithin(p, rfm, spec.horizon_days));
    out[c++] = static_cast<float>(ml::BgNbdExpectedTransactions(p, rfm, spec.horizon_days));
  }
}

namespace {

// The outcome's day records of every row at the cutoff, by row.
// `unfiltered`: the outcome's event without its filters, counted only (no amount).
Result<query_internal::OutcomeScanResult> ScanRows(const EventReader& reader, const OutcomeFamilySpec& spec,
                                                  int64_t cutoff, std::span<const uint32_t> row_of,
                                                  bool unfiltered, bool parallel) {
  query_internal::OutcomeMatch match{.event = spec.event, .where = spec.where, .amount_property = spec.amount_property};
  if (unfiltered) {
    match.where.clear();
    match.amount_property.clear();
  }
  // An amount the store does not know sums to zero; the counts still count.
  if (!match.amount_property.empty() && !reader.property_keys().Find(match.amount_property))
    match.amount_property.clear();
  return query_internal::ScanOutcomeDays(reader, match, INT64_MIN, cutoff, cutoff, row_of, parallel);
}

std::vector<uint32_t> RowOfActor(const EventReader& reader, int64_t cutoff, std::span<const ActorId> rows) {
  return query_internal::MakeRowMap(reader.ResolveIdentities(cutoff), rows).row_of_actor;
}

// Walks a scan's records row by row, in row order.
class RowCursor {
 public:
  explicit RowCursor(const query_internal::OutcomeScanResult& scan) : days_(scan.days) {}
  // Row r's records; rows must be asked for in ascending order.
  std::span<const query_internal::OutcomeDay> Next(uint32_t r) {
    const size_t begin = i_;
    while (i_ < days_.size() && days_[i_].row == r) ++i_;
    return std::span(days_).subspan(begin, i_ - begin);
  }

 private:
  const std::vector<query_internal::OutcomeDay>& days_;
  size_t i_ = 0;
};

}  // namespace

Result<std::vector<float>> ComputeOutcomeColumns(const EventReader& reader, const OutcomeFamilySpec& spec,
                                                 int64_t cutoff_ms, std::span<const ActorId> rows,
                                                 bool parallel) {
  const int64_t cutoff = FloorHour(cutoff_ms);
  const size_t k = OutcomeEmptyValues(spec).size();
  std::vector<float> values(rows.size() * k);
  const std::vector<uint32_t> row_of = RowOfActor(reader, cutoff, rows);
  ASSIGN_OR_RETURN(query_internal::OutcomeScanResult scan,
                   ScanRows(reader, spec, cutoff, row_of, /*unfiltered=*/false, parallel));
  query_internal::OutcomeScanResult unfiltered;
  if (spec.unfiltered) {
    ASSIGN_OR_RETURN(unfiltered, ScanRows(reader, spec, cutoff, row_of, /*unfiltered=*/true, parallel));
  }
  OutcomeRowWriter writer(spec);
  RowCursor outcome_rows(scan), unfiltered_rows(unfiltered);
  for (uint32_t r = 0; r < rows.size(); ++r)
    writer.Write(outcome_rows.Next(r), unfiltered_rows.Next(r), cutoff, values.data() + r * k);
  return values;
}

Result<std::vector<std::optional<OutcomeRepeatSummary>>> ComputeRepeatSummaries(
    const EventReader& reader, const OutcomeFamilySpec& spec, int64_t cutoff_ms, std::span<const ActorId> rows,
    bool parallel) {
  const int64_t cutoff = FloorHour(cutoff_ms);
  std::vector<std::optional<OutcomeRepeatSummary>> out(rows.size());
  ASSIGN_OR_RETURN(query_internal::OutcomeScanResult scan,
                   ScanRows(reader, spec, cutoff, RowOfActor(reader, cutoff, rows), /*unfiltered=*/false, parallel));
  RowCursor cursor(scan);
  for (uint32_t r = 0; r < rows.size(); ++r) out[r] = RepeatSummaryOf(cursor.Next(r), cutoff);
  return out;
}

}  // namespace sibyl
