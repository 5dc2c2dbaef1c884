// The planner's KV per request against what the engine allocates for the same config and
// length: the engine's sequences (here the page-accounting stand-in, which reserves exactly
// the pages the real cache does) hold PageLayout::BytesAt(n); with one entry per page that
// equals the planner's byte formula, and the default 64-entry pages round it up by < 0.1%
// at long context.
#include <gtest/gtest.h>

#include "kv/kv_manager.h"
#include "checkpoint/presets.h"
#include "plan/capacity.h"
#include "runner/accounting_lm.h"

namespace dsv4::plan {
namespace {

TEST(PlanVsEngine, KvPerRequestEqualsEngineAllocation) {
  for (const char* name : {"v3.2", "v4-pro", "v4-flash"}) {
    PlanOptions o;
    o.model = checkpoint::PresetConfig(name).value();
    o.kv_formats = kv::DefaultKvFormats(o.model.arch);
    auto lm = runner::MakeAccountingLm(o.model);
    for (int64_t n : {int64_t{8192}, int64_t{131072}, int64_t{1} << 20}) {
      const int64_t planned = KvBytesPerRequest(o, n);
      if (n <= 8192) {  // one entry per page means one page per token: keep n small
        // Engine allocation with one entry per page: exactly the planner's bytes.
        kv::KvManager exact(kv::PageLayout(o.model, o.kv_formats, 1), int64_t{1} << 50, false);
        auto seq = lm->NewSequence(&exact);
        ASSERT_TRUE(seq->Reserve(n).ok());
        EXPECT_EQ(exact.Stats().used_bytes, planned) << name << " at " << n;
      }
      // The engine's default pages: the same plus page rounding.
      kv::KvManager paged(lm->page_layout(), int64_t{1} << 50, false);
      auto seq2 = lm->NewSequence(&paged);
      ASSERT_TRUE(seq2->Reserve(n).ok());
      const int64_t allocated = paged.Stats().used_bytes;
      EXPECT_EQ(allocated, lm->page_layout().BytesAt(n));
      EXPECT_GE(allocated, planned);
      if (n == int64_t{1} << 20) {
        EXPECT_LT(static_cast<double>(allocated - planned) / static_cast<double>(planned), 1e-3)
            << name;
      }
    }
  }
}

}  // namespace
}  // namespace dsv4::plan
