// dsv4 serve: the OpenAI-compatible HTTP server (src/server) until SIGINT or SIGTERM.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>

#include "byte_size.h"
#include "commands.h"
#include "model_arg.h"
#include "server/server.h"

namespace dsv4::cli {
namespace {

struct ServeOptions {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  std::string max_body = "8MiB";
  int64_t max_concurrent = 64;
  double request_timeout_s = 600;
  std::string kv_budget = "1GiB";
  int threads = 0;
  bool no_prefix_cache = false;
};

// Waits for SIGINT or SIGTERM (blocked in every thread, so only this wait sees them) while
// `busy` is true or forever; returns the signal, or 0 when `busy` went false first.
int WaitForSignal(const sigset_t& set, const std::atomic<bool>* busy) {
  const timespec tick{0, 200 * 1000 * 1000};
  while (busy == nullptr || busy->load()) {
    const int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig > 0) return sig;
  }
  return 0;
}

Status Serve(const ServeOptions& o) {
  server::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.api_key = o.api_key;
  DSV4_ASSIGN_OR_RETURN(so.max_body_bytes, ParseByteSize(o.max_body));
  so.max_concurrent_requests = o.max_concurrent;
  so.request_timeout_s = o.request_timeout_s;
  so.model = ModelArgFactory(o.model);
  so.engine.threads = o.threads;
  so.engine.prefix_caching = !o.no_prefix_cache;
  DSV4_ASSIGN_OR_RETURN(so.engine.kv_budget_bytes, ParseByteSize(o.kv_budget));

  // Block the stop signals before any thread starts: threads inherit the mask, so the
  // signals stay pending until WaitForSignal takes them, and shutdown runs here, outside a
  // signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<server::Server> srv, server::Server::Start(so));
  std::printf("dsv4 serve: listening on %s (loading %s; the API answers 503 until ready)\n",
              srv->url().c_str(), o.model.empty() ? "the built-in dsv4-tiny" : o.model.c_str());
  std::fflush(stdout);

  // Load on a helper thread so a signal during a long load is still seen; the load itself
  // cannot be interrupted, so shutdown waits for it.
  std::atomic<bool> loading{true};
  Status load_status;
  std::thread loader([&] {
    load_status = srv->LoadModel();
    loading.store(false);
  });
  int sig = WaitForSignal(stop_signals, &loading);
  loader.join();
  if (sig == 0 && !load_status.ok()) return load_status;
  if (sig == 0) {
    std::printf("dsv4 serve: model %s ready; POST %s/v1/chat/completions\n",
                srv->engine()->model_name().c_str(), srv->url().c_str());
    std::fflush(stdout);
    sig = WaitForSignal(stop_signals, nullptr);
  }
  std::printf("dsv4 serve: %s received, shutting down\n", sig == SIGINT ? "SIGINT" : "SIGTERM");
  std::fflush(stdout);
  srv->Stop();
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  return Status::Ok();
}

}  // namespace

void RegisterServe(CLI::App& app, int* exit_code) {
  auto o = std::make_shared<ServeOptions>();
  CLI::App* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (see README)");
  cmd->add_option("--model", o->model, "Checkpoint folder (default: built-in dsv4-tiny)");
  cmd->add_option("--host", o->host, "Address to bind (0.0.0.0: every interface)")
      ->capture_default_str();
  cmd->add_option("--port", o->port, "Port (0: any free port)")
      ->check(CLI::Range(0, 65535))
      ->capture_default_str();
  cmd->add_option("--api-key", o->api_key,
                  "Require 'Authorization: Bearer KEY' on /v1/* (health and metrics stay open)");
  cmd->add_option("--max-body-bytes", o->max_body, "Largest request body (e.g. 8MiB); more: 413")
      ->capture_default_str();
  cmd->add_option("--max-concurrent-requests", o->max_concurrent,
                  "Generation requests held at once; more: 429")
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--request-timeout", o->request_timeout_s,
                  "Seconds a generation may take before it is cancelled (504)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--kv-budget", o->kv_budget, "KV cache budget (e.g. 8GiB)")
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "Engine worker threads (0: all cores)")
      ->check(CLI::NonNegativeNumber);
  cmd->add_flag("--no-prefix-cache", o->no_prefix_cache, "Turn prefix caching off");
  cmd->callback([o, exit_code] {
    Status s = Serve(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
