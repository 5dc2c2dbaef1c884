// A non-owning reference to a callable, for parameters that are called before the function
// returns and never stored past it (ThreadPool::ParallelFor bodies). Unlike std::function it
// never allocates: a lambda capturing more than two pointers' worth by reference made every
// std::function construction a heap allocation, hundreds per decode step.
//
// The referenced callable must outlive every call through the FunctionRef; binding one to a
// temporary lambda in a call's argument list is safe (the temporary lives until the call
// returns). Copyable, trivially; not nullable.
#pragma once

#include <memory>
#include <type_traits>
#include <utility>

namespace dsv4 {

template <class Sig>
class FunctionRef;

template <class R, class... Args>
class FunctionRef<R(Args...)> {
 public:
  template <class F>
    requires(!std::is_same_v<std::remove_cvref_t<F>, FunctionRef> &&
             std::is_invocable_r_v<R, F&, Args...>)
  FunctionRef(F&& f) noexcept  // NOLINT(google-explicit-constructor): like std::function
      : object_(const_cast<void*>(static_cast<const void*>(std::addressof(f)))),
        call_([](void* object, Args... args) -> R {
          return (*static_cast<std::remove_reference_t<F>*>(object))(std::forward<Args>(args)...);
        }) {}

  R operator()(Args... args) const { return call_(object_, std::forward<Args>(args)...); }

 private:
  void* object_;
  R (*call_)(void*, Args...);
};

}  // namespace dsv4
