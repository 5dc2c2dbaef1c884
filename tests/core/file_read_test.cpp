// ReadFileLimited (core/file_read.h): whole files up to the limit; a larger regular file, an
// endless device, a directory and a missing file each give an error naming the path.
#include "core/file_read.h"

#include <filesystem>
#include <fstream>
#include <string>

#include <gtest/gtest.h>

namespace dsv4 {
namespace {

namespace fs = std::filesystem;

fs::path TempFile(const std::string& name, const std::string& contents) {
  const fs::path dir = fs::path(DSV4_TEST_TMPDIR) / "file_read";
  fs::create_directories(dir);
  const fs::path p = dir / name;
  std::ofstream(p, std::ios::binary) << contents;
  return p;
}

TEST(ReadFileLimited, ReadsUpToTheLimitExactly) {
  const std::string text("ab\0c\n", 5);
  const fs::path p = TempFile("five", text);
  EXPECT_EQ(ReadFileLimited(p, 5, "test file").value(), text);
  EXPECT_EQ(ReadFileLimited(TempFile("empty", ""), 0, "test file").value(), "");
  Result<std::string> r = ReadFileLimited(p, 4, "test file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(),
            p.string() + ": test file is 5 bytes, more than the limit of 4 bytes");
}

TEST(ReadFileLimited, LargeSparseFileIsRefusedWithoutReadingIt) {
  const fs::path p = TempFile("sparse", "");
  fs::resize_file(p, uint64_t{1} << 40);  // 1 TiB of holes
  Result<std::string> r = ReadFileLimited(p, 1 << 20, "token file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(),
            p.string() + ": token file is 1099511627776 bytes, more than the limit of 1048576 bytes");
  fs::remove(p);
}

// A device or pipe has no size: reading stops one byte past the limit.
TEST(ReadFileLimited, EndlessDeviceStopsPastTheLimit) {
  Result<std::string> r = ReadFileLimited("/dev/zero", 100'000, "token file");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), "/dev/zero: token file is more than the limit of 100000 bytes");
}

TEST(ReadFileLimited, MissingFileAndDirectoryAreNamed) {
  const fs::path dir = fs::path(DSV4_TEST_TMPDIR) / "file_read";
  fs::create_directories(dir);
  Result<std::string> r = ReadFileLimited(dir / "nope", 10, "config file");
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(r.status().message(), (dir / "nope").string() + ": config file does not exist");
  r = ReadFileLimited(dir, 10, "config file");
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(r.status().message(), dir.string() + ": is a directory, expected a config file");
}

}  // namespace
}  // namespace dsv4
