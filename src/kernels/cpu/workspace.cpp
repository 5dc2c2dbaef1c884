#include "kernels/cpu/workspace.h"

#include "kernels/cpu/workspace_internal.h"

namespace dsv4::kernels {

Workspace::Workspace() : state_(std::make_unique<internal::WorkspaceState>()) {}
Workspace::~Workspace() = default;
Workspace::Workspace(Workspace&&) noexcept = default;
Workspace& Workspace::operator=(Workspace&&) noexcept = default;

}  // namespace dsv4::kernels
