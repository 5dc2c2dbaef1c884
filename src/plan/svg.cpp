#include "plan/svg.h"

#include <algorithm>
#include <cmath>
#include <set>

#include "plan/units.h"

namespace dsv4::plan {
namespace {

// Plot geometry in SVG user units: the plot area, and the legend to its right (its width
// follows the longest label, at ~6.5 units per 11-px character).
constexpr double kHeight = 620, kLegendCharWidth = 6.5;
constexpr double kLeft = 90, kRight = 780, kTop = 70, kBottom = 540;
constexpr const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                                   "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string Esc(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string F(double v) { return FixedDigits(v, 1); }

int64_t FloorPow2(int64_t v) {
  int64_t p = 1;
  while (p * 2 <= v) p *= 2;
  return p;
}
int64_t CeilPow2(int64_t v) {
  int64_t p = 1;
  while (p < v) p *= 2;
  return p;
}

std::string Text(double x, double y, const std::string& s, const std::string& attrs) {
  return "<text x=\"" + F(x) + "\" y=\"" + F(y) + "\" " + attrs + ">" + Esc(s) + "</text>\n";
}
std::string Line(double x1, double y1, double x2, double y2, const std::string& attrs) {
  return "<line x1=\"" + F(x1) + "\" y1=\"" + F(y1) + "\" x2=\"" + F(x2) + "\" y2=\"" + F(y2) +
         "\" " + attrs + "/>\n";
}

std::string YLabel(double v) {
  if (v >= 1) return Commas(static_cast<int64_t>(std::llround(v)));
  return FixedDigits(v, v >= 0.1 ? 1 : (v >= 0.01 ? 2 : 3));
}

}  // namespace

std::vector<SvgPoint> ConcurrencyCurve(const CapacityPlan& p, const std::vector<int64_t>& xs) {
  std::vector<SvgPoint> pts;
  for (int64_t t : xs) {
    const double kv = static_cast<double>(KvBytesPerRequest(p.options, t));
    pts.push_back({t, ConcurrencyFor(p, kv).per_gpu});
  }
  return pts;
}

std::vector<int64_t> CurveTokens(const std::vector<PlanCase>& cases, const SvgOptions& o) {
  int64_t lo = 4096, hi = int64_t{1} << 20;
  std::set<int64_t> xs;
  for (const PlanCase& c : cases) {
    for (int64_t t : c.options.lengths) {
      lo = std::min(lo, t);
      hi = std::max(hi, t);
      xs.insert(t);
    }
  }
  lo = o.min_tokens > 0 ? o.min_tokens : FloorPow2(std::max<int64_t>(lo, 1));
  hi = o.max_tokens > 0 ? o.max_tokens : CeilPow2(hi);
  const int steps = std::max(o.points_per_octave, 1);
  for (int i = 0;; ++i) {
    const double t = static_cast<double>(lo) * std::pow(2.0, static_cast<double>(i) / steps);
    if (t > static_cast<double>(hi) * (1 + 1e-9)) break;
    xs.insert(std::llround(t));
  }
  std::erase_if(xs, [&](int64_t t) { return t < lo || t > hi; });
  return {xs.begin(), xs.end()};
}

namespace {

// Maps tokens (log2) and requests per GPU (log10) to plot coordinates.
struct Frame {
  double lx_lo = 0, lx_hi = 1;  // log2 of the x range
  double d_lo = 0, d_hi = 1;    // decades of the y range
  double width = 960;           // whole picture, legend included
  double X(double tokens) const {
    return kLeft + (std::log2(tokens) - lx_lo) / (lx_hi - lx_lo) * (kRight - kLeft);
  }
  double Y(double v) const {
    return kBottom - (std::log10(v) - d_lo) / (d_hi - d_lo) * (kBottom - kTop);
  }
};

std::string LegendLabel(const PlanCase& c) {
  return c.options.model_label + " | " + c.options.gpu.label + " | " + c.options.layout.Name() +
         " | " + std::string(ExpertDtypeName(c.options.expert_dtype));
}

Frame MakeFrame(const std::vector<PlanCase>& cases, const std::vector<int64_t>& xs,
                const std::vector<std::vector<SvgPoint>>& curves) {
  double y_lo = 1e300, y_hi = 0;
  for (const auto& curve : curves) {
    for (const SvgPoint& p : curve) {
      if (p.requests_per_gpu > 0) {
        y_lo = std::min(y_lo, p.requests_per_gpu);
        y_hi = std::max(y_hi, p.requests_per_gpu);
      }
    }
  }
  if (y_hi == 0) y_lo = y_hi = 1;  // nothing fits anywhere: an empty but valid plot
  Frame f;
  f.d_lo = std::floor(std::log10(y_lo));
  f.d_hi = std::max(std::ceil(std::log10(y_hi)), f.d_lo + 1);
  f.lx_lo = std::log2(static_cast<double>(xs.front()));
  f.lx_hi = std::max(std::log2(static_cast<double>(xs.back())), f.lx_lo + 1);
  size_t longest = 0;
  for (const PlanCase& c : cases) longest = std::max(longest, LegendLabel(c).size());
  f.width = std::max(960.0, kRight + 60 + kLegendCharWidth * static_cast<double>(longest));
  return f;
}

// Title, grid, tick labels, frame and axis titles. x: every power of two (every other one
// labelled when crowded); y: decades with 2x and 5x minor lines.
std::string Axes(const Frame& f, const SvgOptions& o) {
  std::string s = Text(kLeft, 28, o.title, "font-size=\"18\" font-weight=\"bold\"");
  s += Text(kLeft, 50,
            "each request at the full context length; KV budget = util x HBM - weights - "
            "workspace (or fixed); dsv4 plan",
            "fill=\"#555\"");
  const int first = static_cast<int>(std::ceil(f.lx_lo)), last = static_cast<int>(f.lx_hi);
  const int label_every = last - first > 12 ? 2 : 1;
  for (int e = first; e <= last; ++e) {
    const double x = f.X(std::ldexp(1.0, e));
    s += Line(x, kTop, x, kBottom, "stroke=\"#e4e4e4\"");
    if (e % label_every == 0) {
      s += Text(x, kBottom + 18, TokensShort(int64_t{1} << e), "text-anchor=\"middle\"");
    }
  }
  for (int d = static_cast<int>(f.d_lo); d <= static_cast<int>(f.d_hi); ++d) {
    const double v = std::pow(10.0, d);
    s += Line(kLeft, f.Y(v), kRight, f.Y(v), "stroke=\"#d0d0d0\"");
    s += Text(kLeft - 8, f.Y(v) + 4, YLabel(v), "text-anchor=\"end\"");
    if (d == static_cast<int>(f.d_hi)) continue;
    for (double m : {2.0, 5.0}) {
      s += Line(kLeft, f.Y(m * v), kRight, f.Y(m * v), "stroke=\"#f0f0f0\"");
      s += Text(kLeft - 8, f.Y(m * v) + 4, YLabel(m * v),
                "text-anchor=\"end\" fill=\"#999\" font-size=\"10\"");
    }
  }
  s += "<rect x=\"" + F(kLeft) + "\" y=\"" + F(kTop) + "\" width=\"" + F(kRight - kLeft) +
       "\" height=\"" + F(kBottom - kTop) + "\" fill=\"none\" stroke=\"#333\"/>\n";
  s += Text((kLeft + kRight) / 2, kBottom + 44,
            "context length per request (tokens, log scale; K = 1024, M = 2^20)",
            "text-anchor=\"middle\" font-size=\"14\"");
  return s + "<text transform=\"translate(24," + F((kTop + kBottom) / 2) +
         ") rotate(-90)\" text-anchor=\"middle\" font-size=\"14\">max concurrent requests "
         "per GPU (log scale)</text>\n";
}

// One case's line (ending where the count reaches 0), its markers at the planned lengths and
// its legend entry at height `legend_y`.
std::string Series(const Frame& f, const PlanCase& c, const std::vector<SvgPoint>& curve,
                   const std::string& color, double legend_y) {
  std::string s = Line(kRight + 20, legend_y, kRight + 48, legend_y,
                       "stroke=\"" + color + "\" stroke-width=\"2.5\"" +
                           (c.plan ? "" : " stroke-dasharray=\"3,3\""));
  s += Text(kRight + 54, legend_y + 4, LegendLabel(c), "font-size=\"11\"");
  if (!c.plan) {
    return s + Text(kRight + 54, legend_y + 18, "(weights do not fit)",
                    "font-size=\"10\" fill=\"#b00\"");
  }
  std::string path;
  for (const SvgPoint& p : curve) {
    if (p.requests_per_gpu <= 0) break;  // counts only fall as T grows
    path += (path.empty() ? "M" : " L") + F(f.X(static_cast<double>(p.tokens))) + " " +
            F(f.Y(p.requests_per_gpu));
  }
  if (!path.empty()) {
    s += "<path d=\"" + path + "\" fill=\"none\" stroke=\"" + color +
         "\" stroke-width=\"2\" stroke-linejoin=\"round\"/>\n";
  }
  for (const LengthPlan& l : c.plan->lengths) {
    if (l.n.per_gpu <= 0) continue;
    const double x = f.X(static_cast<double>(l.tokens)), y = f.Y(l.n.per_gpu);
    s += "<circle cx=\"" + F(x) + "\" cy=\"" + F(y) + "\" r=\"4\" fill=\"" + color + "\"/>\n";
    s += Text(x + 6, y - 6, YLabel(l.n.per_gpu), "font-size=\"11\" fill=\"" + color + "\"");
  }
  return s;
}

}  // namespace

std::string RenderSvg(const std::vector<PlanCase>& cases, const SvgOptions& o) {
  const std::vector<int64_t> xs = CurveTokens(cases, o);
  std::vector<std::vector<SvgPoint>> curves(cases.size());
  for (size_t i = 0; i < cases.size(); ++i) {
    if (cases[i].plan) curves[i] = ConcurrencyCurve(*cases[i].plan, xs);
  }
  const Frame f = MakeFrame(cases, xs, curves);
  std::string s =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
      F(f.width) + "\" height=\"" + F(kHeight) + "\" viewBox=\"0 0 " + F(f.width) + " " +
      F(kHeight) + "\" font-family=\"sans-serif\" font-size=\"12\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n" + Axes(f, o);
  double legend_y = kTop + 10;
  for (size_t i = 0; i < cases.size(); ++i) {
    s += Series(f, cases[i], curves[i], kColors[i % std::size(kColors)], legend_y);
    legend_y += cases[i].plan ? 22 : 34;
  }
  return s + "</svg>\n";
}

}  // namespace dsv4::plan
