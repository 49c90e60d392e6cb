#include "ml/bgnbd_model.h"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>

namespace sibyl::ml {
namespace {

constexpr double kMinProbability = 1e-6;

double Logit(double p) {
  p = std::clamp(p, kMinProbability, 1 - kMinProbability);
  return std::log(p / (1 - p));
}

const char* OutputName(BgNbdModel::Output o) {
  switch (o) {
    case BgNbdModel::Output::kProbability: return "probability";
    case BgNbdModel::Output::kOneMinusProbability: return "one_minus_probability";
    case BgNbdModel::Output::kAmount: return "amount";
  }
  return "";
}

}  // namespace

Result<std::unique_ptr<BgNbdModel>> BgNbdModel::Make(TaskKind task, size_t num_features, Output output,
                                                     Columns columns, double prior) {
  const bool amount = output == Output::kAmount;
  if (amount != (task == TaskKind::kRegression)) return InvalidArgument("BG/NBD model: output does not fit the task");
  for (size_t c : {columns.probability, columns.expected_days, columns.amount, columns.active_days})
    if (c >= num_features) return InvalidArgument("BG/NBD model: column {} out of {}", c, num_features);
  if (!std::isfinite(prior) || prior < 0 || (!amount && prior > 1))
    return InvalidArgument("BG/NBD model: prior {} out of range", prior);
  auto model = std::make_unique<BgNbdModel>();
  model->task_ = task;
  model->num_features_ = num_features;
  model->output_ = output;
  model->columns_ = columns;
  model->prior_ = prior;
  return model;
}

double BgNbdModel::PriorMargin() const {
  switch (output_) {
    case Output::kProbability: return Logit(prior_);
    case Output::kOneMinusProbability: return Logit(1 - prior_);
    case Output::kAmount: return prior_;
  }
  return 0;
}

double BgNbdModel::Margin(const float* row) const {
  if (output_ == Output::kAmount) {
    const double days = row[columns_.expected_days], total = row[columns_.amount], active = row[columns_.active_days];
    if (std::isnan(days) || !(active > 0)) return prior_;
    return days * total / active;
  }
  const double p = row[columns_.probability];
  if (std::isnan(p)) return PriorMargin();
  return output_ == Output::kProbability ? Logit(p) : Logit(1 - p);
}

Result<std::vector<double>> BgNbdModel::PredictMargin(std::span<const float> rows) const {
  if (rows.size() % num_features_ != 0) return InvalidArgument("row data is not a whole number of rows");
  std::vector<double> out(rows.size() / num_features_);
  for (size_t r = 0; r < out.size(); ++r) out[r] = Margin(rows.data() + r * num_features_);
  return out;
}

Result<std::vector<double>> BgNbdModel::Contributions(std::span<const float> rows) const {
  if (rows.size() % num_features_ != 0) return InvalidArgument("row data is not a whole number of rows");
  const size_t n = rows.size() / num_features_, width = num_features_ + 1;
  const size_t input = output_ == Output::kAmount ? columns_.expected_days : columns_.probability;
  std::vector<double> out(n * width, 0);
  for (size_t r = 0; r < n; ++r) {
    out[r * width + num_features_] = PriorMargin();
    out[r * width + input] = Margin(rows.data() + r * num_features_) - PriorMargin();
  }
  return out;
}

Result<std::string> BgNbdModel::Serialize() const {
  nlohmann::json j = {{"format", "sibyl-bgnbd-v1"},
                      {"task", TaskKindName(task_)},
                      {"num_features", num_features_},
                      {"output", OutputName(output_)},
                      {"columns", {{"probability", columns_.probability},
                                   {"expected_days", columns_.expected_days},
                                   {"amount", columns_.amount},
                                   {"active_days", columns_.active_days}}},
                      {"prior", prior_}};
  return j.dump();
}

Result<std::unique_ptr<BgNbdModel>> BgNbdModel::Load(TaskKind task, std::string_view bytes) {
  try {
    nlohmann::json j = nlohmann::json::parse(bytes);
    if (j.at("format") != "sibyl-bgnbd-v1") return Corruption("BG/NBD model: unknown format");
    Output output = Output::kProbability;
    const std::string name = j.at("output").get<std::string>();
    if (name == OutputName(Output::kOneMinusProbability)) output = Output::kOneMinusProbability;
    else if (name == OutputName(Output::kAmount)) output = Output::kAmount;
    else if (name != OutputName(Output::kProbability)) return Corruption("BG/NBD model: unknown output {}", name);
    const nlohmann::json& c = j.at("columns");
    Columns columns{c.at("probability").get<size_t>(), c.at("expected_days").get<size_t>(),
                    c.at("amount").get<size_t>(), c.at("active_days").get<size_t>()};
    auto model = Make(task, j.at("num_features").get<size_t>(), output, columns, j.at("prior").get<double>());
    if (!model.ok()) return Corruption("{}", model.status().message());
    return model;
  } catch (const nlohmann::json::exception& e) {
    return Corruption("BG/NBD model: {}", e.what());
  }
}

}  // namespace sibyl::ml
