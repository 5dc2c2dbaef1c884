// dsv4 serve: the OpenAI-compatible HTTP server (src/server) until SIGINT, SIGTERM or SIGHUP.
#include <pthread.h>

#include <csignal>
#include <cstdio>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "byte_size.h"
#include "expert_parallel_flags.h"
#include "kv_cache_flags.h"
#include "commands.h"
#include "model_arg.h"
#include "speculative_flags.h"
#include "server/request_policy.h"
#include "server/server.h"

namespace dsv4::cli {
namespace {

struct ServeOptions {
  std::string model;
  std::string host = "127.0.0.1";
  int port = 8080;
  std::string api_key;
  bool api_key_given = false;
  std::vector<std::string> allowed_hosts;
  std::vector<std::string> cors_origins;
  std::string max_body = "8MiB";
  int max_json_depth = kDefaultMaxJsonDepth;
  int64_t max_concurrent = 64;
  int max_connections = 128;
  double header_timeout_s = 10;
  double body_timeout_s = 60;
  double idle_timeout_s = 5;
  double request_timeout_s = 600;
  std::string kv_budget = "1GiB";
  int threads = 0;
  bool no_prefix_cache = false;
  KvCacheDiskFlags kv_cache;
  SpeculativeFlags speculative;
  checkpoint::LoadOptions load;
  EpFlags ep;
};

// Waits for SIGINT, SIGTERM or SIGHUP (blocked in every thread, so only this wait sees them) while
// `busy` is true or forever; returns the signal, or 0 when `busy` went false first.
int WaitForSignal(const sigset_t& set, const std::atomic<bool>* busy) {
  const timespec tick{0, 200 * 1000 * 1000};
  while (busy == nullptr || busy->load()) {
    const int sig = sigtimedwait(&set, nullptr, &tick);
    if (sig > 0) return sig;
  }
  return 0;
}

// The HTTP server on `so` until a stop signal (rank 0's part under --ep).
Status ServeHttp(const ServeOptions& o, const server::ServerOptions& so) {
  // Block the stop signals before any thread starts: threads inherit the mask, so the
  // signals stay pending until WaitForSignal takes them, and shutdown runs here, outside a
  // signal handler.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGINT);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGHUP);  // the terminal went away: shut down just as cleanly
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  DSV4_ASSIGN_OR_RETURN(std::unique_ptr<server::Server> srv, server::Server::Start(so));
  if (o.api_key.empty() && !server::IsLoopbackHost(o.host)) {
    std::fprintf(stderr,
                 "dsv4 serve: warning: listening on %s without --api-key: anyone who can reach "
                 "this address can run generations\n",
                 o.host.c_str());
  }
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
    std::printf("dsv4 serve: model %s ready (speculative: %s); POST %s/v1/chat/completions\n",
                srv->engine()->model_name().c_str(),
                srv->engine()->speculative_summary().c_str(), srv->url().c_str());
    std::fflush(stdout);
    sig = WaitForSignal(stop_signals, nullptr);
  }
  std::printf("dsv4 serve: %s received, shutting down\n",
              sig == SIGINT ? "SIGINT" : sig == SIGHUP ? "SIGHUP" : "SIGTERM");
  std::fflush(stdout);
  srv->Stop();
  pthread_sigmask(SIG_UNBLOCK, &stop_signals, nullptr);
  return Status::Ok();
}

Status Serve(const ServeOptions& o) {
  if (o.api_key_given && o.api_key.empty()) {
    // An empty key would silently mean "no key": refuse rather than start an open server.
    return Status::InvalidArgument(
        "--api-key is empty; pass a key, or leave the option out to serve without one");
  }
  server::ServerOptions so;
  so.host = o.host;
  so.port = o.port;
  so.api_key = o.api_key;
  so.allowed_hosts = o.allowed_hosts;
  so.cors_origins = o.cors_origins;
  DSV4_ASSIGN_OR_RETURN(so.max_body_bytes, ParseByteSize(o.max_body));
  so.max_json_depth = o.max_json_depth;
  so.max_concurrent_requests = o.max_concurrent;
  so.max_connections = o.max_connections;
  so.header_timeout_s = o.header_timeout_s;
  so.body_timeout_s = o.body_timeout_s;
  so.idle_timeout_s = o.idle_timeout_s;
  so.request_timeout_s = o.request_timeout_s;
  // Data-parallel serving (--ep N under mpirun): every rank runs an engine, rank 0 serves
  // HTTP (engine/data_parallel.h). Declared before the server: destroyed after it.
  checkpoint::LoadOptions load = o.load;
  std::unique_ptr<EpSession> ep;
  if (o.ep.ep > 1 || dist::MpirunProcesses() > 1) {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, LoadModelArg(o.model));
    const bool drafter = ck.drafter != checkpoint::DraftFamily::kNone;
    DSV4_ASSIGN_OR_RETURN(ep, EpSession::Start(o.ep, ck, drafter, &load));
    ep->ServeDataParallel();
  }
  so.model = ModelArgFactory(o.model, load);
  so.engine.threads = o.threads;
  so.engine.prefix_caching = !o.no_prefix_cache;
  DSV4_ASSIGN_OR_RETURN(so.engine.kv_budget_bytes, ParseByteSize(o.kv_budget));
  DSV4_RETURN_IF_ERROR(ApplyKvCacheDiskFlags(o.kv_cache, &so.engine));
  ApplySpeculativeFlags(o.speculative, &so.engine);
  if (ep) so.engine.data_parallel = ep->expert_parallel();
  if (ep && !ep->leads()) return ep->ServeFollower(so.model, so.engine);
  Status s = ServeHttp(o, so);
  // Rank 0 failed (port in use, model refused): the other ranks wait for its messages.
  if (!s.ok() && ep && ep->active()) ep->AbortJob(s);
  if (ep) ep->PrintCounters();
  return s;
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
                  "Require 'Authorization: Bearer KEY' on /v1/* (health and metrics stay open)")
      ->each([o](const std::string&) { o->api_key_given = true; });
  cmd->add_option("--allowed-hosts", o->allowed_hosts,
                  "Host header values to answer (comma-separated, '*': any; default: "
                  "localhost, 127.0.0.1, [::1] on a loopback bind, any otherwise)")
      ->delimiter(',');
  cmd->add_option("--cors-origin", o->cors_origins,
                  "Browser origins allowed to call the API (comma-separated, '*': any; "
                  "default: none, requests with an Origin header get 403)")
      ->delimiter(',');
  cmd->add_option("--max-body-bytes", o->max_body, "Largest request body (e.g. 8MiB); more: 413")
      ->capture_default_str();
  cmd->add_option("--max-json-depth", o->max_json_depth,
                  "Deepest nesting of request JSON; deeper: 400 before parsing")
      ->check(CLI::Range(1, kMaxJsonDepthLimit))
      ->capture_default_str();
  cmd->add_option("--max-connections", o->max_connections,
                  "Open connections at once (reading, generating or idle); more: 503")
      ->check(CLI::Range(1, 65536))
      ->capture_default_str();
  cmd->add_option("--header-timeout", o->header_timeout_s,
                  "Seconds from a request's first byte to the end of its headers; later: 408")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--body-timeout", o->body_timeout_s,
                  "Seconds from the end of the headers to the end of the body; later: 408")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--idle-timeout", o->idle_timeout_s,
                  "Seconds a connection may wait for its next request before it is closed")
      ->check(CLI::PositiveNumber)
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
  AddKvCacheDiskFlags(*cmd, &o->kv_cache);
  AddSpeculativeFlags(*cmd, &o->speculative);
  AddWeightCheckFlag(*cmd, &o->load);
  AddEpFlags(*cmd, &o->ep);
  cmd->callback([o, exit_code] {
    Status s = Serve(*o);
    if (!s.ok()) *exit_code = ReportError(s);
  });
}

}  // namespace dsv4::cli
