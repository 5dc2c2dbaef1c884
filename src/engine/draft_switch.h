// Auto mode's switch-off of speculative decoding (EngineOptions::speculative_step_cost,
// README "Speculative decoding"). Per request, DraftSwitch keeps an EWMA of the drafts
// accepted per verification and of the drafts verified; after kMinVerifications
// verifications it compares the expected tokens per unit of time with drafting,
// (1 + accepted) / cost(k), against 1 / 1 without (cost: what a decode step verifying k
// drafts costs, drafting included, in one-token decode steps). When drafting loses, the
// request pauses for `backoff` of its steps (8, doubling at each further pause, up to 512),
// then probes again from a fresh EWMA, with one draft per step; a decision that drafting
// pays resets the back-off and lets it draft k again. Counted in verifications and steps, never in time: with an injected
// cost the decisions are deterministic.
//
// StepCostMeter is the measured cost: EWMAs over the engine's pure decode steps (every
// chunk one decode token, its drafts after it) of the seconds per sequence, for steps
// without drafts (a one-token step) and with them (the extra seconds per extra row), so
// cost(k) = 1 + k * extra_per_row / plain. Unknown until both kinds of step were seen:
// a request whose first verification finds it unknown, or that must decide while it is,
// skips drafting for one step (a measurement, not counted as a pause).
//
// Not thread-safe: the engine thread owns them.
#pragma once

#include <algorithm>
#include <cstdint>
#include <functional>

namespace dsv4::engine {

class StepCostMeter {
 public:
  // A pure decode step of `seqs` sequences that fed `extra_rows` drafts in all and took
  // `seconds` (forward and drafting).
  void Record(int64_t seqs, int64_t extra_rows, double seconds);
  // cost(k) in one-token steps; < 0 while unknown.
  double Cost(int64_t k) const;

 private:
  double plain_ = -1;       // seconds per sequence of a one-token step
  double per_row_ = -1;     // extra seconds per extra row of a verify step
};

class DraftSwitch {
 public:
  static constexpr int64_t kMinVerifications = 4;
  static constexpr int64_t kFirstBackoff = 8;
  static constexpr int64_t kMaxBackoff = 512;

  // Drafts for this step (false while paused).
  bool drafting() const { return paused_left_ == 0; }
  // The most drafts a step may verify: 1 while probing (after a pause, until drafting is
  // found to pay again: a probe costs a 2-token step, not a (1 + k)-token one), else k.
  int64_t MaxDrafts(int64_t k) const { return probing_ ? std::min<int64_t>(k, 1) : k; }
  // A step of the request went by while paused: counts down to the next probe (which starts
  // from a fresh EWMA). Returns true when drafting resumes with the next step.
  bool Tick();
  // After a verification of `drafted` drafts, `accepted` of them accepted. `cost` is the cost
  // model (cost(k) < 0: unknown). Returns true when the request pauses now (counted as a
  // pause; a measurement pause returns false).
  bool Observe(int64_t drafted, int64_t accepted, const std::function<double(int64_t)>& cost);

  int64_t pauses() const { return pauses_; }

 private:
  double accepted_ = 0;  // EWMA of accepted drafts per verification
  double drafted_ = 0;   // EWMA of drafts per verification
  int64_t samples_ = 0;  // verifications since drafting (re)started
  int64_t paused_left_ = 0;
  int64_t backoff_ = kFirstBackoff;
  int64_t pauses_ = 0;
  bool probing_ = false;
};

}  // namespace dsv4::engine
