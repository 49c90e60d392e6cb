#include "ml/report_html.h"

#include <algorithm>
#include <cmath>

#include <fmt/format.h>

#include "ml/metrics.h"

namespace sibyl::ml {
namespace {

// Chart geometry: a 300 x 220 plot area inside a 360 x 270 SVG.
constexpr double kLeft = 48, kTop = 14, kWidth = 300, kHeight = 220;

struct Axis {
  double min = 0, max = 1;
  double Map(double v) const { return max > min ? (v - min) / (max - min) : 0; }
};

// Keeps at most `limit` evenly spaced points (curves over many users stay small).
std::vector<CurvePoint> Thin(const std::vector<CurvePoint>& points, size_t limit = 300) {
  if (points.size() <= limit) return points;
  std::vector<CurvePoint> out;
  for (size_t i = 0; i < limit; ++i) out.push_back(points[i * (points.size() - 1) / (limit - 1)]);
  return out;
}

class Chart {
 public:
  Chart(std::string title, std::string x_label, std::string y_label, Axis x, Axis y)
      : title_(std::move(title)), x_label_(std::move(x_label)), y_label_(std::move(y_label)),
        x_(x), y_(y) {}

  double X(double v) const { return kLeft + x_.Map(v) * kWidth; }
  double Y(double v) const { return kTop + (1 - y_.Map(v)) * kHeight; }

  void Line(const std::vector<CurvePoint>& points, const char* color, bool dashed = false) {
    std::string path;
    for (const auto& p : points) path += fmt::format("{:.1f},{:.1f} ", X(p.x), Y(p.y));
    body_ += fmt::format(R"(<polyline fill="none" stroke="{}" stroke-width="2"{} points="{}"/>)",
                         color, dashed ? R"( stroke-dasharray="4 3")" : "", path);
  }
  void Dots(const std::vector<CurvePoint>& points, const char* color) {
    for (const auto& p : points) {
      body_ += fmt::format(R"(<circle cx="{:.1f}" cy="{:.1f}" r="3.5" fill="{}"/>)", X(p.x), Y(p.y), color);
    }
  }
  void Bar(double x0, double x1, double height, const char* color) {
    body_ += fmt::format(R"(<rect x="{:.1f}" y="{:.1f}" width="{:.1f}" height="{:.1f}" fill="{}"/>)",
                         X(x0), Y(height), std::max(0.5, X(x1) - X(x0) - 1), Y(y_.min) - Y(height), color);
  }

  std::string Render() const {
    std::string ticks;
    for (int i = 0; i <= 4; ++i) {
      double xv = x_.min + (x_.max - x_.min) * i / 4, yv = y_.min + (y_.max - y_.min) * i / 4;
      ticks += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="tick" text-anchor="middle">{:.3g}</text>)",
                           X(xv), kTop + kHeight + 14, xv);
      ticks += fmt::format(R"(<text x="{:.1f}" y="{:.1f}" class="tick" text-anchor="end">{:.3g}</text>)",
                           kLeft - 4, Y(yv) + 4, yv);
      ticks += fmt::format(R"(<line x1="{0:.1f}" x2="{1:.1f}" y1="{2:.1f}" y2="{2:.1f}" class="grid"/>)",
                           kLeft, kLeft + kWidth, Y(yv));
    }
    return fmt::format(
        R"(<figure><figcaption>{}</figcaption><svg viewBox="0 0 360 270" width="360" height="270" role="img">)"
        R"(<rect x="{}" y="{}" width="{}" height="{}" class="frame"/>{}{})"
        R"(<text x="{}" y="266" class="label" text-anchor="middle">{}</text>)"
        R"svg(<text x="12" y="{}" class="label" text-anchor="middle" transform="rotate(-90 12 {})">{}</text>)svg"
        R"(</svg></figure>)",
        HtmlEscape(title_), kLeft, kTop, kWidth, kHeight, ticks, body_, kLeft + kWidth / 2,
        HtmlEscape(x_label_), kTop + kHeight / 2, kTop + kHeight / 2, HtmlEscape(y_label_));
  }

 private:
  std::string title_, x_label_, y_label_;
  Axis x_, y_;
  std::string body_;
};

std::string Histogram(std::span<const double> values, const char* title, const char* x_label,
                      Axis x) {
  constexpr int kBins = 20;
  std::vector<double> counts(kBins, 0);
  for (double v : values) {
    int bin = std::clamp(static_cast<int>(x.Map(v) * kBins), 0, kBins - 1);
    counts[bin] += 1;
  }
  double top = std::max(1.0, *std::max_element(counts.begin(), counts.end()));
  for (double& c : counts) c = 100.0 * c / std::max<size_t>(1, values.size());
  Chart chart(title, x_label, "% of users", x, Axis{0, 100.0 * top / std::max<size_t>(1, values.size())});
  for (int b = 0; b < kBins; ++b) {
    double x0 = x.min + (x.max - x.min) * b / kBins, x1 = x.min + (x.max - x.min) * (b + 1) / kBins;
    chart.Bar(x0, x1, counts[b], "#4c78a8");
  }
  return chart.Render();
}

std::string DriversTable(const std::vector<Driver>& drivers, size_t limit) {
  if (drivers.empty()) return "<p>No drivers were computed.</p>";
  double top = drivers.front().importance;
  std::string rows;
  for (size_t i = 0; i < std::min(limit, drivers.size()); ++i) {
    const Driver& d = drivers[i];
    const char* direction = d.direction > 0 ? "&#9650; higher raises" : d.direction < 0 ? "&#9660; higher lowers" : "mixed";
    rows += fmt::format(
        R"(<tr><td>{}</td><td><svg width="160" height="12"><rect width="{:.1f}" height="12" fill="{}"/></svg></td><td>{:.4f}</td><td>{}</td></tr>)",
        HtmlEscape(d.feature), top > 0 ? 160 * d.importance / top : 0,
        d.direction > 0 ? "#d62728" : d.direction < 0 ? "#1f77b4" : "#888", d.importance, direction);
  }
  return "<table><tr><th>Feature</th><th>Importance</th><th>mean |SHAP|</th><th>Direction</th></tr>" +
         rows + "</table>";
}

std::string CandidatesTable(const nlohmann::json& candidates, TaskKind task) {
  if (!candidates.is_array() || candidates.empty()) return "";
  // Cross-validation on stacked cutoffs chooses on every cutoff's rows, not on the
  // newest cutoff's metrics shown: the loss it compared gets a column of its own.
  const bool chosen_on_every_cutoff =
      std::any_of(candidates.begin(), candidates.end(), [](const auto& c) { return c.contains("selection_loss"); });
  std::string rows;
  for (const auto& c : candidates) {
    std::string cells;
    if (c.contains("error")) {
      cells = fmt::format("<td colspan={}>failed: {}</td>", chosen_on_every_cutoff ? 5 : 4,
                          HtmlEscape(c["error"].get<std::string>()));
    } else if (task == TaskKind::kClassification) {
      const auto& m = c["metrics"];
      cells = fmt::format("<td>{:.4f}</td><td>{:.4f}</td><td>{:.4f}</td><td>{:.2f}</td>",
                          m.value("roc_auc", 0.0), m.value("log_loss", 0.0), m.value("ece", 0.0),
                          m.value("lift_top_decile", 0.0));
    } else {
      const auto& m = c["metrics"];
      cells = fmt::format("<td>{:.4g}</td><td>{:.4g}</td><td>{:.4f}</td><td>{:.4f}</td>",
                          m.value("mae", 0.0), m.value("rmse", 0.0), m.value("r2", 0.0),
                          m.value("spearman", 0.0));
    }
    if (chosen_on_every_cutoff && !c.contains("error"))
      cells += c.contains("selection_loss") ? fmt::format("<td>{:.4f}</td>", c["selection_loss"].get<double>())
                                            : std::string("<td></td>");
    rows += fmt::format("<tr{}><td>{}{}</td>{}<td>{:.2f} s</td></tr>",
                        c.value("selected", false) ? R"( class="win")" : "",
                        HtmlEscape(c.value("model", std::string("?"))),
                        c.value("selected", false) ? " (selected)" : "", cells, c.value("train_seconds", 0.0));
  }
  std::string header = task == TaskKind::kClassification
                           ? "<th>ROC AUC</th><th>Log loss</th><th>ECE</th><th>Lift@10%</th>"
                           : "<th>MAE</th><th>RMSE</th><th>R&sup2;</th><th>Spearman</th>";
  if (chosen_on_every_cutoff) {
    // The candidates of a version were all chosen on one loss; a measured one's metrics say
    // which (amounts >= 0 carry the Poisson deviance).
    const char* loss = task == TaskKind::kClassification ? "log loss" : "RMSE";
    for (const auto& c : candidates)
      if (c.contains("metrics")) {
        loss = SelectionLossName(c["metrics"]);
        break;
      }
    header += fmt::format("<th>Chosen on: {}, every cutoff</th>", loss);
  }
  return fmt::format("<h2>Candidates</h2><table><tr><th>Model</th>{}<th>Training</th></tr>{}</table>",
                     header, rows);
}

std::string Row(const char* name, const std::string& value) {
  return fmt::format("<tr><th>{}</th><td>{}</td></tr>", name, value);
}

// The chosen candidate's recorded metrics (cross-validated training records the AUC's
// interval over users and the ECE's floor there), or null.
const nlohmann::json* WinnerMetrics(const nlohmann::json& candidates) {
  for (const auto& c : candidates)
    if (c.value("selected", false) && c.contains("metrics") && c["metrics"].is_object()) return &c["metrics"];
  return nullptr;
}

// How much to trust the AUC and the ECE on these users (docs/ML.md, small data, step 7):
// the 95% bootstrap interval of the AUC over users, and the ECE a perfectly calibrated
// model with the same scores would show. Empty when the training did not record them.
std::string AucInterval(const nlohmann::json* metrics) {
  if (!metrics) return "";
  auto it = metrics->find("roc_auc_interval");
  if (it == metrics->end() || !it->is_array() || it->size() != 2 || !(*it)[0].is_number() || !(*it)[1].is_number())
    return "";
  return fmt::format(R"( <span class="note">95% interval over users {:.4f} to {:.4f}</span>)", (*it)[0].get<double>(),
                     (*it)[1].get<double>());
}

std::string EceFloor(const nlohmann::json* metrics) {
  if (!metrics) return "";
  auto it = metrics->find("ece_floor");
  if (it == metrics->end() || !it->is_number()) return "";
  return fmt::format(R"( <span class="note">a calibrated model would show about {:.4f} on these users</span>)",
                     it->get<double>());
}

}  // namespace

std::string HtmlEscape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string RenderReportHtml(const ReportInput& input) {
  std::string summary, charts;
  if (input.task == TaskKind::kClassification) {
    ClassificationMetrics m = EvaluateClassifier(input.predictions, input.labels);
    const nlohmann::json* recorded = WinnerMetrics(input.candidates);
    summary = Row("Grade", HtmlEscape(m.grade)) + Row("Held-out users", std::to_string(m.count)) +
              Row("Base rate", fmt::format("{:.2f}%", 100 * m.base_rate)) +
              Row("ROC AUC", fmt::format("{:.4f}", m.roc_auc) + AucInterval(recorded)) +
              Row("PR AUC", fmt::format("{:.4f}", m.pr_auc)) +
              Row("Log loss", fmt::format("{:.4f}", m.log_loss)) +
              Row("Brier", fmt::format("{:.4f}", m.brier)) +
              Row("ECE (10 bins)", fmt::format("{:.4f}", m.ece) + EceFloor(recorded)) +
              Row("Lift, top 10%", fmt::format("{:.2f}&times;", m.lift_top_decile));

    Chart roc("ROC curve", "false positive rate", "true positive rate", {}, {});
    roc.Line({{0, 0}, {1, 1}}, "#aaa", true);
    roc.Line(Thin(RocCurve(input.predictions, input.labels)), "#d62728");
    charts += roc.Render();

    auto reliability = ReliabilityCurve(input.predictions, input.labels);
    double top = 0.05;
    for (const auto& p : reliability) top = std::max({top, p.x, p.y});
    top = std::min(1.0, std::ceil(top * 10 + 0.01) / 10);
    Chart calib("Calibration (reliability)", "predicted probability", "observed rate", {0, top}, {0, top});
    calib.Line({{0, 0}, {top, top}}, "#aaa", true);
    calib.Line(reliability, "#2ca02c");
    calib.Dots(reliability, "#2ca02c");
    charts += calib.Render();

    auto lift = LiftCurve(input.predictions, input.labels);
    double max_lift = 1.5;
    for (const auto& p : lift) max_lift = std::max(max_lift, p.y);
    Chart lift_chart("Cumulative lift", "top % of users by score", "lift", {0, 100}, {0, std::ceil(max_lift)});
    lift_chart.Line({{0, 1}, {100, 1}}, "#aaa", true);
    lift_chart.Line(lift, "#9467bd");
    charts += lift_chart.Render();

    double max_score = 0.05;
    for (double p : input.predictions) max_score = std::max(max_score, p);
    charts += Histogram(input.predictions, "Score distribution", "probability",
                        {0, std::min(1.0, std::ceil(max_score * 10) / 10)});
  } else {
    RegressionMetrics m = EvaluateRegressor(input.predictions, input.labels);
    summary = Row("Grade", HtmlEscape(m.grade)) + Row("Held-out users", std::to_string(m.count)) +
              Row("Mean actual", fmt::format("{:.4g}", m.mean_actual)) +
              Row("MAE", fmt::format("{:.4g}", m.mae)) + Row("RMSE", fmt::format("{:.4g}", m.rmse)) +
              Row("R&sup2;", fmt::format("{:.4f}", m.r2)) +
              Row("Spearman", fmt::format("{:.4f}", m.spearman)) +
              (std::isfinite(m.top_decile_share)
                   ? Row("Top 10% hold", fmt::format("{:.1f}% of the actual amount", 100 * m.top_decile_share))
                   : std::string());
    std::vector<CurvePoint> predicted, actual;
    double top = 1e-9;
    for (size_t d = 0; d < m.deciles.size(); ++d) {
      predicted.push_back({d + 1.0, m.deciles[d].mean_prediction});
      actual.push_back({d + 1.0, m.deciles[d].mean_actual});
      top = std::max({top, m.deciles[d].mean_prediction, m.deciles[d].mean_actual});
    }
    Chart deciles("Calibration by decile (red: predicted, green: actual)", "decile of prediction",
                  "mean amount", {1, 10}, {0, top * 1.05});
    deciles.Line(predicted, "#d62728");
    deciles.Line(actual, "#2ca02c");
    deciles.Dots(actual, "#2ca02c");
    charts += deciles.Render();
    double lo = 0, hi = 1e-9;
    for (double p : input.predictions) lo = std::min(lo, p), hi = std::max(hi, p);
    charts += Histogram(input.predictions, "Prediction distribution", "predicted amount", {lo, hi});
  }

  return fmt::format(R"(<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{0}</title>
<style>
body {{ font: 14px/1.4 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1200px; }}
table {{ border-collapse: collapse; margin: 8px 0 16px; }}
th, td {{ padding: 3px 10px; border-bottom: 1px solid #e4e4e4; text-align: left; }}
tr.win td {{ font-weight: 600; }}
figure {{ display: inline-block; margin: 0 16px 16px 0; }}
figcaption {{ font-weight: 600; margin-bottom: 4px; }}
.frame {{ fill: none; stroke: #999; }} .grid {{ stroke: #eee; }}
.tick {{ font-size: 10px; fill: #555; }} .label {{ font-size: 11px; fill: #333; }}
.note {{ color: #666; font-size: 12px; margin-left: 6px; }}
</style></head><body>
<h1>{0}</h1>
<p>All figures are measured on held-out users: neither the model nor its calibration saw them.</p>
<table>{1}</table>
{2}
<h2>Top drivers</h2>
{3}
{4}
</body></html>
)",
                     HtmlEscape(input.title), summary, charts,
                     DriversTable(input.drivers, input.max_drivers),
                     CandidatesTable(input.candidates, input.task));
}

}  // namespace sibyl::ml
