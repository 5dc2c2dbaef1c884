// Writing safetensors files and sharded Hugging Face checkpoints (used by tests and the
// tiny-model generator). Output is readable by SafetensorsFile / CheckpointFiles and by the
// reference safetensors and transformers libraries.
#pragma once

#include <filesystem>
#include <map>
#include <span>
#include <string>

#include "core/status.h"
#include "checkpoint/tensor.h"

namespace dsv4::fixtures {

using checkpoint::OwnedTensor;

// Writes `tensors` (packed tightly in the given order, as the format allows no holes) and
// `metadata` (the "__metadata__" map, omitted when empty) to `path`. The header is padded with
// spaces to a multiple of 8 bytes, as the reference writer does.
//
// Atomic: writes "<path>.tmp.<pid>", fsyncs it and renames it over `path`, so readers see the
// old file or the complete new one; on any failure the temp file is removed and `path` is
// untouched. InvalidArgument (naming the tensor) if a tensor's data size is not
// numel * dtype size, a name repeats or is "__metadata__", or a string is not valid UTF-8;
// IoError (naming the path) if the OS refuses.
[[nodiscard]] Status WriteSafetensors(const std::filesystem::path& path,
                                      std::span<const OwnedTensor* const> tensors,
                                      const std::map<std::string, std::string>& metadata);

// Writes a sharded checkpoint into `dir` (created if needed): `tensors` split in order into
// `num_shards` shards of roughly equal bytes (clamped to the number of tensors, so no shard is
// empty), named model-00001-of-00003.safetensors ... (the Hugging Face convention), each with
// metadata {"format": "pt"} (transformers refuses shards without it), plus
// model.safetensors.index.json = {"metadata": {"total_size": <tensor bytes>},
// "weight_map": {name: shard}}. Everything is written to temp names first and renamed at the
// end, index last, so a failure leaves no partial checkpoint files (files of the same names that
// existed before may be lost if a rename fails midway). InvalidArgument if `tensors` is empty
// or `num_shards` < 1, plus the errors of WriteSafetensors.
[[nodiscard]] Status WriteShardedCheckpoint(const std::filesystem::path& dir,
                                            std::span<const OwnedTensor> tensors, int num_shards);

}  // namespace dsv4::fixtures
