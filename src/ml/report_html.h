// A self-contained HTML page (inline SVG and CSS, no scripts, no network) describing a
// trained model's quality on held-out users and what drives it.
#pragma once

#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "ml/dataset.h"
#include "ml/drivers.h"

namespace sibyl::ml {

struct ReportInput {
  std::string title;  // e.g. the prediction's name
  TaskKind task = TaskKind::kClassification;
  // The winner's calibrated held-out predictions and the matching labels.
  std::span<const double> predictions;
  std::span<const float> labels;
  std::vector<Driver> drivers;                               // most important first
  nlohmann::json candidates = nlohmann::json::array();       // CandidatesToJson
  size_t max_drivers = 15;
};

// For classification: the metrics table, ROC curve, reliability diagram, lift curve,
// score histogram and drivers. For regression: metrics, calibration by decile,
// prediction histogram and drivers.
std::string RenderReportHtml(const ReportInput& input);

// Escapes &, <, >, " and ' for HTML text and attributes.
std::string HtmlEscape(std::string_view text);

}  // namespace sibyl::ml
