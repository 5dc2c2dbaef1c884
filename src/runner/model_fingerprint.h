// A 64-bit fingerprint of a served model, written into every prefix-cache file
// (kv/snapshot_file.h) so that a file is only ever restored into the model that made it.
// There is no weights hash in checkpoints, and hashing every byte of a 17-77 GB checkpoint at
// start-up would cost minutes, so it covers: the config (ModelConfigToJson, canonical), every
// tensor's name, dtype and shape (sorted by name), and a sample of each tensor's bytes (the
// first, middle and last 4 KiB; all of a smaller tensor). Changing the architecture, any
// dimension, the tensor set or quantisation, or regenerating weights with another seed
// changes it; an edit confined to unsampled bytes of a large tensor would not (documented
// limit, README "Serving engine"). A stand-in without weights hashes its config alone.
// Thread-safe (reads only).
#pragma once

#include <cstdint>

#include "runner/loaded_model.h"

namespace dsv4::runner {

uint64_t ModelFingerprint(const LoadedModel& model);

}  // namespace dsv4::runner
