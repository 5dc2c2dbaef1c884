// The data-parallel serving protocol's messages and rank 0's bookkeeping (engine/
// data_parallel.h): messages survive encoding exactly and a damaged one is refused; requests
// go to the least KV-loaded rank, ties to the lowest id; reported events reach the streams of
// the requests they belong to, counted before they are pushed.
#include "engine/data_parallel.h"

#include <gtest/gtest.h>

namespace dsv4::engine {
namespace {

TokenEvent Token(int32_t token, int64_t index) {
  TokenEvent ev;
  ev.token = token;
  ev.index = index;
  return ev;
}

TokenEvent End(int64_t index, FinishReason reason, std::string error = "") {
  TokenEvent ev;
  ev.index = index;
  ev.finished = true;
  ev.reason = reason;
  ev.error = std::move(error);
  return ev;
}

TEST(DataParallelProtocol, ControlSurvivesEncoding) {
  DpControl c;
  c.step = true;
  c.placed.push_back({.id = 7, .rank = 1, .request = {}});
  GenerationRequest& r = c.placed[0].request;
  r.prompt = {5, 17, 300};
  r.sampling = {.temperature = 0.7f, .top_k = 40, .top_p = 0.9f, .seed = 99};
  r.stop = {.max_new_tokens = 12, .ignore_eos = true, .stop_token_ids = {3, 4}};
  r.speculative = false;
  c.cancelled = {3, 11};
  std::vector<std::byte> bytes;
  EncodeControl(c, &bytes);
  DpControl d;
  ASSERT_TRUE(DecodeControl(bytes, &d).ok());
  EXPECT_FALSE(d.stop);
  EXPECT_TRUE(d.step);
  ASSERT_EQ(d.placed.size(), 1u);
  const GenerationRequest& q = d.placed[0].request;
  EXPECT_EQ(d.placed[0].id, 7);
  EXPECT_EQ(d.placed[0].rank, 1);
  EXPECT_EQ(q.prompt, r.prompt);
  EXPECT_EQ(q.sampling.temperature, 0.7f);
  EXPECT_EQ(q.sampling.top_k, 40);
  EXPECT_EQ(q.sampling.top_p, 0.9f);
  EXPECT_EQ(q.sampling.seed, 99u);
  EXPECT_EQ(q.stop.max_new_tokens, 12);
  EXPECT_TRUE(q.stop.ignore_eos);
  EXPECT_EQ(q.stop.stop_token_ids, (std::vector<int32_t>{3, 4}));
  EXPECT_FALSE(q.speculative);
  EXPECT_EQ(d.cancelled, c.cancelled);
  // Cut short or with trailing bytes: refused.
  bytes.pop_back();
  EXPECT_EQ(DecodeControl(bytes, &d).code(), StatusCode::kInternal);
  bytes.push_back(std::byte{0});
  bytes.push_back(std::byte{0});
  EXPECT_EQ(DecodeControl(bytes, &d).code(), StatusCode::kInternal);
}

TEST(DataParallelProtocol, ReportSurvivesEncoding) {
  DpReport r;
  r.has_work = true;
  r.stats.kv_used_bytes = 12345;
  r.stats.exchange_seconds = 0.25;
  r.events.push_back({4, Token(17, 0)});
  r.events.push_back({4, End(1, FinishReason::kError, "boom")});
  r.events.back().event.seconds = 1.5;
  std::vector<std::byte> bytes;
  EncodeReport(r, &bytes);
  DpReport d;
  ASSERT_TRUE(DecodeReport(bytes, &d).ok());
  EXPECT_TRUE(d.has_work);
  EXPECT_EQ(d.stats.kv_used_bytes, 12345);
  EXPECT_EQ(d.stats.exchange_seconds, 0.25);
  ASSERT_EQ(d.events.size(), 2u);
  EXPECT_EQ(d.events[0].id, 4);
  EXPECT_EQ(d.events[0].event.token, 17);
  EXPECT_TRUE(d.events[1].event.finished);
  EXPECT_EQ(d.events[1].event.reason, FinishReason::kError);
  EXPECT_EQ(d.events[1].event.error, "boom");
  EXPECT_EQ(d.events[1].event.seconds, 1.5);
  bytes.resize(bytes.size() - 3);
  EXPECT_EQ(DecodeReport(bytes, &d).code(), StatusCode::kInternal);
}

TEST(DataParallelLeader, PlacesOnTheLeastKvLoadedRankTiesToTheLowest) {
  DpLeader l(3);
  EXPECT_EQ(l.Place(0, 100), 0);    // all empty: rank 0
  EXPECT_EQ(l.Place(0, 100), 1);    // rank 0 has 100 pending
  EXPECT_EQ(l.Place(0, 100), 2);
  EXPECT_EQ(l.Place(0, 100), 0);    // 100 each: the lowest
  EXPECT_EQ(l.Place(500, 10), 1);   // rank 0's own use counts
  // Reports replace the pending estimates with the ranks' KV in use.
  std::vector<DpReport> reps(3);
  reps[1].stats.kv_sequence_bytes = 50;
  reps[2].stats.kv_sequence_bytes = 40;
  reps[2].stats.kv_used_bytes = 1000;  // cached prefixes do not count
  l.Update(reps);
  EXPECT_EQ(l.Place(60, 1), 2);
  EXPECT_EQ(l.ranks()[0].placed, 2);
  EXPECT_EQ(l.ranks()[1].placed, 2);
  EXPECT_EQ(l.ranks()[2].placed, 2);
}

TEST(DataParallelLeader, DeliversReportedEventsToTheirStreams) {
  DpLeader l(2);
  auto s = std::make_shared<RequestStream>(9);
  l.Forward(9, 1, s);
  EXPECT_TRUE(l.others_busy());
  std::vector<DpReport> reps(2);
  reps[1].has_work = false;
  reps[1].events.push_back({9, Token(5, 0)});
  reps[1].events.push_back({9, End(1, FinishReason::kLength)});
  reps[1].events.push_back({123, Token(1, 0)});  // unknown: ignored
  EXPECT_EQ(l.Update(reps), 1);
  EXPECT_FALSE(l.others_busy());
  EXPECT_TRUE(l.IsRemote(9));  // until delivered
  l.Deliver(reps);
  EXPECT_FALSE(l.IsRemote(9));
  TokenEvent ev;
  ASSERT_TRUE(s->Next(&ev));
  EXPECT_EQ(ev.token, 5);
  ASSERT_TRUE(s->Next(&ev));
  EXPECT_TRUE(ev.finished);
  EXPECT_EQ(ev.reason, FinishReason::kLength);
  EXPECT_FALSE(s->Next(&ev));
}

TEST(DataParallelLeader, EndAllEndsEveryRemoteStream) {
  DpLeader l(2);
  auto s = std::make_shared<RequestStream>(1);
  l.Forward(1, 1, s);
  l.EndAll(FinishReason::kError, "rank 1 stopped answering");
  TokenEvent ev;
  ASSERT_TRUE(s->Next(&ev));
  EXPECT_TRUE(ev.finished);
  EXPECT_EQ(ev.error, "rank 1 stopped answering");
  EXPECT_FALSE(l.IsRemote(1));
}

}  // namespace
}  // namespace dsv4::engine
