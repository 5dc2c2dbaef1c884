// Expert parallelism end to end through mpirun (OpenMPI) on one machine: `mpirun -np N dsv4
// {logits,run} --ep N` gives byte-identical logits files and the same tokens as one process
// (N = 2 and 4, contiguous and interleaved expert maps; V4 and V3.2; `run` with the MTP and
// DSpark drafters across the ranks equal to one process with and without them), a killed
// rank ends the whole job, and the flags' errors. Skipped when mpirun is missing.
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <regex>
#include <string>

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "cli_runner.h"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using dsv4::cli_test::CmdResult;
using dsv4::cli_test::Dsv4;
using dsv4::cli_test::Fresh;
using dsv4::cli_test::Shell;
namespace fs = std::filesystem;

bool HaveMpirun() { return Shell("command -v mpirun").exit_code == 0; }

// mpirun for `n` ranks on this machine: oversubscribed (more ranks than cores is fine here),
// as root when the tests run as root (OpenMPI refuses it otherwise), one thread per rank.
std::string Mpirun(int n) {
  return "mpirun -np " + std::to_string(n) + " --oversubscribe" +
         (geteuid() == 0 ? " --allow-run-as-root" : "") + " " + DSV4_BIN;
}

std::string ReadBytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// 48 tokens: prefill 32 in chunks of 16 (the MoE sees 16-row steps), then 16 decode steps.
fs::path TokenFile(const fs::path& dir) {
  fs::create_directories(dir);
  const fs::path p = dir / "tokens.txt";
  std::ofstream out(p);
  for (int i = 0; i < 48; ++i) out << (i * 37 + 11) % 512 << (i + 1 < 48 ? "," : "\n");
  return p;
}

const std::string kLogitsArgs = " --decode-from 32 --chunk 16 --threads 1";

TEST(ExpertParallelCli, LogitsAreByteIdenticalToOneProcess) {
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not found (apt-get install openmpi-bin)";
  const fs::path dir = Fresh("ep_logits");
  const fs::path tokens = TokenFile(dir);
  const CmdResult one =
      Dsv4("logits --tokens " + tokens.string() + " --out " + (dir / "one.npy").string() + kLogitsArgs);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const std::string expected = ReadBytes(dir / "one.npy");
  ASSERT_GT(expected.size(), 48u * 512u * 4u);
  std::ofstream(dir / "interleaved.txt") << "# even experts on rank 0, odd on rank 1\n0: 0,2,4,6\n1: 1 3 5 7\n";
  struct Case {
    int n;
    std::string extra;
  };
  for (const Case& k : {Case{2, ""}, Case{4, ""}, Case{2, " --expert-map " + (dir / "interleaved.txt").string()}}) {
    const fs::path out = dir / ("ep" + std::to_string(k.n) + ".npy");
    fs::remove(out);
    const CmdResult r = Shell(Mpirun(k.n) + " logits --ep " + std::to_string(k.n) + k.extra +
                              " --tokens " + tokens.string() + " --out " + out.string() + kLogitsArgs);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("rank 1 of " + std::to_string(k.n)));
    EXPECT_THAT(r.output, HasSubstr("MoE exchanges"));
    EXPECT_TRUE(ReadBytes(out) == expected) << "--ep " << k.n << k.extra << " logits differ";
  }
}

// DeepSeek-V3.2 (make-tiny --arch v3.2: 8 experts top-2, a dense first layer, MLA + DSA):
// the same byte identity for N = 2 and N = 4 with a map that interleaves and unbalances the
// experts, and inspect's per-rank share equals the one each rank prints at startup.
TEST(ExpertParallelCli, V32LogitsAreByteIdenticalToOneProcess) {
  const fs::path dir = Fresh("ep_v32");
  const fs::path tokens = TokenFile(dir);
  const fs::path model = dir / "v32";
  ASSERT_EQ(Dsv4("make-tiny --arch v3.2 --out " + model.string()).exit_code, 0);
  const CmdResult inspect = Dsv4("inspect " + model.string() + " --ep 2");
  ASSERT_EQ(inspect.exit_code, 0) << inspect.output;
  EXPECT_THAT(inspect.output, HasSubstr("experts 4-7 of 8"));
  const std::regex share("experts 4-7 of 8 +[0-9,]+ +[0-9,]+ +([0-9,]+)");
  std::smatch total;
  ASSERT_TRUE(std::regex_search(inspect.output, total, share)) << inspect.output;
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not found (apt-get install openmpi-bin)";
  const std::string args = " --model " + model.string() + " --tokens " + tokens.string() + kLogitsArgs;
  const CmdResult one = Dsv4("logits --out " + (dir / "one.npy").string() + args);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  const std::string expected = ReadBytes(dir / "one.npy");
  ASSERT_GT(expected.size(), 48u * 512u * 4u);
  std::ofstream(dir / "map4.txt") << "0: 7\n1: 0 2 4\n2: 1 3\n3: 5 6\n";
  struct Case {
    int n;
    std::string extra;
  };
  for (const Case& k : {Case{2, ""}, Case{4, " --expert-map " + (dir / "map4.txt").string()}}) {
    const fs::path out = dir / ("ep" + std::to_string(k.n) + ".npy");
    const CmdResult r = Shell(Mpirun(k.n) + " logits --ep " + std::to_string(k.n) + k.extra +
                              " --out " + out.string() + args);
    ASSERT_EQ(r.exit_code, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("MoE exchanges"));
    if (k.n == 2) {
      EXPECT_THAT(r.output, HasSubstr("rank 1 of 2 (pid"));
      EXPECT_THAT(r.output, HasSubstr("experts 4-7 of 8, weights " + total[1].str()));
    }
    EXPECT_TRUE(ReadBytes(out) == expected) << "--ep " << k.n << k.extra << " logits differ";
  }
}

TEST(ExpertParallelCli, RunGeneratesTheSameTokensWithTheDrafterAcrossRanks) {
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not found (apt-get install openmpi-bin)";
  const std::string args = " --prompt-tokens 5,17,300,42,9,11 -n 12 --ignore-eos --threads 1";
  const CmdResult off = Dsv4("run --speculative off" + args);
  ASSERT_EQ(off.exit_code, 0) << off.output;
  const CmdResult one = Dsv4("run --speculative mtp" + args);
  ASSERT_EQ(one.exit_code, 0) << one.output;
  // The MTP drafter's MoE exchanges rows like the target's: rank 1 joins every drafter call.
  const CmdResult ep = Shell(Mpirun(2) + " run --ep 2 --speculative mtp" + args);
  ASSERT_EQ(ep.exit_code, 0) << ep.output;
  const std::regex generated("generated:[ 0-9]+");
  // From the verification count to the per-position acceptance: the same drafts, verified
  // the same way.
  const std::regex spec("speculative: mtp[^\n]*");
  std::smatch g_off, g_one, g_ep, s_one, s_ep, calls;
  ASSERT_TRUE(std::regex_search(off.output, g_off, generated)) << off.output;
  ASSERT_TRUE(std::regex_search(one.output, g_one, generated)) << one.output;
  ASSERT_TRUE(std::regex_search(ep.output, g_ep, generated)) << ep.output;
  EXPECT_EQ(g_off.str(), g_one.str());
  EXPECT_EQ(g_off.str(), g_ep.str());
  ASSERT_TRUE(std::regex_search(one.output, s_one, spec)) << one.output;
  ASSERT_TRUE(std::regex_search(ep.output, s_ep, spec)) << ep.output;
  EXPECT_THAT(s_one.str(), HasSubstr("verifications"));
  EXPECT_EQ(s_one.str(), s_ep.str());
  ASSERT_TRUE(std::regex_search(ep.output, calls,
                                std::regex("rank 1: [0-9]+ steps, ([0-9]+) drafter calls")))
      << ep.output;
  EXPECT_GT(std::stoi(calls[1].str()), 0) << ep.output;
  // DSpark (three draft blocks with MoE), on a model whose drafts are sometimes right: the
  // same acceptance per position shows the same drafts.
  const fs::path ck = Fresh("ep_dspark") / "tiny0731";
  ASSERT_EQ(Dsv4("make-tiny --seed 77 --layout 0731 --out " + ck.string()).exit_code, 0);
  const std::string dargs = " --model " + ck.string() +
                            " --prompt-tokens 5,6,7,8,9,10 -n 24 --ignore-eos --threads 1";
  const CmdResult done = Dsv4("run --speculative dspark" + dargs);
  ASSERT_EQ(done.exit_code, 0) << done.output;
  const CmdResult dep = Shell(Mpirun(2) + " run --ep 2 --speculative dspark" + dargs);
  ASSERT_EQ(dep.exit_code, 0) << dep.output;
  const std::regex dspec("generated:[ 0-9]+|speculative: dspark[^\n]*");
  std::string want, got;
  for (std::sregex_iterator it(done.output.begin(), done.output.end(), dspec), end; it != end; ++it) {
    want += it->str() + "\n";
  }
  for (std::sregex_iterator it(dep.output.begin(), dep.output.end(), dspec), end; it != end; ++it) {
    got += it->str() + "\n";
  }
  EXPECT_THAT(want, HasSubstr(" drafts accepted"));
  EXPECT_THAT(want, Not(HasSubstr(" 0 of ")));  // some drafts accepted
  EXPECT_EQ(want, got);
}

TEST(ExpertParallelCli, AKilledRankEndsTheJob) {
  if (!HaveMpirun()) GTEST_SKIP() << "mpirun not found (apt-get install openmpi-bin)";
  // A generation long enough to be running when rank 1 is killed.
  const std::string cmd = Mpirun(2) +
                          " run --ep 2 --prompt-random 64 -n 60000 --ignore-eos --threads 1 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char line[4096];
  const std::regex rank1("rank 1 of 2 \\(pid ([0-9]+)\\)");
  bool killed = false;
  while (fgets(line, sizeof(line), p) != nullptr) {
    out += line;
    std::smatch m;
    const std::string l(line);
    if (!killed && std::regex_search(l, m, rank1)) {
      sleep(2);  // let the ranks get into their steps
      ASSERT_EQ(kill(std::stoi(m[1].str()), SIGKILL), 0);
      killed = true;
    }
  }
  const int status = pclose(p);
  ASSERT_TRUE(killed) << out;
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << out;
  EXPECT_THAT(out, ::testing::AnyOf(HasSubstr("rank 1"), HasSubstr("signal 9"), HasSubstr("Killed")));
}

TEST(ExpertParallelCli, FlagErrors) {
  const fs::path dir = Fresh("ep_errors");
  const fs::path tokens = TokenFile(dir);
  const CmdResult no_mpirun =
      Dsv4("logits --ep 2 --tokens " + tokens.string() + " --out " + (dir / "x.npy").string());
  EXPECT_EQ(no_mpirun.exit_code, 1);
  EXPECT_THAT(no_mpirun.output, HasSubstr("--ep 2 needs 2 processes: launch with mpirun -np 2"));
  if (!HaveMpirun()) return;
  const CmdResult no_ep = Shell(Mpirun(2) + " logits --tokens " + tokens.string() + " --out " +
                                (dir / "x.npy").string());
  EXPECT_NE(no_ep.exit_code, 0);
  EXPECT_THAT(no_ep.output, HasSubstr("mpirun started 2 processes but --ep is 1: give --ep 2"));
  std::ofstream(dir / "bad_map.txt") << "0: 0-3\n1: 3-7\n";
  const CmdResult bad_map = Shell(Mpirun(2) + " logits --ep 2 --expert-map " +
                                  (dir / "bad_map.txt").string() + " --tokens " + tokens.string() +
                                  " --out " + (dir / "x.npy").string());
  EXPECT_NE(bad_map.exit_code, 0);
  EXPECT_THAT(bad_map.output, HasSubstr("bad_map.txt line 2: expert 3 already held by rank 0"));
  // Ranks given different maps (as two hosts with different files would be) refuse to start.
  std::ofstream(dir / "a.txt") << "0: 0-3\n1: 4-7\n";
  std::ofstream(dir / "b.txt") << "0: 0-2\n1: 3-7\n";
  const std::string rest = " --tokens " + tokens.string() + " --out " + (dir / "x.npy").string();
  const CmdResult differ = Shell(Mpirun(1) + " logits --ep 2 --expert-map " + (dir / "a.txt").string() +
                                 rest + " : -np 1 " + DSV4_BIN + " logits --ep 2 --expert-map " +
                                 (dir / "b.txt").string() + rest);
  EXPECT_NE(differ.exit_code, 0);
  EXPECT_THAT(differ.output, HasSubstr("rank 1 has a different model or expert map than rank 0"));
}

TEST(ExpertParallelCli, InspectShowsEachRanksShareBesideThePlan) {
  const CmdResult r = Dsv4("inspect --ep 2");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("expert parallelism over 2 ranks (stored tensors"));
  EXPECT_THAT(r.output, HasSubstr("experts 4-7 of 8"));
  EXPECT_THAT(r.output, HasSubstr("plan --layout dep2"));
}

TEST(ExpertParallelCli, PlanReportsTheAllToAllPerDecodeStep) {
  const CmdResult r = Dsv4("plan -m v4-flash --hw h100 --layout dep16 --ctx 128K --a2a-dispatch fp8");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("expert all-to-all per decode step (ep 16, fp8 dispatch rows"));
  EXPECT_THAT(r.output, HasSubstr("53.3%"));  // 8 of the 15 peers are in the other node
  EXPECT_THAT(r.output, HasSubstr("links 450 GB/s in the 8-GPU node, 50 GB/s across"));
  const CmdResult tp = Dsv4("plan -m v4-flash --hw b200 --layout tp8 --ep 1");
  EXPECT_THAT(tp.output, Not(HasSubstr("expert all-to-all")));
  const CmdResult bad = Dsv4("plan -m v4-flash --nic-bw 0");
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.output, HasSubstr("--nic-bw must be a positive number of GB/s"));
}

}  // namespace
