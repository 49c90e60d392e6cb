#include "pipeline/baseline.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <regex>

#include "ml/linear_model.h"
#include "ml/model.h"

namespace sibyl::pipeline {

Result<ml::Dataset> RecencyFrequencyColumns(const ml::Dataset& data) {
  static const std::regex recent_count(R"(^count\("(?:[^"\\]|\\.)*"\) week -[1-4]$)");
  static const std::regex older_count(R"(^count\("(?:[^"\\]|\\.)*"\) week -[5-8]$)");
  std::optional<size_t> recency;
  std::vector<size_t> recent, older;
  for (size_t c = 0; c < data.num_columns(); ++c) {
    const std::string& name = data.feature_names[c];
    if (name == "hours since last event") recency = c;
    else if (std::regex_match(name, recent_count)) recent.push_back(c);
    else if (std::regex_match(name, older_count)) older.push_back(c);
  }
  if (!recency) return FailedPrecondition("the feature matrix has no \"hours since last event\" column");
  ml::Dataset out;
  out.kind = data.kind;
  out.feature_names = {"log1p(hours since last event)", "log1p(events in the last 4 weeks)",
                       "log1p(events in the last 8 weeks)"};
  out.labels = data.labels;
  out.user_keys = data.user_keys;
  out.values.resize(data.num_rows() * 3);
  for (size_t r = 0; r < data.num_rows(); ++r) {
    const float* row = data.row(r);
    double four_weeks = 0, eight_weeks = 0;
    for (size_t c : recent) four_weeks += row[c];
    for (size_t c : older) eight_weeks += row[c];
    eight_weeks += four_weeks;
    float* out_row = out.values.data() + 3 * r;
    out_row[0] = static_cast<float>(std::log1p(std::max(0.0f, row[*recency])));
    out_row[1] = static_cast<float>(std::log1p(four_weeks));
    out_row[2] = static_cast<float>(std::log1p(eight_weeks));
  }
  return out;
}

Result<std::vector<double>> RecencyFrequencyBaseline(const ml::Dataset& data, const ml::Split& split) {
  ASSIGN_OR_RETURN(ml::Dataset rf, RecencyFrequencyColumns(data));
  ml::LinearOptions options;
  options.num_threads = 1;
  // The regression a team writes by hand: least squares (the candidates' log link is sibyl's).
  options.amount_link = ml::LinearOptions::AmountLink::kIdentity;
  ASSIGN_OR_RETURN(auto model, ml::LinearModel::Train(rf, split.fit_rows, {}, options));
  std::vector<float> test = ml::GatherRows(rf, split.test_rows);
  ASSIGN_OR_RETURN(std::vector<double> margins, model->PredictMargin(test));
  for (double& m : margins) m = ml::MarginToOutput(rf.kind, m);
  return margins;
}

}  // namespace sibyl::pipeline
