// Everything one sequence carries between forward calls (its KV cache and streaming state),
// as the scheduler and the engine see it: how many positions it holds, the pages it uses,
// reserving and releasing them, prefix snapshots. Each model's runner implements it
// (runner/causal_lm.h creates them); the scheduler only needs this interface, which is why it
// lives here and sched links kv, not the models.
// Not thread-safe: the engine thread owns every sequence.
#pragma once

#include <cstdint>
#include <memory>

#include "core/status.h"
#include "kv/layout.h"
#include "kv/prefix_snapshot.h"

namespace dsv4::kv {

class SequenceState {
 public:
  virtual ~SequenceState() = default;
  // Positions [0, num_tokens()) have been processed.
  virtual int64_t num_tokens() const = 0;
  // Bytes held now, by component.
  virtual KvFootprint Usage() const = 0;
  // Makes sure the pages for positions [0, n) exist: ResourceExhausted (nothing taken) when
  // the KV budget cannot cover them. Forward reserves by itself; a scheduler reserves ahead
  // to decide admission.
  virtual Status Reserve(int64_t n) = 0;
  // Frees every page; the sequence is back at 0 tokens (preemption, cancellation).
  virtual void Release() = 0;
  // Prefix caching (kv/prefix_cache.h): a snapshot of the state at num_tokens(), or nullptr
  // when unsupported there; and continuing an empty sequence from a snapshot of a sequence
  // of the same model and KV manager (bit for bit the donor's state).
  virtual std::unique_ptr<PrefixSnapshot> TakeSnapshot() { return nullptr; }
  virtual Status RestoreSnapshot(const PrefixSnapshot&) {
    return Status::Unimplemented("prefix snapshots are not supported by this model");
  }
  // Continues an empty sequence from a snapshot image read from disk (snapshot_file.h), into
  // pages of its own: ResourceExhausted (nothing taken) when they do not fit; DataLoss when
  // the image does not describe a state of this model at its position.
  virtual Status RestoreImage(const SnapshotImage&) {
    return Status::Unimplemented("prefix snapshot images are not supported by this model");
  }

  // Speculative decoding. BeginSpeculation: the next forward calls may append up to
  // `max_tokens` positions that a RollbackTo may take back (the state keeps what that
  // needs: overwritten window-ring slots, compressor states / rows, entry and key counts).
  // RollbackTo(n), mark <= n <= num_tokens(): the state becomes bit for bit that of a
  // sequence that only ever saw the first n tokens (ring slots, compressor state, compressed
  // entries and indexer keys, pages beyond what n needs released, Usage() equal).
  // EndSpeculation(): keep everything (drops the undo data). A mark also ends with
  // RollbackTo, Release, RestoreSnapshot/RestoreImage.
  // Forward past mark + max_tokens while marked: FailedPrecondition (no advance).
  // BeginSpeculation: FailedPrecondition while a mark is active; InvalidArgument for
  // max_tokens < 1 or past what the model can take back (V4: the sliding window).
  // RollbackTo: FailedPrecondition without a mark, OutOfRange for n outside
  // [mark, num_tokens()]; the state is unchanged on error. TakeSnapshot returns nullptr while
  // a mark is active.
  virtual bool supports_rollback() const { return false; }
  virtual Status BeginSpeculation(int64_t /*max_tokens*/) {
    return Status::Unimplemented("speculative rollback is not supported by this model");
  }
  virtual Status RollbackTo(int64_t /*n*/) {
    return Status::Unimplemented("speculative rollback is not supported by this model");
  }
  virtual void EndSpeculation() {}
};

}  // namespace dsv4::kv
