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
  FillStats(&s);
  return s;
}

void KvManager::FillStats(KvStats* s) const {
  s->budget_bytes = budget_.capacity();
  s->used_bytes = budget_.used();
  const auto& components = layout_.components();
  s->components.resize(components.size());
  for (size_t i = 0; i < components.size(); ++i) {
    const BlockPool& p = pool(components[i].component);
    KvComponentStats& out = s->components[i];
    out.name.assign(ComponentName(components[i].component));
    out.page_bytes = p.page_bytes();
    out.pages_in_use = p.pages_in_use();
    out.bytes_in_use = p.bytes_in_use();
  }
}

}  // namespace dsv4::kv
