// The server over loopback on the built-in tiny model: streaming and non-streaming
// completions and chat, concurrency equal to sequential greedy runs, a table of bad requests,
// stop strings, mid-stream disconnects freeing KV pages, Prometheus metrics, limits (queue
// full, timeout, KV budget), loading and shutdown. Every wait is bounded in count and time.
#include "server/server.h"

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <regex>
#include <set>
#include <thread>

#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <nlohmann/json.hpp>

#include "kv/page_layout.h"
#include "checkpoint/config.h"
#include "checkpoint/presets.h"
#include "checkpoint/tensor_store.h"
#include "testing/tokenizer_generator.h"
#include "testing/weight_generator.h"
#include "runner/loaded_model.h"
#include "server/generation.h"
#include "raw_client.h"
#include "../engine/oracle_drafter.h"

namespace dsv4::server {
namespace {

using ::testing::HasSubstr;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;
using test_support::RawClient;

constexpr char kKey[] = "test-key";

// The built-in tiny model, as `dsv4 serve` without --model hands it over. `calls`, when
// given, counts how often the model is made.
ModelFactory Tiny(std::atomic<int>* calls = nullptr, bool with_tokenizer = true) {
  return [calls, with_tokenizer]() -> Result<std::unique_ptr<runner::LoadedModel>> {
    if (calls != nullptr) ++*calls;
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinDefaultModel());
    if (!with_tokenizer) ck.tokenizer_json.clear();
    return runner::LoadCheckpoint(std::move(ck), "/models/tiny");
  };
}

struct Reply {
  int status = 0;  // 0: no HTTP response
  std::string body;  // or the client's error when there was none
  Json json() const { return Json::parse(body, nullptr, false); }
};

Reply Send(int port, const std::string& method, const std::string& path,
           const std::string& body = "", const std::string& key = kKey) {
  httplib::Client cli("127.0.0.1", port);
  cli.set_read_timeout(std::chrono::seconds(60));
  httplib::Headers headers;
  if (!key.empty()) headers.emplace("Authorization", "Bearer " + key);
  httplib::Result r = method == "GET" ? cli.Get(path.c_str(), headers)
                                      : cli.Post(path.c_str(), headers, body, "application/json");
  if (!r) return {0, httplib::to_string(r.error())};
  return {r->status, r->body};
}

// The events of an SSE body: each "data: X" payload, in order.
std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string event = body.substr(pos, end - pos);
    if (event.rfind("data: ", 0) == 0) out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

// The text of a streamed completion or chat (content only), its finish reason and the usage
// chunk, checking the stream is well-formed (JSON chunks, then [DONE]).
struct Streamed {
  std::string text;
  std::string finish_reason;
  Json usage;
  std::string role;
};
Streamed ParseStream(const std::string& body, bool chat) {
  Streamed s;
  std::vector<std::string> events = SseData(body);
  EXPECT_FALSE(events.empty());
  if (events.empty()) return s;
  EXPECT_EQ(events.back(), "[DONE]") << body;
  for (size_t i = 0; i + 1 < events.size(); ++i) {
    Json j = Json::parse(events[i], nullptr, false);
    EXPECT_FALSE(j.is_discarded()) << events[i];
    EXPECT_EQ(j["object"], chat ? "chat.completion.chunk" : "text_completion");
    if (j.contains("usage")) s.usage = j["usage"];
    if (j["choices"].empty()) continue;
    const Json& c = j["choices"][0];
    if (chat) {
      if (c["delta"].contains("role")) s.role = c["delta"]["role"];
      if (c["delta"].contains("content")) s.text += c["delta"]["content"].get<std::string>();
    } else {
      s.text += c["text"].get<std::string>();
    }
    if (!c["finish_reason"].is_null()) s.finish_reason = c["finish_reason"];
  }
  return s;
}

Json CompletionJson(const std::string& prompt, int max_tokens, bool stream) {
  return {{"model", "dsv4-tiny"}, {"prompt", prompt}, {"max_tokens", max_tokens},
          {"temperature", 0}, {"stream", stream}};
}

Json ChatJson(const std::string& user, int max_tokens, bool stream) {
  return {{"model", "dsv4-tiny"},
          {"messages", Json::array({{{"role", "user"}, {"content", user}}})},
          {"max_tokens", max_tokens},
          {"temperature", 0},
          {"stream", stream}};
}

// The UTF-8 character in the middle of `text` (a stop string that starts on a boundary).
std::string MiddleCharacter(const std::string& text) {
  size_t p = text.size() / 2;
  while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
  size_t q = p + 1;
  while (q < text.size() && (static_cast<unsigned char>(text[q]) & 0xC0) == 0x80) ++q;
  return text.substr(p, q - p);
}

// Waits (bounded) until `done` holds; false on timeout.
template <typename F>
bool WaitFor(F done, std::chrono::milliseconds limit = std::chrono::seconds(10)) {
  const auto until = Clock::now() + limit;
  while (Clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return done();
}

// Prometheus text exposition 0.0.4: HELP/TYPE lines well-formed, each TYPE once and before
// its samples, every sample "name{labels} value". Returns "" or what is wrong.
std::string CheckPrometheus(const std::string& text) {
  static const std::regex kName("[a-zA-Z_:][a-zA-Z0-9_:]*");
  static const std::regex kHelp("# HELP ([a-zA-Z_:][a-zA-Z0-9_:]*) .*");
  static const std::regex kType(
      "# TYPE ([a-zA-Z_:][a-zA-Z0-9_:]*) (counter|gauge|histogram|summary|untyped)");
  static const std::regex kSample(
      "([a-zA-Z_:][a-zA-Z0-9_:]*)"
      "(\\{[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\\n]|\\\\[\\\\\"n])*\""
      "(?:,[a-zA-Z_][a-zA-Z0-9_]*=\"(?:[^\"\\\\\\n]|\\\\[\\\\\"n])*\")*\\})? (\\S+)");
  if (text.empty() || text.back() != '\n') return "does not end with a newline";
  std::map<std::string, std::string> types;
  size_t samples = 0;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t end = text.find('\n', pos);
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    std::smatch m;
    if (line.rfind("# HELP ", 0) == 0) {
      if (!std::regex_match(line, m, kHelp)) return "bad HELP line: " + line;
    } else if (line.rfind("# TYPE ", 0) == 0) {
      if (!std::regex_match(line, m, kType)) return "bad TYPE line: " + line;
      if (!types.emplace(m[1], m[2]).second) return "TYPE declared twice: " + line;
    } else if (line.empty() || line[0] == '#') {
      return "unexpected line: '" + line + "'";
    } else {
      if (!std::regex_match(line, m, kSample)) return "bad sample line: " + line;
      std::string name = m[1];
      const std::string value = m[3];
      char* stop = nullptr;
      std::strtod(value.c_str(), &stop);
      if (*stop != '\0' && value != "+Inf" && value != "-Inf" && value != "NaN") {
        return "bad value: " + line;
      }
      for (const char* suffix : {"_bucket", "_sum", "_count"}) {
        const std::string s = suffix;
        if (!types.count(name) && name.size() > s.size() &&
            name.compare(name.size() - s.size(), s.size(), s) == 0 &&
            types.count(name.substr(0, name.size() - s.size())) &&
            types[name.substr(0, name.size() - s.size())] == "histogram") {
          name = name.substr(0, name.size() - s.size());
        }
      }
      if (!types.count(name)) return "sample before its TYPE: " + line;
      ++samples;
    }
  }
  return samples > 0 ? "" : "no samples";
}

// One metric's value from the exposition (first sample whose line starts with `prefix `).
double MetricValue(const std::string& text, const std::string& prefix) {
  const size_t at = text.find("\n" + prefix + " ");
  if (at == std::string::npos) return -1;
  return std::strtod(text.c_str() + at + prefix.size() + 2, nullptr);
}

// One server for most tests: API key, 1 MiB body limit, prefix caching off (so KV use
// returns to exactly 0 when requests end).
class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    ServerOptions o;
    o.model = Tiny();
    o.port = 0;
    o.api_key = kKey;
    o.max_body_bytes = 1 << 20;
    o.max_concurrent_requests = 40;
    o.engine.threads = 2;
    o.engine.prefix_caching = false;
    Result<std::unique_ptr<Server>> s = Server::Start(o);
    ASSERT_TRUE(s.ok()) << s.status().ToString();
    server_ = std::move(s).value().release();
    Status loaded = server_->LoadModel();
    ASSERT_TRUE(loaded.ok()) << loaded.ToString();
  }
  static void TearDownTestSuite() {
    delete server_;
    server_ = nullptr;
  }
  static int port() { return server_->port(); }
  static Reply Post(const std::string& path, const Json& body) {
    return Send(port(), "POST", path, body.dump());
  }
  static Server* server_;
};
Server* ServerTest::server_ = nullptr;

TEST_F(ServerTest, HealthModelsAndUrl) {
  EXPECT_EQ(server_->url(), "http://127.0.0.1:" + std::to_string(port()));
  Reply h = Send(port(), "GET", "/health", "", "");  // no key needed
  EXPECT_EQ(h.status, 200);
  EXPECT_EQ(h.json()["status"], "ok");
  Reply m = Send(port(), "GET", "/v1/models");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(m.json()["object"], "list");
  EXPECT_EQ(m.json()["data"][0]["id"], "dsv4-tiny");
  EXPECT_EQ(m.json()["data"][0]["max_model_len"], 65536);
  EXPECT_EQ(Send(port(), "GET", "/v1/models/dsv4-tiny").status, 200);
  Reply unknown = Send(port(), "GET", "/v1/models/gpt-4");
  EXPECT_EQ(unknown.status, 404);
  EXPECT_EQ(unknown.json()["error"]["code"], "model_not_found");
}

TEST_F(ServerTest, CompletionStreamingMatchesNonStreaming) {
  Reply plain = Post("/v1/completions", CompletionJson("The quick brown fox", 10, false));
  ASSERT_EQ(plain.status, 200) << plain.body;
  const Json j = plain.json();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["model"], "dsv4-tiny");
  EXPECT_THAT(j["id"].get<std::string>(), ::testing::StartsWith("cmpl-"));
  const std::string text = j["choices"][0]["text"];
  const std::string reason = j["choices"][0]["finish_reason"];
  EXPECT_TRUE(reason == "length" || reason == "stop") << reason;
  EXPECT_GT(j["usage"]["prompt_tokens"].get<int>(), 1);
  EXPECT_EQ(j["usage"]["total_tokens"].get<int>(),
            j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());

  Json sreq = CompletionJson("The quick brown fox", 10, true);
  sreq["stream_options"] = {{"include_usage", true}};
  Reply streamed = Post("/v1/completions", sreq);
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  Streamed s = ParseStream(streamed.body, false);
  EXPECT_EQ(s.text, text);
  EXPECT_EQ(s.finish_reason, reason);
  EXPECT_EQ(s.usage, j["usage"]);

  // A token-id prompt works too (and needs no tokenizer on the way in).
  Json ids = CompletionJson("", 3, false);
  ids["prompt"] = {5, 6, 7, 8};
  Reply r = Post("/v1/completions", ids);
  ASSERT_EQ(r.status, 200) << r.body;
  EXPECT_EQ(r.json()["usage"]["prompt_tokens"], 4);
}

TEST_F(ServerTest, ChatStreamingMatchesNonStreaming) {
  Reply plain = Post("/v1/chat/completions", ChatJson("Hello there", 8, false));
  ASSERT_EQ(plain.status, 200) << plain.body;
  const Json j = plain.json();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  const std::string content = j["choices"][0]["message"]["content"];
  const std::string reason = j["choices"][0]["finish_reason"];

  Json sreq = ChatJson("Hello there", 8, true);
  sreq["stream_options"] = {{"include_usage", true}};
  Reply streamed = Post("/v1/chat/completions", sreq);
  ASSERT_EQ(streamed.status, 200) << streamed.body;
  Streamed s = ParseStream(streamed.body, true);
  EXPECT_EQ(s.role, "assistant");
  EXPECT_EQ(s.text, content);
  EXPECT_EQ(s.finish_reason, reason);
  EXPECT_EQ(s.usage, j["usage"]);

  // Offered tools are rendered into the prompt (DeepSeek's tools section).
  Json with_tools = ChatJson("Hello there", 2, false);
  with_tools["tools"] = Json::array(
      {{{"type", "function"},
        {"function", {{"name", "get_weather"}, {"parameters", {{"type", "object"}}}}}}});
  Reply t = Post("/v1/chat/completions", with_tools);
  ASSERT_EQ(t.status, 200) << t.body;
  EXPECT_GT(t.json()["usage"]["prompt_tokens"].get<int>(),
            j["usage"]["prompt_tokens"].get<int>() + 100);
}

// 32 clients at once get exactly what each gets alone (greedy decoding is batch-invariant).
TEST_F(ServerTest, ThirtyTwoConcurrentClientsMatchSequentialRuns) {
  constexpr int kClients = 32;
  auto body = [](int i) {
    return CompletionJson("Request " + std::to_string(i) + ": tell me about the number " +
                              std::to_string(i * 7),
                          6, false);
  };
  std::vector<std::string> sequential(kClients);
  for (int i = 0; i < kClients; ++i) {
    Reply r = Post("/v1/completions", body(i));
    ASSERT_EQ(r.status, 200) << r.body;
    sequential[i] = r.json()["choices"][0].dump() + r.json()["usage"].dump();
  }
  std::vector<std::string> concurrent(kClients);
  std::vector<int> status(kClients, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kClients; ++i) {
    threads.emplace_back([&, i] {
      Reply r = Post("/v1/completions", body(i));
      status[i] = r.status;
      concurrent[i] = r.status == 200 ? r.json()["choices"][0].dump() + r.json()["usage"].dump()
                                      : r.body;
    });
  }
  for (auto& t : threads) t.join();
  std::set<std::string> distinct;
  for (int i = 0; i < kClients; ++i) {
    EXPECT_EQ(status[i], 200) << i << ": " << concurrent[i];
    EXPECT_EQ(concurrent[i], sequential[i]) << i;
    distinct.insert(sequential[i]);
  }
  EXPECT_GT(distinct.size(), 1u);  // the prompts really differ
  EXPECT_GE(server_->engine()->Stats().max_running, 2);
}

// Each bad request gets its status and an OpenAI error body; the server keeps serving.
TEST_F(ServerTest, BadRequestsGetTheirStatusAndTheServerKeepsServing) {
  struct Case {
    std::string name, method, path, body, key;
    int status;
    std::string param, code;
  };
  std::string long_prompt = "[";
  for (int i = 0; i < 65536; ++i) long_prompt += i ? ",5" : "5";
  long_prompt += "]";
  const std::string ok = R"("model": "dsv4-tiny", "max_tokens": 2)";
  const std::vector<Case> cases = {
      {"malformed json", "POST", "/v1/completions", R"({"prompt": )", kKey, 400, "", ""},
      {"not an object", "POST", "/v1/completions", "[1]", kKey, 400, "", ""},
      {"wrong type", "POST", "/v1/completions", R"({"prompt": "x", "max_tokens": "3"})", kKey,
       400, "max_tokens", ""},
      {"wrong type chat", "POST", "/v1/chat/completions", R"({"messages": "hi"})", kKey, 400,
       "messages", ""},
      {"empty messages", "POST", "/v1/chat/completions", R"({"messages": []})", kKey, 400,
       "messages", ""},
      {"message without content", "POST", "/v1/chat/completions",
       R"({"messages": [{"role": "user"}]})", kKey, 400, "messages[0].content", ""},
      {"negative max_tokens", "POST", "/v1/completions", R"({"prompt": "x", "max_tokens": -1})",
       kKey, 400, "max_tokens", ""},
      {"huge max_tokens", "POST", "/v1/completions",
       R"({"prompt": "x", "max_tokens": 1000000000000})", kKey, 400, "max_tokens",
       "context_length_exceeded"},
      {"negative temperature", "POST", "/v1/completions",
       R"({"prompt": "x", "temperature": -1})", kKey, 400, "temperature", ""},
      {"top_p zero", "POST", "/v1/chat/completions",
       R"({"messages": [{"role": "user", "content": "x"}], "top_p": 0})", kKey, 400, "top_p", ""},
      {"token outside the vocabulary", "POST", "/v1/completions",
       R"({"prompt": [1, 99999], "max_tokens": 2})", kKey, 400, "", ""},
      {"prompt longer than the context", "POST", "/v1/completions",
       "{\"prompt\": " + long_prompt + ", \"max_tokens\": 1}", kKey, 400, "prompt",
       "context_length_exceeded"},
      {"unknown model", "POST", "/v1/completions", R"({"model": "gpt-4", "prompt": "x"})", kKey,
       404, "model", "model_not_found"},
      {"oversized body", "POST", "/v1/completions",
       "{\"prompt\": \"" + std::string(1100000, 'a') + "\"}", kKey, 413, "", "request_too_large"},
      {"missing api key", "POST", "/v1/completions", "{\"prompt\": \"x\", " + ok + "}", "", 401,
       "", "invalid_api_key"},
      {"wrong api key", "POST", "/v1/completions", "{\"prompt\": \"x\", " + ok + "}", "nope", 401,
       "", "invalid_api_key"},
      {"wrong api key on models", "GET", "/v1/models", "", "nope", 401, "", "invalid_api_key"},
      {"unknown route", "GET", "/v2/nothing", "", kKey, 404, "", "not_found"},
      {"GET on a POST route", "GET", "/v1/completions", "", kKey, 405, "", "method_not_allowed"},
  };
  for (const Case& c : cases) {
    Reply r = Send(port(), c.method, c.path, c.body, c.key);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    const Json j = r.json();
    ASSERT_TRUE(j.contains("error")) << c.name << ": " << r.body;
    const Json& e = j["error"];
    EXPECT_TRUE(e["message"].is_string() && !e["message"].get<std::string>().empty()) << c.name;
    EXPECT_TRUE(e["type"].is_string()) << c.name;
    EXPECT_TRUE(e.contains("param") && e.contains("code")) << c.name;
    if (!c.param.empty()) EXPECT_EQ(e["param"], c.param) << c.name << ": " << r.body;
    if (!c.code.empty()) EXPECT_EQ(e["code"], c.code) << c.name << ": " << r.body;
    // Still serving.
    Reply good = Send(port(), "POST", "/v1/completions", "{\"prompt\": \"hi\", " + ok + "}");
    EXPECT_EQ(good.status, 200) << "after " << c.name << ": " << good.body;
  }
}

TEST_F(ServerTest, StopStringsTruncateBeforeTheMatch) {
  Reply full = Post("/v1/completions", CompletionJson("Once upon a time", 16, false));
  ASSERT_EQ(full.status, 200);
  const std::string text = full.json()["choices"][0]["text"];
  ASSERT_GT(text.size(), 6u) << text;
  // A stop string from the middle of the greedy text.
  const std::string stop = MiddleCharacter(text);
  const std::string want = text.substr(0, text.find(stop));
  for (bool stream : {false, true}) {
    Json req = CompletionJson("Once upon a time", 16, stream);
    req["stop"] = Json::array({"never appears in this text", stop});
    Reply r = Post("/v1/completions", req);
    ASSERT_EQ(r.status, 200) << r.body;
    if (stream) {
      Streamed s = ParseStream(r.body, false);
      EXPECT_EQ(s.text, want) << "stop " << Json(stop).dump();
      EXPECT_EQ(s.finish_reason, "stop");
    } else {
      EXPECT_EQ(r.json()["choices"][0]["text"], want) << "stop " << Json(stop).dump();
      EXPECT_EQ(r.json()["choices"][0]["finish_reason"], "stop");
      EXPECT_LE(r.json()["usage"]["completion_tokens"].get<int>(), 16);
    }
  }
}

// A client that goes away mid-stream cancels its request: its pages return (KV use back to
// 0 with prefix caching off) long before max_tokens would have been generated.
TEST_F(ServerTest, MidStreamDisconnectFreesThePages) {
  Engine& engine = *server_->engine();
  ASSERT_TRUE(WaitFor([&] { return engine.Stats().kv.used_bytes == 0; }));
  const int64_t generated_before = engine.Stats().generated_tokens;
  const int64_t finished_before = engine.Stats().finished;
  constexpr int kMaxTokens = 5000;
  Json req = CompletionJson("Tell me a very long story", kMaxTokens, true);
  req["ignore_eos"] = true;
  RawClient client(port());
  ASSERT_TRUE(client.connected());
  client.Post("/v1/completions", req.dump(), kKey);
  const std::string got = client.ReadUntil("data: ", 3);
  ASSERT_THAT(got, HasSubstr("200 OK"));
  EXPECT_GT(engine.Stats().kv.used_bytes, 0);  // the request holds pages while it streams
  client.Close();
  EXPECT_TRUE(WaitFor([&] {
    EngineStats s = engine.Stats();
    return s.finished > finished_before && s.running == 0 && s.waiting == 0 &&
           s.kv.used_bytes == 0;
  })) << "KV used: " << engine.Stats().kv.used_bytes;
  EXPECT_LT(engine.Stats().generated_tokens - generated_before, kMaxTokens / 2);
  const std::string metrics = Send(port(), "GET", "/metrics").body;
  EXPECT_GE(MetricValue(metrics, "dsv4_streams_aborted_total"), 1);
  EXPECT_EQ(MetricValue(metrics, "dsv4_kv_used_bytes"), 0);
  EXPECT_EQ(MetricValue(metrics, "dsv4_requests_in_flight"), 0);
}

TEST_F(ServerTest, MetricsAreValidPrometheusText) {
  ASSERT_EQ(Post("/v1/completions", CompletionJson("metrics", 3, false)).status, 200);
  httplib::Client cli("127.0.0.1", port());
  httplib::Result r = cli.Get("/metrics");  // open without the API key
  ASSERT_TRUE(r);
  ASSERT_EQ(r->status, 200);
  EXPECT_THAT(r->get_header_value("Content-Type"), HasSubstr("text/plain; version=0.0.4"));
  const std::string& text = r->body;
  EXPECT_EQ(CheckPrometheus(text), "") << text;
  EXPECT_THAT(text, HasSubstr("dsv4_model_ready{model=\"dsv4-tiny\"} 1\n"));
  EXPECT_THAT(text, HasSubstr("dsv4_http_requests_total{endpoint=\"/v1/completions\","
                              "status=\"200\"}"));
  EXPECT_GT(MetricValue(text, "dsv4_time_to_first_token_seconds_bucket{le=\"+Inf\"}"), 0);
  EXPECT_GT(MetricValue(text, "dsv4_time_per_output_token_seconds_count"), 0);
  EXPECT_GT(MetricValue(text, "dsv4_generation_tokens_total"), 0);
  EXPECT_GT(MetricValue(text, "dsv4_prompt_tokens_total"), 0);
  EXPECT_GE(MetricValue(text, "dsv4_requests_waiting"), 0);
  EXPECT_GE(MetricValue(text, "dsv4_requests_running"), 0);
  EXPECT_GE(MetricValue(text, "dsv4_preemptions_total"), 0);
  EXPECT_GE(MetricValue(text, "dsv4_prefix_cache_hits_total"), 0);
  for (const char* tier : {"ram", "disk"}) {
    for (const char* m : {"hits_total", "hit_tokens_total", "restore_seconds_total", "bytes"}) {
      EXPECT_GE(MetricValue(text, std::string("dsv4_prefix_cache_tier_") + m + "{tier=\"" +
                                      tier + "\"}"), 0) << m << " " << tier;
    }
  }
  EXPECT_EQ(MetricValue(text, "dsv4_prefix_cache_disk_storing"), 0);  // no --kv-cache-dir
  EXPECT_EQ(MetricValue(text, "dsv4_kv_budget_bytes"), 1 << 30);
  for (const char* c : {"swa_window", "csa_entries", "csa_indexer_keys", "hca_entries"}) {
    EXPECT_THAT(text, HasSubstr(std::string("dsv4_kv_component_pages{component=\"") + c + "\"}"));
    EXPECT_THAT(text, HasSubstr(std::string("dsv4_kv_component_bytes{component=\"") + c + "\"}"));
  }
  // The checker itself refuses broken text.
  EXPECT_NE(CheckPrometheus("x 1\n"), "");  // no TYPE
  EXPECT_NE(CheckPrometheus("# TYPE x gauge\nx{a=b} 1\n"), "");
  EXPECT_NE(CheckPrometheus("# TYPE x gauge\nx one\n"), "");
  EXPECT_EQ(CheckPrometheus("# TYPE x gauge\nx{a=\"b\\\"c\"} 1\n"), "");
}

TEST(ServerLoading, AnswersServiceUnavailableUntilLoaded) {
  ServerOptions o;
  o.port = 0;
  Result<std::unique_ptr<Server>> s = Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Server& srv = *s.value();
  EXPECT_EQ(srv.engine(), nullptr);
  Reply h = Send(srv.port(), "GET", "/health");
  EXPECT_EQ(h.status, 503);
  EXPECT_EQ(h.json()["error"]["code"], "model_loading");
  Reply c = Send(srv.port(), "POST", "/v1/completions", R"({"prompt": "x"})");
  EXPECT_EQ(c.status, 503);
  EXPECT_EQ(c.json()["error"]["type"], "service_unavailable");
  Reply m = Send(srv.port(), "GET", "/metrics");
  EXPECT_EQ(m.status, 200);
  EXPECT_EQ(CheckPrometheus(m.body), "") << m.body;
  EXPECT_THAT(m.body, HasSubstr("dsv4_model_ready{model=\"\"} 0\n"));
  srv.Stop();
  srv.Stop();  // idempotent
  EXPECT_EQ(Send(srv.port(), "GET", "/health").status, 0);  // nobody listens any more
}

// The server serves the engine's model: it makes the model once (no second open of the
// checkpoint for a config or tokenizer), its limits come from the engine, and a model
// without a tokenizer is refused with what is missing.
TEST(ServerLoading, UsesTheEnginesModelConfigAndTokenizer) {
  std::atomic<int> calls{0};
  ServerOptions o;
  o.model = Tiny(&calls);
  o.port = 0;
  o.engine.threads = 1;
  Result<std::unique_ptr<Server>> s = Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Server& srv = *s.value();
  ASSERT_TRUE(srv.LoadModel().ok());
  EXPECT_EQ(calls.load(), 1);
  const int64_t context = srv.engine()->config().max_position_embeddings;
  Reply m = Send(srv.port(), "GET", "/v1/models/dsv4-tiny");
  ASSERT_EQ(m.status, 200) << m.body;
  EXPECT_EQ(m.json()["max_model_len"], context);
  // The engine's tokenizer encodes the prompt: usage counts its tokens (BOS + "Hello").
  const std::vector<int32_t> ids =
      srv.engine()->tokenizer().value()->Encode("Hello", {.add_bos = true}).value();
  Reply c = Send(srv.port(), "POST", "/v1/completions", CompletionJson("Hello", 2, false).dump());
  ASSERT_EQ(c.status, 200) << c.body;
  EXPECT_EQ(c.json()["usage"]["prompt_tokens"], ids.size());
  // The metrics show the engine's budget before any step ran.
  EXPECT_EQ(MetricValue(Send(srv.port(), "GET", "/metrics").body, "dsv4_kv_budget_bytes"),
            static_cast<double>(o.engine.kv_budget_bytes));
  srv.Stop();

  o.model = Tiny(&calls, /*with_tokenizer=*/false);
  Result<std::unique_ptr<Server>> bare = Server::Start(o);
  ASSERT_TRUE(bare.ok());
  const Status loaded = bare.value()->LoadModel();
  EXPECT_EQ(loaded.code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(loaded.message(), HasSubstr("tokenizer.json not found in /models/tiny"));
  EXPECT_EQ(bare.value()->engine(), nullptr);
  o.model = nullptr;
  Result<std::unique_ptr<Server>> none = Server::Start(o);
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(none.value()->LoadModel().code(), StatusCode::kInvalidArgument);
}

TEST(ServerOptionsCheck, RefusesBadOptionsAndBusyPorts) {
  ServerOptions o;
  o.port = 70000;
  EXPECT_EQ(Server::Start(o).status().code(), StatusCode::kInvalidArgument);
  o.port = 0;
  o.max_concurrent_requests = 0;
  EXPECT_EQ(Server::Start(o).status().code(), StatusCode::kInvalidArgument);
  o.max_concurrent_requests = 4;
  Result<std::unique_ptr<Server>> a = Server::Start(o);
  ASSERT_TRUE(a.ok());
  o.port = a.value()->port();
  Result<std::unique_ptr<Server>> b = Server::Start(o);
  EXPECT_EQ(b.status().code(), StatusCode::kIoError);
  EXPECT_THAT(b.status().message(), HasSubstr(std::to_string(o.port)));
}

TEST(GenerationSlots, AllTakenIsTooManyRequests) {
  // The slot check comes before the engine is touched, so no engine is needed here.
  std::atomic<int64_t> in_flight{1};
  std::atomic<bool> stopping{false};
  ServerMetrics metrics;
  GenerationContext ctx{.engine = nullptr, .tokenizer = nullptr, .metrics = &metrics,
                        .in_flight = &in_flight, .max_in_flight = 1, .stopping = &stopping};
  ApiResult<std::unique_ptr<Generation>> g =
      Generation::Start(ctx, GenerationRequest{}, {}, Clock::now());
  ASSERT_FALSE(g.ok());
  EXPECT_EQ(g.error().http_status, 429);
  EXPECT_EQ(g.error().code, "too_many_requests");
  EXPECT_EQ(in_flight.load(), 1);
}

// A small server: the engine queue holds two requests, the KV budget fits 256 tokens and a
// request times out after one second. Then it is stopped with a stream in flight.
TEST(ServerLimits, QueueFullTimeoutKvBudgetAndShutdown) {
  const kv::PageLayout layout(checkpoint::TinyV4Config(),
                              kv::DefaultKvFormats(checkpoint::TinyV4Config().arch));
  ServerOptions o;
  o.model = Tiny();
  o.port = 0;
  o.max_concurrent_requests = 3;
  o.request_timeout_s = 1.0;
  o.engine.threads = 1;
  o.engine.max_queued_requests = 2;
  o.engine.kv_budget_bytes = layout.BytesAt(256);
  ASSERT_LT(o.engine.kv_budget_bytes, layout.BytesAt(1000));
  Result<std::unique_ptr<Server>> s = Server::Start(o);
  ASSERT_TRUE(s.ok()) << s.status().ToString();
  Server& srv = *s.value();
  ASSERT_TRUE(srv.LoadModel().ok());
  const int port = srv.port();
  const std::string short_req = CompletionJson("hello", 4, false).dump();

  // Too big for the whole KV budget: the client must change it (400), not retry (429).
  Reply kv = Send(port, "POST", "/v1/completions", CompletionJson("hello", 1000, false).dump());
  EXPECT_EQ(kv.status, 400) << kv.body;
  EXPECT_EQ(kv.json()["error"]["code"], "kv_budget_exceeded");

  // Paused engine: two requests wait in the queue, the third finds it full (429); the two
  // time out (504 / an error event in the stream) and are cancelled.
  srv.engine()->SetPaused(true);
  Reply plain, streamed;
  std::thread a([&] { plain = Send(port, "POST", "/v1/completions", short_req); });
  std::thread b([&] {
    streamed = Send(port, "POST", "/v1/completions", CompletionJson("hi", 4, true).dump());
  });
  ASSERT_TRUE(WaitFor([&] {
    return MetricValue(Send(port, "GET", "/metrics").body, "dsv4_requests_in_flight") == 2;
  }));
  Reply third = Send(port, "POST", "/v1/completions", short_req);
  EXPECT_EQ(third.status, 429) << third.body;
  EXPECT_EQ(third.json()["error"]["code"], "queue_full");
  a.join();
  b.join();
  EXPECT_EQ(plain.status, 504) << plain.body;
  EXPECT_EQ(plain.json()["error"]["code"], "request_timeout");
  EXPECT_EQ(streamed.status, 200);
  std::vector<std::string> events = SseData(streamed.body);
  ASSERT_GE(events.size(), 2u) << streamed.body;
  EXPECT_EQ(Json::parse(events[events.size() - 2])["error"]["code"], "request_timeout");
  EXPECT_EQ(events.back(), "[DONE]");
  srv.engine()->SetPaused(false);
  EXPECT_EQ(Send(port, "POST", "/v1/completions", short_req).status, 200);

  // Stop with a stream in flight: the stream ends, Stop returns promptly.
  Json long_req = CompletionJson("hi", 200, true);
  long_req["ignore_eos"] = true;
  RawClient client(port);
  ASSERT_TRUE(client.connected());
  client.Post("/v1/completions", long_req.dump(), kKey);
  client.ReadUntil("data: ", 2);
  const auto t0 = Clock::now();
  srv.Stop();
  EXPECT_LT(Clock::now() - t0, std::chrono::seconds(5));
  const std::string got = client.ReadUntil("never", 1);  // reads to the end of the stream
  EXPECT_THAT(got, ::testing::Not(HasSubstr("\"finish_reason\":\"length\"")));
}

}  // namespace
}  // namespace dsv4::server

namespace dsv4::server {
namespace {

// /tokenize -> /detokenize round trips text (special tokens spelled in it included); chat
// messages tokenize as the chat endpoint encodes them; /apply-template renders the prompt;
// bad input gets the API's 400s.
TEST_F(ServerTest, TokenizeDetokenizeAndApplyTemplate) {
  const std::string text = "Hello, world! 123 \xf0\x9f\x98\x80 <｜end▁of▁sentence｜>";
  Reply t = Post("/tokenize", {{"content", text}});
  ASSERT_EQ(t.status, 200) << t.body;
  const Json ids = t.json()["tokens"];
  ASSERT_TRUE(ids.is_array() && !ids.empty()) << t.body;
  EXPECT_EQ(t.json()["count"], ids.size());
  Reply d = Post("/detokenize", {{"tokens", ids}});
  ASSERT_EQ(d.status, 200) << d.body;
  EXPECT_EQ(d.json()["content"], text);
  // parse_special false: the end-of-sentence spelling is ordinary text, more tokens.
  Reply plain = Post("/tokenize", {{"content", text}, {"parse_special", false}});
  EXPECT_GT(plain.json()["tokens"].size(), ids.size());
  Reply bos = Post("/tokenize", {{"content", "hi"}, {"add_special", true}});
  Reply no_bos = Post("/tokenize", {{"content", "hi"}});
  EXPECT_EQ(bos.json()["tokens"].size(), no_bos.json()["tokens"].size() + 1);
  Reply pieces = Post("/tokenize", {{"content", "hi"}, {"with_pieces", true}});
  ASSERT_EQ(pieces.status, 200) << pieces.body;
  EXPECT_TRUE(pieces.json()["tokens"][0].contains("piece")) << pieces.body;

  const Json chat = {{"messages", Json::array({{{"role", "user"}, {"content", "Hi there"}}})}};
  Reply rendered = Post("/apply-template", chat);
  ASSERT_EQ(rendered.status, 200) << rendered.body;
  const std::string prompt = rendered.json()["prompt"];
  EXPECT_THAT(prompt, HasSubstr("Hi there"));
  Reply chat_ids = Post("/tokenize", chat);
  ASSERT_EQ(chat_ids.status, 200) << chat_ids.body;
  Reply back = Post("/detokenize", {{"tokens", chat_ids.json()["tokens"]}});
  EXPECT_EQ(back.json()["content"], prompt);

  for (const auto& [path, body] : std::vector<std::pair<std::string, Json>>{
           {"/tokenize", Json::object()},
           {"/tokenize", {{"content", 5}}},
           {"/tokenize", {{"content", "x"}, {"messages", Json::array()}}},
           {"/detokenize", {{"tokens", {1, 99999999}}}},
           {"/detokenize", {{"tokens", {-1}}}},
           {"/detokenize", {{"tokens", "12"}}},
           {"/apply-template", {{"messages", "hi"}}}}) {
    Reply r = Post(path, body);
    EXPECT_EQ(r.status, 400) << path << " " << body.dump() << ": " << r.body;
    EXPECT_TRUE(r.json().contains("error")) << r.body;
  }
  EXPECT_EQ(Send(port(), "POST", "/tokenize", R"({"content": "x"})", "").status, 401);
}

}  // namespace
}  // namespace dsv4::server

namespace dsv4::server {
namespace {

// The built-in tiny V3.2 checkpoint in memory (TinyV32Config, generated weights, the tiny
// tokenizer), as `dsv4 make-tiny --preset v3.2-tiny` writes one.
ModelFactory TinyV32() {
  return []() -> Result<std::unique_ptr<runner::LoadedModel>> {
    DSV4_ASSIGN_OR_RETURN(checkpoint::Checkpoint ck, fixtures::BuiltinTinyV32Model());
    return runner::LoadCheckpoint(std::move(ck), "/models/tiny-v32");
  };
}

// The chat format follows the checkpoint: the same request renders as DeepSeek-V3.2's
// encoding on a V3.2 model and as V4's on a V4 model (docs/chat-format.md), in
// /apply-template, /tokenize and the chat endpoint, whose tool-call block is V3.2's too.
TEST_F(ServerTest, ChatFormatFollowsTheModel) {
  const Json request = {
      {"messages", Json::array({{{"role", "developer"}, {"content", "D"}},
                                {{"role", "user"}, {"content", "A"}},
                                {{"role", "user"}, {"content", "B"}}})}};
  const std::string bos = "<｜begin▁of▁sentence｜>", user = "<｜User｜>",
                    asst = "<｜Assistant｜>";
  Reply v4 = Post("/apply-template", request);
  ASSERT_EQ(v4.status, 200) << v4.body;
  EXPECT_EQ(v4.json()["chat_format"], "deepseek-v4");
  // V4: developer and user text merge into turns that hand over once.
  EXPECT_EQ(v4.json()["prompt"], bos + user + "D" + user + "A\n\nB" + asst + "</think>");

  ServerOptions o;
  o.model = TinyV32();
  o.port = 0;
  o.engine.threads = 2;
  Result<std::unique_ptr<Server>> started = Server::Start(o);
  ASSERT_TRUE(started.ok()) << started.status().ToString();
  std::unique_ptr<Server> v32_server = std::move(started).value();
  Status loaded = v32_server->LoadModel();
  ASSERT_TRUE(loaded.ok()) << loaded.ToString();
  const int v32_port = v32_server->port();
  Reply v32 = Send(v32_port, "POST", "/apply-template", request.dump(), "");
  ASSERT_EQ(v32.status, 200) << v32.body;
  EXPECT_EQ(v32.json()["chat_format"], "deepseek-v3.2");
  // V3.2: every user turn hands over; the developer message announces the user's message.
  EXPECT_EQ(v32.json()["prompt"], bos + user + "\n\n# The user's message is: D" + asst +
                                      "</think>" + user + "A" + asst + "</think>" + user + "B" +
                                      asst + "</think>");
  Reply ids = Send(v32_port, "POST", "/tokenize", request.dump(), "");
  ASSERT_EQ(ids.status, 200) << ids.body;
  Reply back =
      Send(v32_port, "POST", "/detokenize", Json{{"tokens", ids.json()["tokens"]}}.dump(), "");
  EXPECT_EQ(back.json()["content"], v32.json()["prompt"]);
  // What V3.2 does not have is a 400 naming the message.
  Reply reminder = Send(v32_port, "POST", "/apply-template",
                        Json{{"messages", Json::array({{{"role", "user"}, {"content", "A"}},
                                                       {{"role", "latest_reminder"},
                                                        {"content", "R"}}})}}
                            .dump(),
                        "");
  EXPECT_EQ(reminder.status, 400) << reminder.body;
  EXPECT_THAT(reminder.body, HasSubstr("messages[1].role"));
  // The chat endpoint generates on the V3.2 model (tools offered: the V3.2 splitter runs).
  Json chat = request;
  chat["max_tokens"] = 4;
  chat["temperature"] = 0;
  chat["tools"] = Json::array({{{"type", "function"}, {"function", {{"name", "f"}}}}});
  Reply answer = Send(v32_port, "POST", "/v1/chat/completions", chat.dump(), "");
  ASSERT_EQ(answer.status, 200) << answer.body;
  EXPECT_EQ(answer.json()["choices"][0]["message"]["role"], "assistant");
}


// Speculative decoding behind the API: with an oracle drafter that replays the greedy
// continuation (every draft accepted), the text is the same as without speculation (and
// with "speculative": false), a stop string inside an accepted run cuts the text exactly
// there, streamed or not, and /metrics reports the acceptance.
TEST(ServerSpeculative, SameTextStopStringsInsideAcceptedRunsAndMetrics) {
  // The reference: a token-id prompt and its greedy continuation, from a plain engine.
  EngineOptions plain;
  plain.speculative = SpeculativeMode::kOff;
  auto e = Engine::Create(Tiny(), plain).value();
  std::vector<int32_t> prompt =
      (*e->tokenizer())->Encode("Once upon a time", {.add_bos = false}).value();
  GenerationRequest g;
  g.prompt = prompt;
  g.stop = {.max_new_tokens = 16, .ignore_eos = true};
  std::vector<int32_t> ref = prompt;
  std::shared_ptr<RequestStream> stream = e->Submit(g).value();
  for (TokenEvent ev; stream->Next(&ev);) {
    if (!ev.finished) ref.push_back(ev.token);
  }
  e.reset();

  ServerOptions o;
  o.model = Tiny();
  o.port = 0;
  o.engine.threads = 2;
  o.engine.prefix_caching = false;
  o.engine = engine_test::WithOracle(o.engine, {ref}, engine_test::Always, 4);
  std::unique_ptr<Server> srv = Server::Start(o).value();
  ASSERT_TRUE(srv->LoadModel().ok());
  auto complete = [&](bool stream, const Json& extra) {
    Json req = {{"prompt", prompt}, {"max_tokens", 16}, {"temperature", 0},
                {"ignore_eos", true}, {"stream", stream}};
    req.update(extra);
    return Send(srv->port(), "POST", "/v1/completions", req.dump(), "");
  };
  Reply off = complete(false, {{"speculative", false}});
  ASSERT_EQ(off.status, 200) << off.body;
  const std::string text = off.json()["choices"][0]["text"];
  EXPECT_EQ(srv->engine()->Stats().spec_verifications, 0);
  Reply on = complete(false, Json::object());
  EXPECT_EQ(on.json()["choices"][0]["text"], text);
  EXPECT_GT(srv->engine()->Stats().spec_accepted_tokens, 0);
  // A stop string from the middle of the text: the tokens after it arrived in the same
  // accepted run, and none of them shows.
  ASSERT_GT(text.size(), 6u) << text;
  const std::string stop = MiddleCharacter(text);
  const std::string want = text.substr(0, text.find(stop));
  for (bool stream : {false, true}) {
    Reply r = complete(stream, {{"stop", Json::array({stop})}});
    ASSERT_EQ(r.status, 200) << r.body;
    if (stream) {
      Streamed st = ParseStream(r.body, false);
      EXPECT_EQ(st.text, want) << "stop " << Json(stop).dump();
      EXPECT_EQ(st.finish_reason, "stop");
    } else {
      EXPECT_EQ(r.json()["choices"][0]["text"], want) << "stop " << Json(stop).dump();
      EXPECT_EQ(r.json()["choices"][0]["finish_reason"], "stop");
    }
  }
  // A request ended by a stop string is cancelled after its reply: the engine may still be
  // finishing that step, so compare the counters once it is idle.
  ASSERT_TRUE(WaitFor([&] {
    const EngineStats s = srv->engine()->Stats();
    return s.running == 0 && s.waiting == 0 && s.kv.used_bytes == 0;
  }));
  const std::string metrics = Send(srv->port(), "GET", "/metrics").body;
  EXPECT_EQ(CheckPrometheus(metrics), "") << metrics;
  const EngineStats st = srv->engine()->Stats();
  EXPECT_EQ(MetricValue(metrics, "dsv4_spec_draft_tokens_total"), st.spec_draft_tokens);
  EXPECT_EQ(MetricValue(metrics, "dsv4_spec_accepted_tokens_total"), st.spec_accepted_tokens);
  EXPECT_EQ(MetricValue(metrics, "dsv4_spec_acceptance_rate"), 1.0);
  EXPECT_GT(MetricValue(metrics, "dsv4_spec_mean_accepted_length"), 2.0);
  EXPECT_EQ(MetricValue(metrics, "dsv4_spec_accepted_tokens_by_position_total{position=\"1\"}"),
            st.spec_accepted_at[0]);
  EXPECT_EQ(MetricValue(metrics, "dsv4_spec_draft_tokens_by_position_total{position=\"4\"}"),
            st.spec_drafted_at[3]);
}

}  // namespace
}  // namespace dsv4::server
