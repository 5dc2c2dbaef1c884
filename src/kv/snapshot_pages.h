// What the paged caches (v4_cache, v32_cache) share to turn a prefix snapshot's pages into a
// disk image (snapshot_file.h) and to check an image's pages before restoring them.
#pragma once

#include <cstdint>
#include <span>
#include <string>

#include "core/status.h"
#include "kv/block_pool.h"
#include "kv/page_layout.h"
#include "kv/snapshot_file.h"

namespace dsv4::kv {

// Appends copies of pages `ids` of `pool` (component `c`, layer `layer`) to image->pages.
void AppendPageImages(const BlockPool& pool, Component c, uint32_t layer,
                      std::span<const PageId> ids, SnapshotImage* image);

// DataLoss "prefix snapshot image of N tokens does not fit this model: WHAT".
Status ImageMismatch(const SnapshotImage& image, const std::string& what);

// The checks every image needs: pages with memory (Unimplemented otherwise) and a length that
// is a positive multiple of 128 (ImageMismatch).
Status CheckImageLength(const SnapshotImage& image, bool backing);

// ImageMismatch unless image.pages[index] exists and is (layer, c, page_bytes).
Status CheckImagePage(const SnapshotImage& image, size_t index, size_t layer, Component c,
                      int64_t page_bytes);

}  // namespace dsv4::kv
