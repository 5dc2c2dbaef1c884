#include "kv/snapshot_pages.h"

namespace dsv4::kv {

void AppendPageImages(const BlockPool& pool, Component c, uint32_t layer,
                      std::span<const PageId> ids, SnapshotImage* image) {
  for (PageId id : ids) {
    const uint8_t* data = pool.data(id);
    image->pages.push_back({static_cast<uint16_t>(c), layer,
                            std::vector<uint8_t>(data, data + pool.page_bytes())});
  }
}

Status ImageMismatch(const SnapshotImage& image, const std::string& what) {
  return Status::DataLoss("prefix snapshot image of " + std::to_string(image.tokens.size()) +
                          " tokens does not fit this model: " + what);
}

Status CheckImageLength(const SnapshotImage& image, bool backing) {
  if (!backing) return Status::Unimplemented("KV pages without memory");
  const int64_t n = static_cast<int64_t>(image.tokens.size());
  if (n <= 0 || n % 128 != 0) {
    return ImageMismatch(image, "its length is not a positive multiple of 128");
  }
  return Status::Ok();
}

Status CheckImagePage(const SnapshotImage& image, size_t index, size_t layer, Component c,
                      int64_t page_bytes) {
  if (index >= image.pages.size()) return ImageMismatch(image, "it has too few pages");
  const SnapshotImage::Page& p = image.pages[index];
  if (p.layer != layer || p.component != static_cast<uint16_t>(c) ||
      static_cast<int64_t>(p.bytes.size()) != page_bytes) {
    return ImageMismatch(image, "page " + std::to_string(index) + " is (layer " +
                                    std::to_string(p.layer) + ", component " +
                                    std::to_string(p.component) + ", " +
                                    std::to_string(p.bytes.size()) + " bytes), expected (layer " +
                                    std::to_string(layer) + ", " + std::string(ComponentName(c)) +
                                    ", " + std::to_string(page_bytes) + " bytes)");
  }
  return Status::Ok();
}

}  // namespace dsv4::kv
