// Safetensors reader, writer and checkpoint folders: round trips of every dtype, a table of
// malformed files built byte by byte, and the writer's no-partial-output guarantee.
#include "checkpoint/safetensors.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "checkpoint/checkpoint.h"
#include "checkpoint/checkpoint_files.h"
#include "checkpoint/presets.h"
#include "testing/safetensors_writer.h"
#include "testing/weight_generator.h"

namespace dsv4::checkpoint {
using fixtures::WriteSafetensors;
using fixtures::WriteShardedCheckpoint;

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// A fresh, empty folder for the running test under DSV4_TEST_TMPDIR.
fs::path TestDir() {
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string name = std::string(info->test_suite_name()) + "." + info->name();
  std::replace(name.begin(), name.end(), '/', '_');
  const fs::path dir = fs::path(DSV4_TEST_TMPDIR) / "safetensors" / name;
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

void WriteRaw(const fs::path& path, std::string_view bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string ReadRaw(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The 8-byte little-endian header length field.
std::string LengthField(uint64_t n) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[i] = static_cast<char>((n >> (8 * i)) & 0xFF);
  return s;
}

std::string FileImage(std::string_view header_json, std::string_view data) {
  return LengthField(header_json.size()) + std::string(header_json) + std::string(data);
}

// One header entry: "name":{"dtype":..,"shape":..,"data_offsets":[b,e]} in the key order the
// reference Python writer uses.
std::string Entry(std::string_view name, std::string_view dtype, std::string_view shape,
                  std::string_view offsets) {
  std::string s = "\"";
  s += std::string(name) + "\":{\"dtype\":\"" + std::string(dtype) +
       "\",\"shape\":" + std::string(shape) + ",\"data_offsets\":" + std::string(offsets) + "}";
  return s;
}

// A valid shard holding F32 [2] tensors `names`, packed in order.
std::string TinyShard(const std::vector<std::string>& names) {
  std::string header = "{";
  std::string data;
  for (size_t i = 0; i < names.size(); ++i) {
    if (i) header += ",";
    header +=
        Entry(names[i], "F32", "[2]",
              std::string("[") + std::to_string(8 * i) + "," + std::to_string(8 * i + 8) + "]");
    data += std::string(8, static_cast<char>('a' + i));
  }
  return FileImage(header + "}", data);
}

std::vector<std::string> FileNames(const fs::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : fs::directory_iterator(dir)) names.push_back(e.path().filename().string());
  std::sort(names.begin(), names.end());
  return names;
}

bool HasTempFiles(const fs::path& dir) {
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.path().filename().string().find(".tmp") != std::string::npos) return true;
  }
  return false;
}

OwnedTensor RandomTensor(std::string name, DType dtype, std::vector<int64_t> shape,
                         std::mt19937& rng) {
  OwnedTensor t{.name = std::move(name), .dtype = dtype, .shape = std::move(shape), .data = {}};
  t.data.resize(static_cast<size_t>(NumElements(t.shape)) * DTypeSize(dtype));
  for (std::byte& b : t.data) b = static_cast<std::byte>(rng() & 0xFF);
  return t;
}

// Two tensors of every dtype over shapes that include a scalar [] and zero-size dims, in a
// shuffled (not name-sorted) order so the writer's layout order differs from the header's.
std::vector<OwnedTensor> AllDTypeTensors(std::mt19937& rng) {
  const std::vector<std::vector<int64_t>> shapes = {{},        {0},     {7},          {3, 5},
                                                    {2, 0, 4}, {1, 33}, {1, 3, 2, 2}, {64}};
  std::vector<OwnedTensor> tensors;
  for (int d = 0; d <= static_cast<int>(DType::kBool); ++d) {
    const DType dtype = static_cast<DType>(d);
    for (int j = 0; j < 2; ++j) {
      const auto& shape = shapes[(2 * d + j) % shapes.size()];
      tensors.push_back(RandomTensor("layers." + std::to_string(d) + "." +
                                         std::string(DTypeName(dtype)) + "." + std::to_string(j),
                                     dtype, shape, rng));
    }
  }
  std::shuffle(tensors.begin(), tensors.end(), rng);
  return tensors;
}

std::vector<const OwnedTensor*> Pointers(const std::vector<OwnedTensor>& tensors) {
  std::vector<const OwnedTensor*> out;
  for (const OwnedTensor& t : tensors) out.push_back(&t);
  return out;
}

// Names, dtypes, shapes and bytes of `source` equal `want` exactly.
void ExpectSameTensors(const TensorSource& source, const std::vector<OwnedTensor>& want) {
  std::vector<std::string> want_names;
  for (const OwnedTensor& t : want) want_names.push_back(t.name);
  std::sort(want_names.begin(), want_names.end());
  EXPECT_EQ(source.names(), want_names);
  for (const OwnedTensor& t : want) {
    SCOPED_TRACE(t.name);
    EXPECT_TRUE(source.Has(t.name));
    Result<TensorView> v = source.Get(t.name);
    ASSERT_TRUE(v.ok()) << v.status().ToString();
    EXPECT_EQ(v->name, t.name);
    EXPECT_EQ(v->dtype, t.dtype);
    EXPECT_EQ(std::vector<int64_t>(v->shape.begin(), v->shape.end()), t.shape);
    ASSERT_EQ(v->bytes.size(), t.data.size());
    EXPECT_TRUE(std::equal(v->bytes.begin(), v->bytes.end(), t.data.begin()));
  }
}

uint64_t TotalBytes(const std::vector<OwnedTensor>& tensors) {
  uint64_t n = 0;
  for (const OwnedTensor& t : tensors) n += t.data.size();
  return n;
}

// ---------------------------------------------------------------------------------------------
// Round trips and the reader's accepted inputs.

TEST(SafetensorsTest, RoundTripSingleFileEveryDType) {
  const fs::path dir = TestDir();
  std::mt19937 rng(1234);
  const std::vector<OwnedTensor> tensors = AllDTypeTensors(rng);
  const std::map<std::string, std::string> metadata = {{"format", "pt"}, {"note", "tiny"}};
  ASSERT_TRUE(WriteSafetensors(dir / "model.safetensors", Pointers(tensors), metadata).ok());

  Result<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(dir / "model.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  EXPECT_EQ((*file)->metadata(), metadata);
  EXPECT_EQ((*file)->tensors().size(), tensors.size());
  EXPECT_TRUE(std::is_sorted((*file)->tensors().begin(), (*file)->tensors().end(),
                             [](const auto& a, const auto& b) { return a.name < b.name; }));
  // Layout: length field, space-padded header (8-aligned data), then exactly the tensor bytes.
  const std::string raw = ReadRaw(dir / "model.safetensors");
  uint64_t header_len = 0;
  std::memcpy(&header_len, raw.data(), 8);
  EXPECT_EQ(header_len % 8, 0u);
  EXPECT_EQ(raw[8], '{');
  EXPECT_EQ((*file)->file_size(), raw.size());
  EXPECT_EQ(raw.size(), 8 + header_len + TotalBytes(tensors));

  Result<std::unique_ptr<CheckpointFiles>> ckpt = CheckpointFiles::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  ExpectSameTensors(**ckpt, tensors);
  EXPECT_EQ((*ckpt)->files().size(), 1u);
  EXPECT_EQ((*ckpt)->total_file_bytes(), raw.size());
  EXPECT_EQ((*ckpt)->label(), dir.string());
  EXPECT_FALSE(HasTempFiles(dir));
}

TEST(SafetensorsTest, WriterOutputIsByteExact) {
  const fs::path dir = TestDir();
  OwnedTensor b{.name = "b", .dtype = DType::kF32, .shape = {2}, .data = {}};
  const float values[2] = {1.0f, 2.0f};
  b.data.resize(8);
  std::memcpy(b.data.data(), values, 8);
  OwnedTensor a{.name = "a", .dtype = DType::kU8, .shape = {3}, .data = {}};
  a.data = {std::byte{7}, std::byte{8}, std::byte{9}};
  const OwnedTensor* order[] = {&b, &a};  // packed in this order; the header is sorted by name
  ASSERT_TRUE(WriteSafetensors(dir / "x.safetensors", order, {}).ok());

  std::string header = R"({"a":{"data_offsets":[8,11],"dtype":"U8","shape":[3]},)"
                       R"("b":{"data_offsets":[0,8],"dtype":"F32","shape":[2]}})";
  header.resize((header.size() + 7) / 8 * 8, ' ');
  const std::string data(reinterpret_cast<const char*>(values), 8);
  EXPECT_EQ(ReadRaw(dir / "x.safetensors"), FileImage(header, data + "\x07\x08\x09"));
}

TEST(SafetensorsTest, ReadsReferenceStyleFile) {
  const fs::path dir = TestDir();
  // As the Python reference writes it: metadata first, entries in insertion order, tensors
  // laid out in a different order than their names.
  const std::string header = "{\"__metadata__\":{\"format\":\"pt\"}," +
                             Entry("z.weight", "BF16", "[2, 2]", "[0, 8]") + "," +
                             Entry("a.scale", "F8_E8M0", "[]", "[8, 9]") + "," +
                             Entry("m.empty", "F8_E4M3", "[0, 128]", "[9, 9]") + "}   ";
  WriteRaw(dir / "ref.safetensors", FileImage(header, "ABCDEFGH\x7f"));

  Result<std::unique_ptr<SafetensorsFile>> file = SafetensorsFile::Open(dir / "ref.safetensors");
  ASSERT_TRUE(file.ok()) << file.status().ToString();
  const SafetensorsFile& f = **file;
  EXPECT_EQ(f.metadata().at("format"), "pt");
  ASSERT_EQ(f.tensors().size(), 3u);
  EXPECT_EQ(f.tensors()[0].name, "a.scale");
  EXPECT_EQ(f.tensors()[1].name, "m.empty");
  EXPECT_EQ(f.tensors()[2].name, "z.weight");
  EXPECT_EQ(f.Find("nope"), nullptr);

  const TensorInfo* z = f.Find("z.weight");
  ASSERT_NE(z, nullptr);
  const TensorView zv = f.View(*z);
  EXPECT_EQ(zv.dtype, DType::kBF16);
  EXPECT_EQ(ShapeToString(zv.shape), "[2, 2]");
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(zv.bytes.data()), zv.bytes.size()),
            "ABCDEFGH");
  const TensorView sv = f.View(*f.Find("a.scale"));
  EXPECT_EQ(sv.dtype, DType::kF8E8M0);
  EXPECT_TRUE(sv.shape.empty());
  EXPECT_EQ(sv.numel(), 1);
  ASSERT_EQ(sv.bytes.size(), 1u);
  EXPECT_EQ(sv.bytes[0], std::byte{0x7f});
  const TensorView ev = f.View(*f.Find("m.empty"));
  EXPECT_EQ(ev.numel(), 0);
  EXPECT_TRUE(ev.bytes.empty());
}

TEST(SafetensorsTest, ParseHeaderAcceptsEmptyAndZeroSizeTensors) {
  Result<SafetensorsHeader> empty = ParseSafetensorsHeader("{}", 0, "mem");
  ASSERT_TRUE(empty.ok()) << empty.status().ToString();
  EXPECT_TRUE(empty->tensors.empty());
  EXPECT_TRUE(empty->metadata.empty());

  // Zero-size tensors may sit at the start, between tensors or at the end of the data.
  const std::string header = std::string("{") + Entry("c", "I64", "[0]", "[0, 0]") + "," +
                             Entry("b", "I16", "[3]", "[0, 6]") + "," +
                             Entry("a", "BOOL", "[5, 0]", "[6, 6]") + "}";
  Result<SafetensorsHeader> parsed = ParseSafetensorsHeader(header, 6, "mem");
  ASSERT_TRUE(parsed.ok()) << parsed.status().ToString();
  ASSERT_EQ(parsed->tensors.size(), 3u);
  EXPECT_EQ(parsed->tensors[0].name, "a");
  EXPECT_EQ(parsed->tensors[0].dtype, DType::kBool);
  EXPECT_EQ(parsed->tensors[0].shape, (std::vector<int64_t>{5, 0}));
  EXPECT_EQ(parsed->tensors[1].begin, 0u);
  EXPECT_EQ(parsed->tensors[1].end, 6u);
  EXPECT_EQ(parsed->tensors[2].name, "c");
}

// A cheap in-test fuzzer (the libFuzzer target goes further): random byte edits of a valid
// header must give an error or a header whose tensors tile the data, never a crash.
TEST(SafetensorsTest, ParserSurvivesRandomMutations) {
  const std::string valid = "{\"__metadata__\":{\"k\":\"v\"}," + Entry("a", "F32", "[2]", "[0,8]") +
                            "," + Entry("b", "F8_E4M3", "[2,2]", "[8,12]") + "}";
  const std::string alphabet = "{}[],:\"0123456789-.e _aFIUB";
  std::mt19937 rng(7);
  int num_ok = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    std::string h = valid;
    const int edits = 1 + static_cast<int>(rng() % 4);
    for (int e = 0; e < edits && !h.empty(); ++e) {
      const size_t pos = rng() % h.size();
      switch (rng() % 3) {
        case 0:
          h[pos] = alphabet[rng() % alphabet.size()];
          break;
        case 1:
          h.erase(pos, 1 + rng() % 3);
          break;
        default:
          h.insert(pos, 1, alphabet[rng() % alphabet.size()]);
          break;
      }
    }
    const uint64_t data_size = rng() % 2 ? 12 : rng() % 64;
    Result<SafetensorsHeader> r = ParseSafetensorsHeader(h, data_size, "mutant");
    if (!r.ok()) {
      EXPECT_THAT(r.status().message(), HasSubstr("mutant"));
      continue;
    }
    ++num_ok;
    uint64_t covered = 0;
    for (const TensorInfo& t : r->tensors) {
      EXPECT_LE(t.begin, t.end);
      EXPECT_LE(t.end, data_size);
      EXPECT_EQ(t.end - t.begin, static_cast<uint64_t>(NumElements(t.shape)) * DTypeSize(t.dtype));
      covered += t.end - t.begin;
    }
    EXPECT_EQ(covered, data_size) << h;
  }
  EXPECT_GT(num_ok, 0);  // some mutations (e.g. in the metadata value) stay valid
}

// Headers nested deeper than kDefaultMaxJsonDepth are refused before the parser sees them
// (nlohmann's values recurse once per level: 200,000 levels could overflow the stack), with
// DataLoss naming the file. Within the limit, deeply nested values still get short messages.
TEST(SafetensorsTest, DeepNestingIsRefusedBeforeParsing) {
  constexpr size_t kDepth = 200'000;
  const std::string deep = std::string(kDepth, '[') + std::string(kDepth, ']');
  for (const std::string& header :
       {"{\"w\":" + deep + "}", std::string(kDepth, '['),
        "{\"w\":{\"dtype\":\"F32\",\"shape\":" + deep + ",\"data_offsets\":[0,0]}}"}) {
    Result<SafetensorsHeader> r = ParseSafetensorsHeader(header, 0, "deep.safetensors");
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss);
    EXPECT_THAT(r.status().message(),
                HasSubstr("deep.safetensors (safetensors header): JSON nested deeper than the "
                          "limit of 64 levels"));
  }
  const std::string allowed = std::string(62, '[') + std::string(62, ']');  // + 1 + 1 levels
  Result<SafetensorsHeader> as_entry = ParseSafetensorsHeader("{\"w\":" + allowed + "}", 0, "d");
  ASSERT_FALSE(as_entry.ok());
  EXPECT_THAT(as_entry.status().message(), HasSubstr("tensor 'w': entry must be an object"));
  EXPECT_LT(as_entry.status().message().size(), 300u);
  const std::string shape_entry =
      "{\"w\":{\"dtype\":\"F32\",\"shape\":" + allowed + ",\"data_offsets\":[0,0]}}";
  Result<SafetensorsHeader> as_shape = ParseSafetensorsHeader(shape_entry, 0, "d");
  ASSERT_FALSE(as_shape.ok());
  EXPECT_THAT(as_shape.status().message(), HasSubstr("shape dims must be non-negative integers"));
}

class CheckpointShardedTest : public ::testing::TestWithParam<int> {};

TEST_P(CheckpointShardedTest, RoundTrip) {
  const int num_shards = GetParam();
  const fs::path dir = TestDir() / "ckpt";  // created by the writer
  std::mt19937 rng(99 + num_shards);
  const std::vector<OwnedTensor> tensors = AllDTypeTensors(rng);
  ASSERT_TRUE(WriteShardedCheckpoint(dir, tensors, num_shards).ok());

  const int expected_shards = std::min<int>(num_shards, static_cast<int>(tensors.size()));
  std::vector<std::string> expected_files;
  for (int s = 1; s <= expected_shards; ++s) {
    char name[64];
    std::snprintf(name, sizeof(name), "model-%05d-of-%05d.safetensors", s, expected_shards);
    expected_files.push_back(name);
  }
  expected_files.push_back("model.safetensors.index.json");
  std::sort(expected_files.begin(), expected_files.end());
  EXPECT_EQ(FileNames(dir), expected_files);

  const auto index = nlohmann::json::parse(ReadRaw(dir / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), TotalBytes(tensors));
  ASSERT_EQ(index["weight_map"].size(), tensors.size());
  // Shards hold contiguous runs of the input order.
  std::string prev_shard;
  for (const OwnedTensor& t : tensors) {
    const std::string shard = index["weight_map"][t.name].get<std::string>();
    EXPECT_GE(shard, prev_shard) << t.name;
    prev_shard = shard;
  }

  Result<std::unique_ptr<CheckpointFiles>> ckpt = CheckpointFiles::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  ExpectSameTensors(**ckpt, tensors);
  ASSERT_EQ((*ckpt)->files().size(), static_cast<size_t>(expected_shards));
  uint64_t file_bytes = 0;
  for (const auto& f : (*ckpt)->files()) {
    EXPECT_FALSE(f->tensors().empty()) << f->path();
    EXPECT_EQ(f->metadata().at("format"), "pt");
    file_bytes += fs::file_size(f->path());
  }
  EXPECT_EQ((*ckpt)->total_file_bytes(), file_bytes);
  EXPECT_FALSE(HasTempFiles(dir));
}

INSTANTIATE_TEST_SUITE_P(CheckpointShards, CheckpointShardedTest, ::testing::Values(1, 2, 3, 1000));

TEST(CheckpointShardedSplitTest, ShardsHaveRoughlyEqualBytes) {
  const fs::path dir = TestDir();
  std::mt19937 rng(5);
  std::vector<OwnedTensor> tensors;
  for (int i = 0; i < 12; ++i) {
    tensors.push_back(RandomTensor(std::string("t") + std::to_string(i), DType::kU8, {100}, rng));
  }
  ASSERT_TRUE(WriteShardedCheckpoint(dir, tensors, 3).ok());
  Result<std::unique_ptr<CheckpointFiles>> ckpt = CheckpointFiles::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  ASSERT_EQ((*ckpt)->files().size(), 3u);
  for (const auto& f : (*ckpt)->files()) EXPECT_EQ(f->tensors().size(), 4u) << f->path();
}

TEST(CheckpointFilesTest, OpensLoneSafetensorsFile) {
  const fs::path dir = TestDir();
  std::mt19937 rng(3);
  const std::vector<OwnedTensor> tensors = {RandomTensor("w", DType::kBF16, {4, 2}, rng)};
  ASSERT_TRUE(WriteSafetensors(dir / "weights.safetensors", Pointers(tensors), {}).ok());
  Result<std::unique_ptr<CheckpointFiles>> ckpt = CheckpointFiles::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  ExpectSameTensors(**ckpt, tensors);
}

TEST(CheckpointFilesTest, GetChecksNameDTypeAndShape) {
  const fs::path dir = TestDir();
  std::mt19937 rng(4);
  const std::vector<OwnedTensor> tensors = {RandomTensor("blk.0.wq", DType::kBF16, {4, 2}, rng)};
  ASSERT_TRUE(WriteSafetensors(dir / "model.safetensors", Pointers(tensors), {}).ok());
  Result<std::unique_ptr<CheckpointFiles>> ckpt = CheckpointFiles::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  const TensorSource& source = **ckpt;

  const int64_t right_shape[] = {4, 2};
  const int64_t wrong_shape[] = {2, 4};
  EXPECT_TRUE(source.Get("blk.0.wq", DType::kBF16, right_shape).ok());

  Result<TensorView> bad_dtype = source.Get("blk.0.wq", DType::kF32, right_shape);
  ASSERT_FALSE(bad_dtype.ok());
  EXPECT_EQ(bad_dtype.status().code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(bad_dtype.status().message(), HasSubstr("'blk.0.wq'"));
  EXPECT_THAT(bad_dtype.status().message(), HasSubstr("has dtype BF16, expected F32"));

  Result<TensorView> bad_shape = source.Get("blk.0.wq", DType::kBF16, wrong_shape);
  ASSERT_FALSE(bad_shape.ok());
  EXPECT_THAT(bad_shape.status().message(), HasSubstr("'blk.0.wq'"));
  EXPECT_THAT(bad_shape.status().message(), HasSubstr("has shape [4, 2], expected [2, 4]"));

  Result<TensorView> missing = source.Get("blk.0.wk");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(missing.status().message(), "tensor 'blk.0.wk' not found in " + dir.string());
  EXPECT_FALSE(source.Has("blk.0.wk"));
}

// ---------------------------------------------------------------------------------------------
// Malformed inputs: each must give an error, never a crash, whose message names the problem.

struct MalformedCase {
  std::string name;
  // Creates files under `dir` and returns the path to open.
  std::function<fs::path(const fs::path& dir)> make;
  bool checkpoint;  // open with CheckpointFiles::Open, else SafetensorsFile::Open
  StatusCode code;
  std::vector<std::string> words;  // substrings the message must contain
  bool verify = false;  // open with OpenCheckpoint: config.json and the tensor inventory too
};

// gtest prints a failing parameter with this instead of a hex dump.
void PrintTo(const MalformedCase& c, std::ostream* os) { *os << c.name; }

// Writes `image` to dir/x.safetensors and returns that path.
std::function<fs::path(const fs::path&)> File(std::string image) {
  return [image](const fs::path& dir) {
    WriteRaw(dir / "x.safetensors", image);
    return dir / "x.safetensors";
  };
}

// Writes `files` (name → contents) into dir and returns dir.
std::function<fs::path(const fs::path&)> Folder(std::map<std::string, std::string> files) {
  return [files](const fs::path& dir) {
    for (const auto& [name, contents] : files) WriteRaw(dir / name, contents);
    return dir;
  };
}

std::string Index(const std::string& weight_map_json) {
  return "{\"metadata\": {\"total_size\": 0}, \"weight_map\": " + weight_map_json + "}";
}

// A tiny checkpoint of the V4-Flash-0731 layout (DSpark draft blocks) in dir/ck, its tensors
// and its config.json edited first; returns dir/ck.
std::function<fs::path(const fs::path&)> TinyDspark(
    std::function<void(std::vector<OwnedTensor>&, nlohmann::json&)> edit,
    DraftFamily tensor_layout = DraftFamily::kDspark) {
  return [edit, tensor_layout](const fs::path& dir) {
    const ModelConfig config = WithDrafter(TinyV4Config(), DraftFamily::kDspark);
    std::vector<OwnedTensor> tensors =
        fixtures::GenerateWeights(WithDrafter(TinyV4Config(), tensor_layout), 3).value();
    nlohmann::json j = ModelConfigToJson(config);
    edit(tensors, j);
    const fs::path ck = dir / "ck";
    EXPECT_TRUE(WriteShardedCheckpoint(ck, tensors, 2).ok());
    WriteRaw(ck / "config.json", j.dump(2));
    return ck;
  };
}

void Erase(std::vector<OwnedTensor>& ts, const std::string& name) {
  std::erase_if(ts, [&](const OwnedTensor& t) { return t.name == name; });
}

constexpr const char* kS1 = "model-00001-of-00002.safetensors";
constexpr const char* kS2 = "model-00002-of-00002.safetensors";
constexpr const char* kIndex = "model.safetensors.index.json";

std::vector<MalformedCase> MalformedCases() {
  const StatusCode kData = StatusCode::kDataLoss;
  const StatusCode kMissing = StatusCode::kNotFound;
  const auto w = [](std::string dtype, std::string shape, std::string offsets) {
    return std::string("{") + Entry("w", dtype, shape, offsets) + "}";
  };
  const std::string two_tensor_map =
      std::string("{\"a\": \"") + kS1 + "\", \"b\": \"" + kS2 + "\"}";
  // One case per few lines reads better than clang-format's one field per line.
  // clang-format off
  return {
      {"truncated_under_8_bytes", File(std::string("\x10\0\0\0\0", 5)), false, kData,
       {"x.safetensors", "file is 5 bytes", "8-byte header length"}},
      {"header_cut_short", File(LengthField(60) + w("F32", "[2]", "[0,8]").substr(0, 20)), false,
       kData, {"x.safetensors", "header length 60", "past the end of the file", "28 bytes"}},
      {"data_cut_short", File(FileImage(w("F32", "[4]", "[0,16]"), std::string(8, 'd'))), false,
       kData, {"x.safetensors", "'w'", "end 16", "past the end of the data section (8 bytes)"}},
      {"header_length_absurd", File(LengthField(uint64_t{1} << 62) + "{}"), false, kData,
       {"x.safetensors", "header length 4611686018427387904", "limit of 100000000"}},
      {"bad_json", File(FileImage("{\"w\": {\"dtype\": ", "")), false, kData,
       {"x.safetensors", "header is not valid JSON"}},
      {"header_not_object", File(FileImage("[1, 2]", "")), false, kData,
       {"x.safetensors", "header must be a JSON object, got array"}},
      {"entry_not_object", File(FileImage("{\"w\": 5}", "")), false, kData,
       {"x.safetensors", "tensor 'w'", "must be an object", "got 5"}},
      {"missing_dtype", File(FileImage("{\"w\": {\"shape\": [], \"data_offsets\": [0, 4]}}", "")),
       false, kData, {"tensor 'w'", "missing \"dtype\""}},
      {"unknown_dtype", File(FileImage(w("F7_E3M3", "[2]", "[0,2]"), "dd")), false, kData,
       {"x.safetensors", "tensor 'w'", "unknown dtype 'F7_E3M3'", "F8_E4M3"}},
      {"negative_dim", File(FileImage(w("F32", "[2,-3]", "[0,8]"), std::string(8, 'd'))), false,
       kData, {"tensor 'w'", "negative dim -3"}},
      {"float_dim", File(FileImage(w("F32", "[2.5]", "[0,8]"), std::string(8, 'd'))), false,
       kData, {"tensor 'w'", "non-negative integers", "2.5"}},
      {"numel_overflow",
       File(FileImage(w("U8", "[4294967296,4294967296]", "[0,1]"), "d")), false, kData,
       {"tensor 'w'", "overflows"}},
      {"offsets_out_of_range", File(FileImage(w("F32", "[250]", "[0,1000]"), std::string(16, 'd'))),
       false, kData, {"tensor 'w'", "end 1000", "(16 bytes)"}},
      {"offsets_descending", File(FileImage(w("F32", "[2]", "[8,0]"), std::string(8, 'd'))),
       false, kData, {"tensor 'w'", "two ascending non-negative integers", "[8,0]"}},
      {"offsets_one_number", File(FileImage(w("F32", "[2]", "[8]"), std::string(8, 'd'))), false,
       kData, {"tensor 'w'", "\"data_offsets\""}},
      {"size_shape_mismatch", File(FileImage(w("F32", "[3]", "[0,8]"), std::string(8, 'd'))),
       false, kData, {"tensor 'w'", "span 8 bytes", "F32 shape [3] needs 12 bytes"}},
      {"overlapping_offsets",
       File(FileImage(std::string("{") + Entry("a", "F32", "[2]", "[0,8]") + "," +
                          Entry("b", "F32", "[2]", "[4,12]") + "}",
                      std::string(12, 'd'))),
       false, kData, {"x.safetensors", "'a' (bytes [0, 8))", "'b' (bytes [4, 12))", "overlap"}},
      {"hole_in_data",
       File(FileImage(std::string("{") + Entry("a", "F32", "[2]", "[0,8]") + "," +
                          Entry("b", "F32", "[2]", "[16,24]") + "}",
                      std::string(24, 'd'))),
       false, kData, {"x.safetensors", "hole", "bytes [8, 16)", "after 'a'", "before 'b'"}},
      {"trailing_data_bytes", File(FileImage(w("F32", "[2]", "[0,8]"), std::string(12, 'd'))),
       false, kData, {"x.safetensors", "hole", "cover 8 bytes", "data section is 12 bytes"}},
      {"metadata_not_string_map",
       File(FileImage("{\"__metadata__\": {\"format\": 1}}", "")), false, kData,
       {"x.safetensors", "\"__metadata__\"", "'format'", "must be a string"}},
      {"file_missing", [](const fs::path& dir) { return dir / "gone.safetensors"; }, false,
       kMissing, {"gone.safetensors", "no such file"}},
      {"file_is_directory", [](const fs::path& dir) { return dir; }, false, StatusCode::kIoError,
       {"not a regular file"}},
      // Checkpoint folders.
      {"missing_shard", Folder({{kIndex, Index(two_tensor_map)}, {kS1, TinyShard({"a"})}}), true,
       kMissing, {kS2, "(for tensor 'b')", "does not exist", kIndex}},
      {"index_tensor_missing_from_shard",
       Folder({{kIndex, Index(std::string("{\"a\": \"") + kS1 + "\", \"b\": \"" + kS1 + "\"}")},
               {kS1, TinyShard({"a"})}}),
       true, kMissing, {"tensor 'b'", kIndex, kS1, "is not in that shard"}},
      {"index_tensor_in_another_shard",
       Folder({{kIndex, Index(std::string("{\"a\": \"") + kS1 + "\", \"b\": \"" + kS1 +
                              "\", \"c\": \"" + kS2 + "\"}")},
               {kS1, TinyShard({"a"})},
               {kS2, TinyShard({"b", "c"})}}),
       true, kMissing, {"tensor 'b'", "is not in that shard", std::string("(found in ")}},
      {"shard_tensor_not_in_index",
       Folder({{kIndex, Index(std::string("{\"a\": \"") + kS1 + "\"}")},
               {kS1, TinyShard({"a", "extra"})}}),
       true, kData, {"tensor 'extra'", kS1, "not listed in", kIndex}},
      {"duplicate_tensor_across_shards",
       Folder({{kIndex, Index(two_tensor_map)},
               {kS1, TinyShard({"a"})},
               {kS2, TinyShard({"a", "b"})}}),
       true, kData, {"tensor 'a'", "is in both", kS1, kS2}},
      {"index_missing_weight_map", Folder({{kIndex, "{\"metadata\": {}}"}}), true, kData,
       {kIndex, "missing \"weight_map\""}},
      {"index_bad_json", Folder({{kIndex, "{\"weight_map\": {"}}), true, kData,
       {kIndex, "not valid JSON"}},
      {"index_nested_100000_deep", Folder({{kIndex, std::string(100'000, '[')}}), true, kData,
       {kIndex, "(safetensors index): JSON nested deeper than the limit of 64 levels"}},
      {"index_shard_outside_folder",
       Folder({{kIndex, Index("{\"a\": \"../evil.safetensors\"}")}}), true, kData,
       {kIndex, "tensor 'a'", "'../evil.safetensors'", "not a file inside"}},
      {"corrupt_shard",
       Folder({{kIndex, Index(std::string("{\"a\": \"") + kS1 + "\"}")}, {kS1, "abc"}}), true,
       kData, {kS1, "file is 3 bytes"}},
      {"empty_dir", Folder({}), true, kMissing,
       {"no checkpoint in", kIndex, "model.safetensors", "exactly one *.safetensors"}},
      {"two_files_without_index",
       Folder({{"a.safetensors", TinyShard({"a"})}, {"b.safetensors", TinyShard({"b"})}}), true,
       kMissing, {"found 2 without an index: a.safetensors b.safetensors"}},
      {"nonexistent_dir", [](const fs::path& dir) { return dir / "does-not-exist"; }, true,
       kMissing, {"checkpoint directory", "does-not-exist", "does not exist"}},
      {"dir_is_a_file", File(TinyShard({"a"})), true, StatusCode::kInvalidArgument,
       {"x.safetensors", "is not a directory"}},
      // Whole checkpoints of the V4-Flash-0731 / V4-Pro-0813 layout (spec §11.4).
      {"dspark_missing_main_proj",
       TinyDspark([](auto& ts, auto&) { Erase(ts, "mtp.0.main_proj.weight"); }), true, kMissing,
       {"ck", "DSpark draft blocks are incomplete", "missing tensor 'mtp.0.main_proj.weight'"},
       true},
      {"dspark_markov_w1_wrong_shape",
       TinyDspark([](auto& ts, auto&) {
         for (OwnedTensor& t : ts) {
           if (t.name != "mtp.2.markov_head.markov_w1.weight") continue;
           t.shape = {512, 128};
           t.data.resize(t.data.size() / 2);
         }
       }),
       true, StatusCode::kInvalidArgument,
       {"'mtp.2.markov_head.markov_w1.weight'", "has shape [512, 128], expected [512, 256]"}, true},
      {"dspark_compress_ratios_wrong_count",
       TinyDspark([](auto&, auto& j) { j["compress_ratios"] = {0, 4, 128, 4, 128, 0, 0}; }), true,
       StatusCode::kInvalidArgument,
       {"config.json", "'compress_ratios'", "5 + 3 = 8 entries", "got 7 entries"}, true},
      {"dspark_target_layer_outside_stack",
       TinyDspark([](auto&, auto& j) { j["dspark_target_layer_ids"] = {3, 4, 5}; }), true,
       StatusCode::kInvalidArgument,
       {"config.json", "'dspark_target_layer_ids'", "[0, num_hidden_layers=5)", "got [3, 4, 5]"},
       true},
      {"dspark_config_on_april_tensors", TinyDspark([](auto&, auto&) {}, DraftFamily::kMtp), true,
       kMissing,
       {"DSpark draft blocks are incomplete", "'mtp.0.main_proj.weight'",
        "holds the April MTP module (mtp.0.e_proj.weight)"},
       true},
  };
  // clang-format on
}

class SafetensorsMalformedTest : public ::testing::TestWithParam<MalformedCase> {};

TEST_P(SafetensorsMalformedTest, ReturnsErrorNamingTheProblem) {
  const MalformedCase& c = GetParam();
  const fs::path dir = TestDir();
  const fs::path target = c.make(dir);
  const Status status = c.verify       ? OpenCheckpoint(target).status()
                       : c.checkpoint ? CheckpointFiles::Open(target).status()
                                      : SafetensorsFile::Open(target).status();
  ASSERT_FALSE(status.ok());
  EXPECT_EQ(status.code(), c.code) << status.ToString();
  for (const std::string& word : c.words) {
    EXPECT_THAT(status.message(), HasSubstr(word));
  }
}

INSTANTIATE_TEST_SUITE_P(Safetensors, SafetensorsMalformedTest,
                         ::testing::ValuesIn(MalformedCases()),
                         [](const auto& info) { return info.param.name; });

// ---------------------------------------------------------------------------------------------
// Writer failures leave nothing behind.

TEST(SafetensorsWriterTest, FailsInMissingDirectoryAndLeavesNothing) {
  const fs::path dir = TestDir();
  std::mt19937 rng(8);
  const std::vector<OwnedTensor> tensors = {RandomTensor("w", DType::kF32, {3}, rng)};
  const fs::path target = dir / "no-such-dir" / "model.safetensors";
  const Status s = WriteSafetensors(target, Pointers(tensors), {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_THAT(s.message(), HasSubstr((dir / "no-such-dir").string()));
  EXPECT_THAT(FileNames(dir), ::testing::IsEmpty());
}

TEST(SafetensorsWriterTest, FailsWhenTargetIsADirectoryAndLeavesNothing) {
  const fs::path dir = TestDir();
  fs::create_directory(dir / "model.safetensors");
  std::mt19937 rng(9);
  const std::vector<OwnedTensor> tensors = {RandomTensor("w", DType::kF32, {3}, rng)};
  const Status s = WriteSafetensors(dir / "model.safetensors", Pointers(tensors), {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_THAT(s.message(), HasSubstr("model.safetensors"));
  EXPECT_EQ(FileNames(dir), std::vector<std::string>{"model.safetensors"});
  EXPECT_TRUE(fs::is_empty(dir / "model.safetensors"));
}

TEST(SafetensorsWriterTest, RejectsWrongDataSizeAndDuplicateNames) {
  const fs::path dir = TestDir();
  std::mt19937 rng(10);
  std::vector<OwnedTensor> tensors = {RandomTensor("w", DType::kF32, {3}, rng)};
  tensors[0].data.pop_back();
  Status s = WriteSafetensors(dir / "a.safetensors", Pointers(tensors), {});
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("tensor 'w': data is 11 bytes, expected 12"));

  tensors = {RandomTensor("w", DType::kF32, {3}, rng), RandomTensor("w", DType::kI8, {1}, rng)};
  s = WriteSafetensors(dir / "b.safetensors", Pointers(tensors), {});
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("'w' is reserved or repeated"));
  s = WriteShardedCheckpoint(dir / "c", tensors, 2);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("'w' is repeated"));
  EXPECT_THAT(FileNames(dir), ::testing::ElementsAre("c"));
  EXPECT_TRUE(fs::is_empty(dir / "c"));
}

TEST(SafetensorsWriterTest, OverwritesExistingFileAndLeavesNoTempFiles) {
  const fs::path dir = TestDir();
  std::mt19937 rng(11);
  const std::vector<OwnedTensor> first = {RandomTensor("w", DType::kF32, {16}, rng)};
  const std::vector<OwnedTensor> second = {RandomTensor("v", DType::kI8, {3}, rng)};
  ASSERT_TRUE(WriteSafetensors(dir / "model.safetensors", Pointers(first), {}).ok());
  ASSERT_TRUE(WriteSafetensors(dir / "model.safetensors", Pointers(second), {}).ok());
  EXPECT_EQ(FileNames(dir), std::vector<std::string>{"model.safetensors"});
  Result<std::unique_ptr<CheckpointFiles>> ckpt = CheckpointFiles::Open(dir);
  ASSERT_TRUE(ckpt.ok()) << ckpt.status().ToString();
  ExpectSameTensors(**ckpt, second);
}

TEST(SafetensorsWriterTest, ShardedFailureAfterStagingLeavesNoPartialCheckpoint) {
  const fs::path dir = TestDir();
  std::mt19937 rng(12);
  std::vector<OwnedTensor> tensors;
  for (int i = 0; i < 3; ++i) {
    tensors.push_back(RandomTensor(std::string("t") + std::to_string(i), DType::kF32, {8}, rng));
  }
  // The last shard is invalid: shards 1 and 2 are already staged when it fails.
  tensors[2].data.resize(5);
  Status s = WriteShardedCheckpoint(dir, tensors, 3);
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.message(), HasSubstr("model-00003-of-00003.safetensors"));
  EXPECT_THAT(s.message(), HasSubstr("tensor 't2': data is 5 bytes, expected 32"));
  EXPECT_THAT(FileNames(dir), ::testing::IsEmpty());

  // The index rename fails last (its name is taken by a directory): the renamed shards go too.
  tensors[2].data.resize(32);
  fs::create_directory(dir / kIndex);
  s = WriteShardedCheckpoint(dir, tensors, 3);
  ASSERT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_THAT(s.message(), HasSubstr(kIndex));
  EXPECT_EQ(FileNames(dir), std::vector<std::string>{kIndex});
}

TEST(SafetensorsWriterTest, ShardedRejectsBadArguments) {
  const fs::path dir = TestDir();
  std::mt19937 rng(13);
  const std::vector<OwnedTensor> tensors = {RandomTensor("w", DType::kF32, {3}, rng)};
  Status s = WriteShardedCheckpoint(dir / "a", tensors, 0);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("num_shards must be >= 1, got 0"));
  s = WriteShardedCheckpoint(dir / "b", {}, 1);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("no tensors"));
  WriteRaw(dir / "file", "x");
  s = WriteShardedCheckpoint(dir / "file", tensors, 1);  // the folder's name is taken by a file
  EXPECT_EQ(s.code(), StatusCode::kIoError);
  EXPECT_THAT(s.message(), HasSubstr("cannot create directory"));
  EXPECT_THAT(FileNames(dir), ::testing::ElementsAre("file"));
}

}  // namespace
}  // namespace dsv4::checkpoint
