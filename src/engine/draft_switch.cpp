#include "engine/draft_switch.h"

#include <algorithm>

namespace dsv4::engine {
namespace {

constexpr double kCostWeight = 0.125;   // EWMA weight of a new step's cost
constexpr double kAcceptWeight = 0.25;  // EWMA weight of a new verification

double Ewma(double old, double sample, double weight) {
  return old < 0 ? sample : old + weight * (sample - old);
}

}  // namespace

void StepCostMeter::Record(int64_t seqs, int64_t extra_rows, double seconds) {
  if (seqs <= 0 || seconds <= 0) return;
  const double per_seq = seconds / static_cast<double>(seqs);
  if (extra_rows == 0) {
    plain_ = Ewma(plain_, per_seq, kCostWeight);
  } else if (plain_ > 0) {
    const double rows = static_cast<double>(extra_rows) / static_cast<double>(seqs);
    per_row_ = Ewma(per_row_, std::max(0.0, per_seq - plain_) / rows, kCostWeight);
  }
}

double StepCostMeter::Cost(int64_t k) const {
  if (plain_ <= 0 || per_row_ < 0) return -1;
  return 1.0 + static_cast<double>(k) * per_row_ / plain_;
}

bool DraftSwitch::Tick() {
  if (paused_left_ == 0 || --paused_left_ > 0) return false;
  return true;
}

bool DraftSwitch::Observe(int64_t drafted, int64_t accepted,
                          const std::function<double(int64_t)>& cost) {
  const double a = static_cast<double>(accepted), d = static_cast<double>(drafted);
  accepted_ = samples_ == 0 ? a : accepted_ + kAcceptWeight * (a - accepted_);
  drafted_ = samples_ == 0 ? d : drafted_ + kAcceptWeight * (d - drafted_);
  const int64_t k = std::max<int64_t>(1, static_cast<int64_t>(drafted_ + 0.5));
  ++samples_;
  if (samples_ == 1 && cost(k) <= 0) {
    // No cost known yet: the next step goes without drafts, so that the cost meter sees a
    // one-token step before this request decides.
    paused_left_ = 1;
    return false;
  }
  if (samples_ < kMinVerifications) return false;
  const double c = cost(k);
  if (c <= 0) {
    // Still unknown (no pure decode step seen): measure again, decide after as many more.
    paused_left_ = 1;
    samples_ = 0;
    return false;
  }
  if (1.0 + accepted_ >= c) {
    backoff_ = kFirstBackoff;  // it pays (again): a later pause starts short
    probing_ = false;
    return false;
  }
  paused_left_ = backoff_;
  probing_ = true;
  backoff_ = std::min(2 * backoff_, kMaxBackoff);
  samples_ = 0;
  ++pauses_;
  return true;
}

}  // namespace dsv4::engine
