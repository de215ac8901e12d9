// Runs the irdump binary as a user would and checks its output and exit codes.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "ir/node.h"
#include "ir/text.h"

namespace smelt {
namespace {

namespace fs = std::filesystem;

struct Result {
  int rc = -1;
  std::string out;
  std::string err;
};

std::string read_file(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

fs::path temp_path(const std::string& name) {
  return fs::path(::testing::TempDir()) / absl::StrCat("irdump_test_", ::getpid(), "_", name);
}

void write_file(const fs::path& p, const std::string& text) {
  std::ofstream out(p, std::ios::binary);
  out << text;
}

// Runs `irdump <args>` (args are shell words), with `stdin_text` on its standard input.
Result irdump(const std::string& args, const std::string& stdin_text = "") {
  const fs::path bin = fs::path(SMELT_BINARY_DIR) / "tools" / "irdump";
  const fs::path in = temp_path("stdin"), out = temp_path("stdout"), err = temp_path("stderr");
  write_file(in, stdin_text);
  const std::string cmd = absl::StrCat("'", bin.string(), "' ", args, " <'", in.string(), "' >'",
                                       out.string(), "' 2>'", err.string(), "'");
  const int status = std::system(cmd.c_str());
  Result r;
  r.rc = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  r.out = read_file(out);
  r.err = read_file(err);
  return r;
}

const char* const kExamples[] = {"mlp", "chain", "softmax"};

TEST(Irdump, BinaryExists) {
  ASSERT_TRUE(fs::exists(fs::path(SMELT_BINARY_DIR) / "tools" / "irdump"))
      << "build the irdump target";
}

TEST(Irdump, ListsTheExamples) {
  Result r = irdump("--list-examples");
  EXPECT_EQ(r.rc, 0) << r.err;
  for (const char* name : kExamples) EXPECT_TRUE(absl::StrContains(r.out, name)) << r.out;
}

TEST(Irdump, BuiltInExamplesPrintAndParseBack) {
  for (const char* name : kExamples) {
    SCOPED_TRACE(name);
    Result r = irdump(name);
    ASSERT_EQ(r.rc, 0) << r.err;
    EXPECT_TRUE(absl::StartsWith(r.out, "# smelt IR v1\n")) << r.out;
    absl::StatusOr<ir::Graph> g = ir::parse_graph(r.out);
    ASSERT_TRUE(g.ok()) << g.status();
    EXPECT_EQ(ir::print_graph(*g), r.out);
    // And irdump reads its own output back unchanged, from stdin.
    Result again = irdump("-", r.out);
    EXPECT_EQ(again.rc, 0) << again.err;
    EXPECT_EQ(again.out, r.out);
  }
}

TEST(Irdump, ReadsWhatPrintGraphWrote) {
  absl::StatusOr<ir::Graph> g = ir::parse_graph(
      "%0 = input f32[2, 3]\n"
      "%1 = permute f32[3, 2] %0 {perm=[1, 0]}\n"
      "%2 = constant f32[] {value=1e-05}\n"
      "%3 = reshape f32[1, 1] %2\n"
      "%4 = expand f32[3, 2] %3\n"
      "%5 = add f32[3, 2] %1, %4\n"
      "%6 = sum f32[3, 1] %5 {axes=[1], keepdim=true}\n"
      "return %6, %5\n");
  ASSERT_TRUE(g.ok()) << g.status();
  const std::string text = ir::print_graph(*g);
  const fs::path file = temp_path("graph.smir");
  write_file(file, text);
  Result r = irdump(absl::StrCat("'", file.string(), "'"));
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(r.out, text);
  EXPECT_EQ(r.err, "");
}

TEST(Irdump, CheckedInExamplesAreCanonical) {
  // Every tools/irdump/examples/*.smir is irdump's own output; a built-in example's file is
  // exactly what `irdump <name>` prints, so the two cannot drift apart.
  const fs::path dir = fs::path(SMELT_SOURCE_DIR) / "tools" / "irdump" / "examples";
  int files = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    if (entry.path().extension() != ".smir") continue;
    ++files;
    SCOPED_TRACE(entry.path().string());
    const std::string text = read_file(entry.path());
    Result r = irdump(absl::StrCat("'", entry.path().string(), "'"));
    EXPECT_EQ(r.rc, 0) << r.err;
    EXPECT_EQ(r.out, text);
    const std::string stem = entry.path().stem().string();
    for (const char* name : kExamples) {
      if (stem == name) EXPECT_EQ(irdump(name).out, text);
    }
    Result values = irdump(absl::StrCat("--eval '", entry.path().string(), "'"));
    EXPECT_EQ(values.rc, 0) << values.err;
  }
  EXPECT_GE(files, 3);
}

TEST(Irdump, BadFileFailsWithLineAndColumn) {
  const fs::path file = temp_path("bad.smir");
  write_file(file, "%0 = input f32[2]\n%1 = neg f32[3] %0\nreturn %1\n");
  Result r = irdump(absl::StrCat("'", file.string(), "'"));
  EXPECT_EQ(r.rc, 1);
  EXPECT_EQ(r.out, "");
  EXPECT_TRUE(absl::StrContains(
      r.err, "line 2, column 10: neg: printed type f32[3] differs from the inferred f32[2]"))
      << r.err;
  EXPECT_TRUE(absl::StrContains(r.err, file.string())) << r.err;

  r = irdump("-", "%0 = input f32[2]\n");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "<stdin>: line 2, column 1: missing 'return'")) << r.err;

  r = irdump("no_such_file_or_example.smir");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "no such file or built-in example")) << r.err;
}

TEST(Irdump, DotFormat) {
  Result r = irdump("--format=dot softmax");
  EXPECT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "digraph smelt {")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "[label=\"%1 max f32[4]\\n{axes=[1], keepdim=false}\"]"))
      << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "-> out0;")) << r.out;
}

TEST(Irdump, EvalPrintsEachOutput) {
  Result r = irdump("--eval softmax");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "output 0: f32[4, 10] = [")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "(40 values)")) << r.out;
  EXPECT_EQ(irdump("--eval softmax").out, r.out);  // a fixed seed

  r = irdump("--eval -", "%0 = input i64[3]\n%1 = neg i64[3] %0\nreturn %1, %0\n");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(absl::StartsWith(r.out, "output 0: i64[3] = [")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "\noutput 1: i64[3] = [")) << r.out;

  r = irdump("--eval -", "%0 = input f32[100000, 100000]\nreturn %0\n");
  EXPECT_EQ(r.rc, 1);
  EXPECT_TRUE(absl::StrContains(r.err, "too big to evaluate")) << r.err;
}

TEST(Irdump, UsageErrors) {
  EXPECT_EQ(irdump("").rc, 2);
  EXPECT_EQ(irdump("--frobnicate mlp").rc, 2);
  EXPECT_EQ(irdump("--format=svg mlp").rc, 2);
  EXPECT_EQ(irdump("mlp chain").rc, 2);
  EXPECT_EQ(irdump("--after=nonsense mlp").rc, 2);
  EXPECT_EQ(irdump("--emit=nonsense mlp").rc, 2);
  Result help = irdump("--help");
  EXPECT_EQ(help.rc, 0);
  EXPECT_TRUE(absl::StrContains(help.out, "usage: irdump")) << help.out;
}

TEST(Irdump, EmitCudaPrintsOneTranslationUnitPerKernel) {
  Result r = irdump("--emit=cuda mlp");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "extern \"C\" __global__")) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "namespace smelt_rt")) << r.out;
}

int count(const std::string& text, const std::string& what);  // below

TEST(Irdump, AfterSimplifyMergesRepeatedWork) {
  // x*y computed twice, plus a multiplication by one and a reshape of a reshape.
  const char* text = R"(# smelt IR v1
%0 = input f32[2, 3]
%1 = input f32[2, 3]
%2 = mul f32[2, 3] %0, %1
%3 = mul f32[2, 3] %0, %1
%4 = constant f32[] {value=1.0}
%5 = reshape f32[1, 1] %4 {shape=[1, 1]}
%6 = expand f32[2, 3] %5 {shape=[2, 3]}
%7 = mul f32[2, 3] %3, %6
%8 = add f32[2, 3] %2, %7
%9 = reshape f32[3, 2] %8 {shape=[3, 2]}
%10 = reshape f32[6] %9 {shape=[6]}
return %10
)";
  const std::string path = ::testing::TempDir() + "irdump_simplify.smir";
  {
    std::ofstream f(path);
    f << text;
  }
  Result r = irdump(absl::StrCat("--after=simplify ", path));
  ASSERT_EQ(r.rc, 0) << r.err;
  // One mul left (CSE and x*1), one reshape (the chain merged), no constant.
  EXPECT_EQ(count(r.out, " = mul "), 1) << r.out;
  EXPECT_EQ(count(r.out, " = reshape "), 1) << r.out;
  EXPECT_EQ(count(r.out, " = constant "), 0) << r.out;
  EXPECT_TRUE(absl::StrContains(r.out, "reshape f32[6]")) << r.out;
  std::remove(path.c_str());
}

// The "# N kernels" summary of --after=fusion.
int kernel_count(const std::string& out) {
  const size_t at = out.rfind("\n# ");
  if (at == std::string::npos) return -1;
  return std::atoi(out.c_str() + at + 3);
}

int count(const std::string& text, const std::string& what) {
  int n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(Irdump, AfterAutodiffAppendsTheGradients) {
  // The directive names the output and the leaves; the gradient of x (w * (1 - tanh^2)) is
  // appended to `return`; the dead branch (exp of w) gets no gradient nodes.
  const std::string text =
      "# smelt IR v1\n"
      "%x = input f32[3]\n"
      "%w = input f32[3]\n"
      "%m = mul f32[3] %x, %w\n"
      "%t = tanh f32[3] %m\n"
      "%dead = exp f32[3] %w\n"
      "%s = sum f32[] %t {axes=[0], keepdim=false}\n"
      "# grad: %s wrt %x\n"
      "return %s, %dead\n";
  Result r = irdump("--after=autodiff -", text);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "%1 = input f32[3]")) << r.out;
  EXPECT_EQ(count(r.out, "tanh"), 1) << r.out;   // the forward value is reused, not recomputed
  EXPECT_EQ(count(r.out, " exp "), 1) << r.out;  // only the forward's own exp
  EXPECT_TRUE(absl::StrContains(r.out, "\nreturn %4, %5, %")) << r.out;
  // The output verifies and parses back (round trip through the text format).
  Result again = irdump("-", r.out);
  EXPECT_EQ(again.rc, 0) << again.err;
  EXPECT_EQ(again.out, r.out);
  // With the directive, later stages see the backward graph: fusion marks its kernels too.
  Result fused = irdump("--after=fusion -", text);
  ASSERT_EQ(fused.rc, 0) << fused.err;
  // (the sum; exp and the gradient, one multi-output kernel of shape [3])
  EXPECT_TRUE(absl::StrContains(fused.out, "# 2 kernels")) << fused.out;

  // Without a directive: output 0 with respect to every floating input.
  Result mlp = irdump("--after=autodiff mlp");
  ASSERT_EQ(mlp.rc, 0) << mlp.err;
  EXPECT_EQ(count(mlp.out, " matmul "), 2 + 4) << mlp.out;  // 2 forward, 2 per weight backward
  EXPECT_TRUE(absl::StrContains(mlp.out, "\nreturn %21, %")) << mlp.out;

  // Bad directives and outputs without a path are input errors.
  Result bad = irdump("--after=autodiff -", "%x = input f32[2]\n# grad: %x\nreturn %x\n");
  EXPECT_EQ(bad.rc, 1);
  EXPECT_TRUE(absl::StrContains(bad.err, "expected '# grad: %output wrt")) << bad.err;
  Result unused = irdump("--after=autodiff -",
                         "%x = input f32[2]\n%y = input f32[2]\n%n = neg f32[2] %x\n"
                         "# grad: %n wrt %y\nreturn %n\n");
  EXPECT_EQ(unused.rc, 1);
  EXPECT_TRUE(absl::StrContains(unused.err, "does not depend")) << unused.err;
  Result integer =
      irdump("--after=autodiff -", "%x = input i64[2]\n# grad: %x wrt %x\nreturn %x\n");
  EXPECT_EQ(integer.rc, 1);
  EXPECT_TRUE(absl::StrContains(integer.err, "only floating values")) << integer.err;
}

TEST(Irdump, AfterFusionMarksTheKernels) {
  Result chain = irdump("--after=fusion chain");
  ASSERT_EQ(chain.rc, 0) << chain.err;
  // tanh(x*0.5+y)*sigmoid(x)+exp(-x*x): one elementwise kernel.
  EXPECT_EQ(kernel_count(chain.out), 1) << chain.out;
  EXPECT_EQ(count(chain.out, "  # kernel "), 1) << chain.out;
  EXPECT_TRUE(absl::StrContains(chain.out, "# 1 kernels\n")) << chain.out;
  // Still the graph's text: the annotations are comments, so it parses back.
  EXPECT_TRUE(absl::StartsWith(chain.out, "# smelt IR v1\n")) << chain.out;
  absl::StatusOr<ir::Graph> g = ir::parse_graph(chain.out);
  EXPECT_TRUE(g.ok()) << g.status();

  Result softmax = irdump("--after=fusion softmax");
  ASSERT_EQ(softmax.rc, 0) << softmax.err;
  const int n = kernel_count(softmax.out);
  EXPECT_GE(n, 1) << softmax.out;
  EXPECT_LE(n, 3) << softmax.out;
  EXPECT_EQ(count(softmax.out, "  # kernel "), n) << softmax.out;

  Result mlp = irdump("--after=fusion mlp");
  EXPECT_EQ(mlp.rc, 0) << mlp.err;
  EXPECT_GE(kernel_count(mlp.out), 1) << mlp.out;
}

TEST(Irdump, AfterFusionReadsTextInputs) {
  const std::string text =
      "# smelt IR v1\n"
      "%0 = input f32[2, 3]\n"
      "%1 = exp f32[2, 3] %0\n"
      "%2 = sum f32[3] %1 {axes=[0], keepdim=false}\n"
      "return %2\n";
  Result r = irdump("--after=fusion -", text);
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_EQ(kernel_count(r.out), 1) << r.out;
  EXPECT_EQ(irdump("--after=fusion --format=dot chain").rc, 2);
}

TEST(Irdump, EmitKernels) {
  Result r = irdump("--emit=kernels softmax");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_GE(count(r.out, ": kernel "), 1) << r.out;
  EXPECT_LE(count(r.out, ": kernel "), 3) << r.out;
  Result mlp = irdump("--emit=kernels mlp");
  ASSERT_EQ(mlp.rc, 0) << mlp.err;
  EXPECT_TRUE(absl::StrContains(mlp.out, ": matmul ")) << mlp.out;
}

bool has_float_vector(const std::string& ir) {
  for (size_t at = ir.find('<'); at != std::string::npos; at = ir.find('<', at + 1)) {
    size_t end = at + 1;
    while (end < ir.size() && ir[end] >= '0' && ir[end] <= '9') ++end;
    if (end > at + 1 && ir.compare(end, 9, " x float>") == 0) return true;
  }
  return false;
}

TEST(Irdump, EmitLlvm) {
  Result r = irdump("--emit=llvm chain");
  ASSERT_EQ(r.rc, 0) << r.err;
  EXPECT_TRUE(absl::StrContains(r.out, "define")) << r.out;
  // chain is f32[2, 3]: the vectorizer picks a short (masked) vector for 3-element rows.
  EXPECT_TRUE(has_float_vector(r.out)) << r.out;
  EXPECT_FALSE(absl::StrContains(r.out, "; error:")) << r.out;

  // Rows long enough for full-width vectors: AVX2 gives <8 x float>, AVX-512 may give 16.
  const std::string wide =
      "# smelt IR v1\n"
      "%0 = input f32[64, 256]\n"
      "%1 = exp f32[64, 256] %0\n"
      "%2 = tanh f32[64, 256] %1\n"
      "return %2\n";
  Result w = irdump("--emit=llvm -", wide);
  ASSERT_EQ(w.rc, 0) << w.err;
  EXPECT_TRUE(absl::StrContains(w.out, "define")) << w.out;
  EXPECT_TRUE(absl::StrContains(w.out, "<8 x float>") || absl::StrContains(w.out, "<16 x float>"))
      << w.out;
}

}  // namespace
}  // namespace smelt
