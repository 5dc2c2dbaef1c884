// Prefix snapshot files and the disk tier: round trips, and every way a file can be bad
// (truncated by a kill, a flipped bit, another model, another version, a leftover temporary)
// is refused with a message naming the file; a folder that cannot be written turns storing
// off with one warning.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/resource.h>
#include <unistd.h>

#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/rng.h"
#include "kv/disk_tier.h"
#include "kv/snapshot_file.h"

namespace dsv4::kv {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr uint64_t kModel = 0x1234abcd5678ef00ull;

SnapshotImage MakeImage(int64_t num_tokens, uint64_t seed) {
  Rng rng(seed);
  SnapshotImage im;
  for (int64_t i = 0; i < num_tokens; ++i) im.tokens.push_back(static_cast<int32_t>(rng.Below(512)));
  im.state.resize(40);
  for (auto& b : im.state) b = static_cast<uint8_t>(rng.Below(256));
  for (uint32_t layer = 0; layer < 3; ++layer) {
    for (uint16_t c = 0; c < 2; ++c) {
      SnapshotImage::Page p{c, layer, std::vector<uint8_t>(1000 + 8 * layer)};
      for (auto& b : p.bytes) b = static_cast<uint8_t>(rng.Below(256));
      im.pages.push_back(std::move(p));
    }
  }
  return im;
}

void ExpectSame(const SnapshotImage& a, const SnapshotImage& b) {
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.state, b.state);
  EXPECT_EQ(a.draft, b.draft);
  ASSERT_EQ(a.pages.size(), b.pages.size());
  for (size_t i = 0; i < a.pages.size(); ++i) {
    EXPECT_EQ(a.pages[i].component, b.pages[i].component);
    EXPECT_EQ(a.pages[i].layer, b.pages[i].layer);
    EXPECT_EQ(a.pages[i].bytes, b.pages[i].bytes);
  }
}

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("dsv4_snapshot_test_" + std::to_string(::getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::permissions(path_, fs::perms::owner_all, ec);
    fs::remove_all(path_, ec);
  }
  std::string operator/(const std::string& name) const { return (path_ / name).string(); }
  std::string str() const { return path_.string(); }
  int64_t CountFiles() const {
    return std::distance(fs::directory_iterator(path_), fs::directory_iterator());
  }

 private:
  fs::path path_;
};

std::vector<char> ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(f), {}};
}
void WriteAll(const std::string& path, const std::vector<char>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

TEST(Checksum64, DependsOnEveryByteAndSeed) {
  std::vector<uint8_t> b(1000, 7);
  const uint64_t h = Checksum64(b);
  EXPECT_EQ(h, Checksum64(b));
  EXPECT_NE(h, Checksum64(b, 1));
  for (size_t i : {0u, 31u, 32u, 500u, 999u}) {
    b[i] ^= 1;
    EXPECT_NE(Checksum64(b), h) << i;
    b[i] ^= 1;
  }
  EXPECT_NE(Checksum64(std::span(b).first(999)), h);  // length matters
}

TEST(SnapshotFile, RoundTripsAndNamesTheHeader) {
  TempDir dir;
  const SnapshotImage im = MakeImage(256, 1);
  const std::string path = dir / "a.dsv4kv";
  ASSERT_TRUE(WriteSnapshotFile(path, kModel, im).ok());
  EXPECT_EQ(dir.CountFiles(), 1);  // no temporary left behind
  Result<SnapshotImage> back = ReadSnapshotFile(path, kModel);
  ASSERT_TRUE(back.ok()) << back.status().message();
  ExpectSame(im, *back);
  Result<SnapshotFileHeader> h = ReadSnapshotHeader(path, kModel);
  ASSERT_TRUE(h.ok());
  EXPECT_EQ(h->num_tokens, 256);
  EXPECT_EQ(h->token_hash, HashTokens(im.tokens));
  EXPECT_EQ(h->file_bytes, static_cast<int64_t>(fs::file_size(path)));
}

TEST(SnapshotFile, RefusesEveryTruncation) {
  TempDir dir;
  const std::string path = dir / "a.dsv4kv";
  ASSERT_TRUE(WriteSnapshotFile(path, kModel, MakeImage(128, 2)).ok());
  const std::vector<char> whole = ReadAll(path);
  // A kill -9 mid-write leaves any prefix of the file (were it not for the rename).
  for (size_t len = 0; len < whole.size(); len += (len < 200 ? 1 : 97)) {
    WriteAll(path, std::vector<char>(whole.begin(), whole.begin() + static_cast<long>(len)));
    Result<SnapshotImage> r = ReadSnapshotFile(path, kModel);
    ASSERT_FALSE(r.ok()) << len;
    EXPECT_EQ(r.status().code(), StatusCode::kDataLoss) << len;
    EXPECT_THAT(r.status().message(), HasSubstr(path)) << len;
  }
  std::vector<char> longer = whole;
  longer.push_back(0);
  WriteAll(path, longer);
  EXPECT_EQ(ReadSnapshotFile(path, kModel).status().code(), StatusCode::kDataLoss);
}

TEST(SnapshotFile, RefusesAnyFlippedByte) {
  TempDir dir;
  const std::string path = dir / "a.dsv4kv";
  ASSERT_TRUE(WriteSnapshotFile(path, kModel, MakeImage(128, 3)).ok());
  const std::vector<char> whole = ReadAll(path);
  for (size_t i = 0; i < whole.size(); i += 37) {
    std::vector<char> bad = whole;
    bad[i] ^= 0x10;
    WriteAll(path, bad);
    Result<SnapshotImage> r = ReadSnapshotFile(path, kModel);
    ASSERT_FALSE(r.ok()) << i;
    EXPECT_THAT(r.status().message(), HasSubstr(path)) << i;
  }
}

TEST(SnapshotFile, RefusesAnotherModelAndAnotherVersion) {
  TempDir dir;
  const std::string path = dir / "a.dsv4kv";
  ASSERT_TRUE(WriteSnapshotFile(path, kModel, MakeImage(128, 4)).ok());
  Result<SnapshotImage> foreign = ReadSnapshotFile(path, kModel + 1);
  EXPECT_EQ(foreign.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(foreign.status().message(), HasSubstr("another model"));
  // Version 0 with a valid header checksum: an old format, refused as such.
  std::vector<char> bytes = ReadAll(path);
  const uint32_t v0 = 0;
  std::memcpy(bytes.data() + 8, &v0, 4);
  const uint64_t sum = Checksum64({reinterpret_cast<const uint8_t*>(bytes.data()), 56});
  std::memcpy(bytes.data() + 56, &sum, 8);
  WriteAll(path, bytes);
  Result<SnapshotImage> old = ReadSnapshotFile(path, kModel);
  EXPECT_EQ(old.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(old.status().message(), HasSubstr("version 0"));
}

// Version 2 keeps the drafter's bytes (checked like the rest); a version 1 file (no draft
// section) still loads, with no draft bytes; a later version is refused as such.
TEST(SnapshotFile, KeepsDraftBytesAndReadsVersionOne) {
  TempDir dir;
  const std::string path = dir / "a.dsv4kv";
  SnapshotImage im = MakeImage(128, 5);
  im.draft.assign(300, 0);
  for (size_t i = 0; i < im.draft.size(); ++i) im.draft[i] = static_cast<uint8_t>(i * 7);
  ASSERT_TRUE(WriteSnapshotFile(path, kModel, im).ok());
  Result<SnapshotImage> back = ReadSnapshotFile(path, kModel);
  ASSERT_TRUE(back.ok()) << back.status().message();
  ExpectSame(im, *back);
  EXPECT_EQ(back->total_bytes(), im.total_bytes());
  // A flipped draft byte: refused naming the section.
  std::vector<char> bytes = ReadAll(path);
  const size_t draft_at = 64 + 128 * 4 + 8 + im.state.size() + 8 + 8;
  bytes[draft_at + 10] ^= 1;
  WriteAll(path, bytes);
  Result<SnapshotImage> bad = ReadSnapshotFile(path, kModel);
  EXPECT_EQ(bad.status().code(), StatusCode::kDataLoss);
  EXPECT_THAT(bad.status().message(), HasSubstr("draft state"));
  // Version 1: the same file without the draft section, as the previous build wrote it.
  im.draft.clear();
  ASSERT_TRUE(WriteSnapshotFile(path, kModel, im).ok());
  bytes = ReadAll(path);
  const size_t section = 64 + 128 * 4 + 8 + im.state.size() + 8;
  bytes.erase(bytes.begin() + static_cast<std::ptrdiff_t>(section),
              bytes.begin() + static_cast<std::ptrdiff_t>(section + 16));
  auto set_version = [&](uint32_t v) {
    std::memcpy(bytes.data() + 8, &v, 4);
    const uint64_t sum = Checksum64({reinterpret_cast<const uint8_t*>(bytes.data()), 56});
    std::memcpy(bytes.data() + 56, &sum, 8);
  };
  set_version(1);
  const uint64_t total = bytes.size();
  std::memcpy(bytes.data() + bytes.size() - 8, &total, 8);
  WriteAll(path, bytes);
  Result<SnapshotImage> v1 = ReadSnapshotFile(path, kModel);
  ASSERT_TRUE(v1.ok()) << v1.status().message();
  ExpectSame(im, *v1);
  set_version(3);
  WriteAll(path, bytes);
  Result<SnapshotImage> v3 = ReadSnapshotFile(path, kModel);
  EXPECT_EQ(v3.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_THAT(v3.status().message(), HasSubstr("version 3, this build reads 1 to 2"));
}

struct Warnings {
  std::vector<std::string> lines;
  std::function<void(const std::string&)> sink() {
    return [this](const std::string& m) { lines.push_back(m); };
  }
};

TEST(DiskTier, StoresFindsLoadsAndSurvivesARestart) {
  TempDir dir;
  Warnings w;
  const SnapshotImage a = MakeImage(128, 5), b = MakeImage(256, 6);
  {
    DiskTier tier({.dir = dir.str(), .budget_bytes = 1 << 20, .model_fingerprint = kModel,
                   .warn = w.sink()});
    EXPECT_TRUE(tier.Store(a));
    EXPECT_TRUE(tier.Store(b));
    EXPECT_EQ(tier.stats().entries, 2);
    EXPECT_EQ(tier.Find(b.tokens, 1000), 256);
    EXPECT_EQ(tier.Find(a.tokens, 1000), 128);
    EXPECT_EQ(tier.Find(b.tokens, 255), 0);  // a's tokens are not b's prefix
  }
  DiskTier again({.dir = dir.str(), .budget_bytes = 1 << 20, .model_fingerprint = kModel,
                  .warn = w.sink()});
  EXPECT_EQ(again.stats().entries, 2);
  std::vector<int32_t> longer = b.tokens;
  longer.push_back(9);
  EXPECT_EQ(again.Find(longer, 1000), 256);
  Result<SnapshotImage> back = again.Load(longer, 256);
  ASSERT_TRUE(back.ok());
  ExpectSame(b, *back);
  EXPECT_TRUE(w.lines.empty());
  // Another model's tier does not see (or delete) these files.
  DiskTier other({.dir = dir.str(), .budget_bytes = 1 << 20, .model_fingerprint = kModel + 1,
                  .warn = w.sink()});
  EXPECT_EQ(other.stats().entries, 0);
  EXPECT_EQ(other.stats().rejected_files, 2);
  EXPECT_EQ(dir.CountFiles(), 2);
  again.Clear();
  EXPECT_EQ(dir.CountFiles(), 0);
}

TEST(DiskTier, StaysWithinItsBudgetLeastRecentlyUsedFirst) {
  TempDir dir;
  const SnapshotImage a = MakeImage(128, 7), b = MakeImage(128, 8), c = MakeImage(128, 9);
  const int64_t one = static_cast<int64_t>(a.total_bytes()) + 128 * 4 + 4096 + 6 * 24;
  DiskTier tier({.dir = dir.str(), .budget_bytes = 2 * one + 10, .model_fingerprint = kModel});
  ASSERT_TRUE(tier.Store(a));
  ASSERT_TRUE(tier.Store(b));
  ASSERT_TRUE(tier.Load(a.tokens, 128).ok());  // a is now the most recent
  ASSERT_TRUE(tier.Store(c));                  // b goes
  EXPECT_EQ(tier.Find(b.tokens, 128), 0);
  EXPECT_EQ(tier.Find(a.tokens, 128), 128);
  EXPECT_EQ(tier.Find(c.tokens, 128), 128);
  EXPECT_LE(tier.stats().bytes, 2 * one + 10);
  EXPECT_EQ(dir.CountFiles(), 2);
  SnapshotImage huge = MakeImage(128, 10);
  huge.pages[0].bytes.resize(3 * one);
  EXPECT_FALSE(tier.Store(huge));  // alone past the budget: not stored, nothing evicted
  EXPECT_EQ(tier.stats().entries, 2);
}

TEST(DiskTier, NeverTrustsLeftoversOrCorruptFiles) {
  TempDir dir;
  Warnings w;
  const SnapshotImage a = MakeImage(128, 11), b = MakeImage(256, 12);
  std::string path_a, path_b;
  {
    DiskTier tier({.dir = dir.str(), .budget_bytes = 1 << 20, .model_fingerprint = kModel});
    ASSERT_TRUE(tier.Store(a));
    ASSERT_TRUE(tier.Store(b));
  }
  for (const auto& e : fs::directory_iterator(dir.str())) {
    (e.path().filename().string().starts_with("256-") ? path_b : path_a) = e.path().string();
  }
  ASSERT_FALSE(path_a.empty());
  ASSERT_FALSE(path_b.empty());
  // A writer killed mid-write: its temporary is never indexed, even if complete.
  fs::copy_file(path_a, path_a + ".tmp.4242");
  // b's last page corrupted; a truncated after its header (e.g. a copy cut short).
  std::vector<char> bytes = ReadAll(path_b);
  bytes[bytes.size() - 100] ^= 1;
  WriteAll(path_b, bytes);
  bytes = ReadAll(path_a);
  bytes.resize(bytes.size() - 1);
  WriteAll(path_a, bytes);
  DiskTier tier({.dir = dir.str(), .budget_bytes = 1 << 20, .model_fingerprint = kModel,
                 .warn = w.sink()});
  // a is refused at indexing (its size cannot hold what the header says) or at load; b's
  // header is fine, so it is refused when read, and deleted.
  EXPECT_FALSE(tier.Load(a.tokens, 128).ok());
  Result<SnapshotImage> rb = tier.Load(b.tokens, 256);
  EXPECT_EQ(rb.status().code(), StatusCode::kDataLoss);
  EXPECT_EQ(tier.Find(b.tokens, 256), 0);
  EXPECT_FALSE(fs::exists(path_b));
  EXPECT_TRUE(fs::exists(path_a + ".tmp.4242"));  // not ours to judge: left alone
  ASSERT_GE(w.lines.size(), 1u);
  bool named_b = false;
  for (const auto& l : w.lines) named_b |= l.find(path_b) != std::string::npos;
  EXPECT_TRUE(named_b);
  EXPECT_GE(tier.stats().rejected_files, 1);
}

TEST(DiskTier, AFolderThatCannotBeCreatedIsReportedOnce) {
  Warnings w;
  DiskTier tier({.dir = "/proc/dsv4-no-such-folder/kv", .budget_bytes = 1 << 20,
                 .model_fingerprint = kModel, .warn = w.sink()});
  EXPECT_FALSE(tier.stats().storing);
  EXPECT_FALSE(tier.Store(MakeImage(128, 13)));
  EXPECT_FALSE(tier.Store(MakeImage(128, 14)));
  ASSERT_EQ(w.lines.size(), 1u);
  EXPECT_THAT(w.lines[0], HasSubstr("/proc/dsv4-no-such-folder/kv"));
}

// A full disk: file writes past RLIMIT_FSIZE fail with EFBIG (SIGXFSZ ignored), as they would
// with ENOSPC; the tier turns storing off, reports it once, and keeps what it had.
TEST(DiskTier, AFullDiskTurnsStoringOffWithOneWarning) {
  TempDir dir;
  Warnings w;
  DiskTier tier({.dir = dir.str(), .budget_bytes = 1 << 20, .model_fingerprint = kModel,
                 .warn = w.sink()});
  const SnapshotImage a = MakeImage(128, 15);
  ASSERT_TRUE(tier.Store(a));
  rlimit old{};
  ASSERT_EQ(::getrlimit(RLIMIT_FSIZE, &old), 0);
  auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
  rlimit small = old;
  small.rlim_cur = 2000;
  ASSERT_EQ(::setrlimit(RLIMIT_FSIZE, &small), 0);
  const bool stored_b = tier.Store(MakeImage(128, 16));
  const bool stored_c = tier.Store(MakeImage(128, 17));
  ::setrlimit(RLIMIT_FSIZE, &old);
  std::signal(SIGXFSZ, old_handler);
  EXPECT_FALSE(stored_b);
  EXPECT_FALSE(stored_c);
  EXPECT_FALSE(tier.stats().storing);
  ASSERT_EQ(w.lines.size(), 1u);
  EXPECT_THAT(w.lines[0], HasSubstr(dir.str()));
  EXPECT_EQ(dir.CountFiles(), 1);  // the failed write left no temporary
  EXPECT_TRUE(tier.Load(a.tokens, 128).ok());  // reading goes on
}

TEST(DiskTier, AReadOnlyFolderTurnsStoringOffWithOneWarning) {
  if (::geteuid() == 0) GTEST_SKIP() << "root writes into read-only folders";
  TempDir dir;
  Warnings w;
  fs::permissions(dir.str(), fs::perms::owner_read | fs::perms::owner_exec);
  DiskTier tier({.dir = dir.str(), .budget_bytes = 1 << 20, .model_fingerprint = kModel,
                 .warn = w.sink()});
  EXPECT_FALSE(tier.Store(MakeImage(128, 18)));
  EXPECT_FALSE(tier.Store(MakeImage(128, 19)));
  EXPECT_FALSE(tier.stats().storing);
  EXPECT_EQ(w.lines.size(), 1u);
}

}  // namespace
}  // namespace dsv4::kv
