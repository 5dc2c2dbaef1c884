#include "kv/kv_manager.h"

#include "core/check.h"

namespace dsv4::kv {

KvManager::KvManager(PageLayout layout, int64_t budget_bytes, bool backing)
    : layout_(std::move(layout)), budget_(budget_bytes), backing_(backing) {
  for (const ComponentLayout& l : layout_.components()) {
    pools_[static_cast<size_t>(l.component)] =
        std::make_unique<BlockPool>(l.component, l.page_bytes(), &budget_, backing);
  }
}

BlockPool& KvManager::pool(Component c) {
  DSV4_CHECK(pools_[static_cast<size_t>(c)] != nullptr);
  return *pools_[static_cast<size_t>(c)];
}
const BlockPool& KvManager::pool(Component c) const {
  DSV4_CHECK(pools_[static_cast<size_t>(c)] != nullptr);
  return *pools_[static_cast<size_t>(c)];
}

KvStats KvManager::Stats() const {
  KvStats s;
  s.budget_bytes = budget_.capacity();
  s.used_bytes = budget_.used();
  for (const ComponentLayout& l : layout_.components()) {
    const BlockPool& p = pool(l.component);
    s.components.push_back({std::string(ComponentName(l.component)), p.page_bytes(),
                            p.pages_in_use(), p.bytes_in_use()});
  }
  return s;
}

}  // namespace dsv4::kv
