// Scratch memory of the CPU kernels, owned by the caller and passed to every kernel call (the
// pattern of gemma.cpp's MatMulEnv): the kernels keep no state of their own between calls.
// It holds the calling thread's buffers (prepared inputs, a call's intermediate results) and
// one set of buffers per pool thread (decoded tiles, panels, top-k candidates). Each buffer
// grows to the largest call seen, before the parallel loops, and is reused: once warm, a
// kernel call allocates nothing.
//
// Not thread-safe: use one Workspace per thread that calls kernels (a call's pool threads
// use their own slots of it). Any pool can be used with it. Movable, not copyable.
#pragma once

#include <memory>

namespace dsv4::kernels {

namespace internal {
struct WorkspaceState;  // kernels/cpu/workspace_internal.h
}  // namespace internal

class Workspace {
 public:
  Workspace();
  ~Workspace();
  Workspace(Workspace&&) noexcept;
  Workspace& operator=(Workspace&&) noexcept;
  Workspace(const Workspace&) = delete;
  Workspace& operator=(const Workspace&) = delete;

  // The buffers, for the kernels.
  internal::WorkspaceState& state() { return *state_; }

 private:
  std::unique_ptr<internal::WorkspaceState> state_;
};

}  // namespace dsv4::kernels
