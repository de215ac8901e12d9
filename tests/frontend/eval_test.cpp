// Evaluation: laziness (nothing runs until a value is read), eval of several tensors at once,
// eager mode, reading values out, failed realizations, the graph text, deep graphs and threads.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <thread>

#include "compiler/realize.h"
#include "frontend/tensor_impl.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using compiler::EvalReason;
using testing::EagerScope;
using testing::expect_error;
using testing::expect_tensor;

uint64_t count(EvalReason r) { return compiler::realize_stats().by_reason[static_cast<size_t>(r)]; }
uint64_t total() { return compiler::realize_stats().total(); }

bool realized(const Tensor& t) { return t.impl()->node()->realized(); }

TEST(Lazy, NothingRunsUntilAValueIsRead) {
  EagerScope lazy(false);
  const uint64_t before = total();
  Tensor a = tensor({1.f, 2.f, 3.f});
  Tensor b = softmax(matmul(a.reshape({3, 1}), a.reshape({1, 3})), -1).sum(0) * 2.f + 1.f;
  Tensor c = b.var() + b.mean();
  EXPECT_EQ(total(), before);
  EXPECT_FALSE(realized(b));
  EXPECT_EQ(b.shape(), (std::vector<int64_t>{3}));  // types are known without computing
  EXPECT_EQ(total(), before);

  const uint64_t items = count(EvalReason::kItem);
  c.item<float>();
  EXPECT_EQ(count(EvalReason::kItem), items + 1);
  EXPECT_EQ(total(), before + 1);
  EXPECT_TRUE(realized(c));
  // c's graph ran, but b was not asked for: it is still pending.
  EXPECT_FALSE(realized(b));

  const uint64_t reads = count(EvalReason::kToVector);
  b.to_vector<float>();
  EXPECT_EQ(count(EvalReason::kToVector), reads + 1);
  // Reading a realized value again computes nothing.
  b.to_vector<float>();
  c.item<float>();
  EXPECT_EQ(total(), before + 2);

  const uint64_t prints = count(EvalReason::kPrint);
  std::ostringstream os;
  os << (b + 1.f);
  EXPECT_EQ(count(EvalReason::kPrint), prints + 1);
}

TEST(Lazy, RealizedNodesDropTheirInputs) {
  EagerScope lazy(false);
  Tensor a = tensor({1.f, 2.f});
  Tensor c = exp(a) + a;
  EXPECT_FALSE(c.impl()->node()->inputs().empty());
  c.eval();
  EXPECT_TRUE(realized(c));
  EXPECT_TRUE(c.impl()->node()->inputs().empty());
  // A graph built on a realized value starts from it as a leaf.
  expect_tensor(c * 0.f, {2}, {0, 0});
}

TEST(Eval, SeveralTensorsInOneRealization) {
  EagerScope lazy(false);
  Tensor x = tensor({1.f, 2.f});
  Tensor shared = exp(x);
  Tensor a = shared + 1.f;
  Tensor b = shared * 2.f;
  const uint64_t before = count(EvalReason::kExplicit);
  const uint64_t all = total();
  eval({a, b});
  EXPECT_EQ(count(EvalReason::kExplicit), before + 1);
  EXPECT_EQ(total(), all + 1);
  EXPECT_TRUE(realized(a));
  EXPECT_TRUE(realized(b));
  std::vector<Tensor> list = {a + 1.f, b + 1.f};
  eval(list);
  EXPECT_TRUE(realized(list[0]) && realized(list[1]));
  EXPECT_EQ(total(), all + 2);
  eval(list);  // nothing pending: no realization
  EXPECT_EQ(total(), all + 2);
  expect_error([] { eval({Tensor()}); }, {"eval:", "undefined"});
}

TEST(Eager, EveryOpRealizesAtOnce) {
  EagerScope eager(true);
  EXPECT_TRUE(is_eager());
  const uint64_t before = count(EvalReason::kEager);
  Tensor a = tensor({1.f, 2.f});
  Tensor b = a + 1.f;
  EXPECT_TRUE(realized(b));
  Tensor c = matmul(b.reshape({1, 2}), b.reshape({2, 1}));
  EXPECT_TRUE(realized(c));
  EXPECT_GE(count(EvalReason::kEager), before + 4);
  expect_tensor(c, {1, 1}, {13});
  Tensor z = zeros({2});  // lazy filled tensors are realized too
  EXPECT_TRUE(realized(z));
  // Errors still come at the call.
  expect_error([&] { a + zeros({3}); }, {"add:", "[2]", "[3]"});
}

TEST(Eager, SetEagerTogglesTheMode) {
  const bool was = is_eager();
  set_eager(false);
  EXPECT_FALSE(is_eager());
  Tensor lazy = tensor({1.f}) + 1.f;
  EXPECT_FALSE(realized(lazy));
  set_eager(true);
  EXPECT_TRUE(is_eager());
  set_eager(was);
}

// Runs in a child process started by EnvVarTurnsEagerOn, where SMELT_EAGER=1 was set before the
// library first looked.
TEST(Eager, EnvVarChild) {
  if (std::getenv("SMELT_TEST_EAGER_CHILD") == nullptr) GTEST_SKIP() << "run by EnvVarTurnsEagerOn";
  EXPECT_TRUE(is_eager());
  EXPECT_TRUE(realized(tensor({1.f}) + 1.f));
}

TEST(Eager, EnvVarTurnsEagerOn) {
  // Re-run this test binary with the variable set (in the shell, /proc/self/exe is the shell).
  char exe[4096] = {};
  const ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
  ASSERT_GT(n, 0);
  const std::string run = std::string("SMELT_EAGER=1 SMELT_TEST_EAGER_CHILD=1 '") + exe +
                          "' --gtest_filter=Eager.EnvVarChild > /dev/null 2>&1";
  EXPECT_EQ(std::system(run.c_str()), 0);
}

TEST(Read, ItemConvertsLikePyTorch) {
  EXPECT_EQ(tensor({2.7f}).item<int>(), 2);
  EXPECT_EQ(tensor({-2.7f}).item<int64_t>(), -2);
  EXPECT_DOUBLE_EQ(tensor({3}).item<double>(), 3.0);
  EXPECT_TRUE(tensor({0.5f}).item<bool>());
  EXPECT_FALSE(tensor({0.f}).item<bool>());
  EXPECT_FLOAT_EQ(tensor({true}).item<float>(), 1.f);
  EXPECT_FLOAT_EQ(tensor({{4.5f}}).item<float>(), 4.5f);
  EXPECT_EQ(scalar_tensor(int64_t{5000000000}).item<int64_t>(), 5000000000);
  expect_error(
      [] {
        tensor({{1.f, 2.f, 3.f}, {4.f, 5.f, 6.f}}).item<float>();
      },
      {"item: tensor has 6 elements; only a one-element tensor converts to a scalar"});
  expect_error([] { scalar_tensor(int64_t{5000000000}).item<int>(); },
               {"item:", "cannot be converted to i32"});
  expect_error([] { tensor({NAN}).item<int64_t>(); }, {"item:", "nan", "i64"});
  expect_error([] { Tensor().item<float>(); }, {"item:", "undefined"});
}

TEST(Read, ToVectorConverts) {
  Tensor x = tensor({{1.5f, -2.f}, {0.f, 4.f}});
  EXPECT_EQ(x.to_vector<float>(), (std::vector<float>{1.5f, -2.f, 0.f, 4.f}));
  EXPECT_EQ(x.to_vector<double>(), (std::vector<double>{1.5, -2.0, 0.0, 4.0}));
  EXPECT_EQ(x.to_vector<int64_t>(), (std::vector<int64_t>{1, -2, 0, 4}));
  EXPECT_EQ(x.to_vector<int>(), (std::vector<int>{1, -2, 0, 4}));
  EXPECT_EQ(x.to_vector<bool>(), (std::vector<bool>{true, true, false, true}));
  EXPECT_EQ(tensor({true, false}).to_vector<int>(), (std::vector<int>{1, 0}));
  EXPECT_TRUE(zeros({0, 3}).to_vector<float>().empty());
  expect_error([] { tensor({INFINITY}).to_vector<int>(); }, {"to_vector:", "inf"});
}

TEST(Failure, DataErrorsSurfaceAtRealizeAndChangeNothing) {
  EagerScope lazy(false);
  Tensor x = tensor({{1.f, 2.f}, {3.f, 4.f}});
  Tensor good = x * 2.f;
  Tensor bad = x.index_select(0, tensor({0, 5})) + 1.f;  // built fine: the index is data
  expect_error(
      [&] {
        eval({good, bad});
      },
      {"index_select: index 5 is out of range for dim 0 of size 2"});
  // All or nothing: neither was realized, and both graphs are intact.
  EXPECT_FALSE(realized(good));
  EXPECT_FALSE(realized(bad));
  expect_tensor(good, {2, 2}, {2, 4, 6, 8});
  expect_error([&] { bad.to_vector<float>(); }, {"index_select:", "out of range"});
  expect_error(
      [&] {
        std::ostringstream os;
        os << bad;
      },
      {"index_select:"});
  // A fixed graph over the same inputs realizes.
  Tensor fixed = x.index_select(0, tensor({0, 1})) + 1.f;
  expect_tensor(fixed, {2, 2}, {2, 3, 4, 5});
  expect_error([] { tensor({1.f}).index_select(0, tensor({-1})).eval(); },
               {"index_select: index -1 is out of range"});
}

TEST(GraphText, PrintsThePendingGraph) {
  EagerScope lazy(false);
  Tensor a = tensor({1.f, 2.f});
  Tensor b = exp(a) + 1.f;
  const std::string text = graph_text({b});
  EXPECT_NE(text.find("# smelt IR v1"), std::string::npos) << text;
  EXPECT_NE(text.find("exp f32[2]"), std::string::npos) << text;
  EXPECT_NE(text.find("add f32[2]"), std::string::npos) << text;
  // A scalar operand is one constant at the shape it broadcasts to.
  EXPECT_NE(text.find("constant f32[2] {value=1.0}"), std::string::npos) << text;
  EXPECT_NE(text.find("return"), std::string::npos) << text;

  const std::string path = ::testing::TempDir() + "smelt_dump_graph_test.smir";
  dump_graph({b}, path);
  std::ifstream in(path);
  std::stringstream file;
  file << in.rdbuf();
  EXPECT_EQ(file.str(), text);
  std::remove(path.c_str());
  expect_error([&] { dump_graph({b}, "/nonexistent-dir/x.smir"); },
               {"dump_graph: cannot write '/nonexistent-dir/x.smir'"});
  // Once realized, the graph is just data.
  b.eval();
  EXPECT_EQ(graph_text({b}).find("exp"), std::string::npos);
}

TEST(CompiledText, ShowsTheKernelsWithoutRunning) {
  EagerScope lazy(false);
  Tensor x = randn({8, 16});
  Tensor y = softmax(x * 2.f, 1).sum(0);
  const std::string fusion = compiled_text({y});
  EXPECT_NE(fusion.find("kernel"), std::string::npos) << fusion;
  const std::string kernels = compiled_text({y}, "kernels");
  EXPECT_NE(kernels.find("domain="), std::string::npos) << kernels;
  EXPECT_NE(compiled_text({y}, "cuda").find("__global__"), std::string::npos);
  expect_error([&] { compiled_text({y}, "assembly"); },
               {"compiled_text: unknown stage 'assembly'"});
  EXPECT_FALSE(y.impl()->node()->is_leaf());  // nothing ran
}

TEST(DeepGraphs, HundredThousandOpChain) {
  EagerScope lazy(false);
  {
    Tensor t = zeros({4});
    for (int i = 0; i < 100000; ++i) t = t + 1.f;
    expect_tensor(t, {4}, {100000, 100000, 100000, 100000});
  }
  {
    // Built and dropped without ever being realized: freed without recursion.
    Tensor t = tensor({1.f});
    for (int i = 0; i < 100000; ++i) t = i % 2 == 0 ? t * 1.f : -t;
  }
}

TEST(Threads, BuildAndRealizeFromFourThreads) {
  EagerScope lazy(false);
  Tensor shared = tensor({1.f, 2.f, 3.f});
  std::vector<std::thread> threads;
  std::vector<double> results(4);
  std::vector<std::string> errors(4);
  for (int k = 0; k < 4; ++k) {
    threads.emplace_back([&, k] {
      try {
        Tensor t = shared * static_cast<float>(k);
        for (int i = 0; i < 2000; ++i) t = relu(t + 1.f) - 0.5f;
        Tensor noise = randn({100});
        results[k] = (t.sum() + noise.sum() * 0.f).item<double>();
      } catch (const std::exception& e) {
        errors[k] = e.what();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(errors[k], "");
    // Each of 3 elements is (k * (i + 1)) + 2000 * 0.5.
    EXPECT_NEAR(results[k], k * 6.0 + 3 * 1000.0, 1e-2) << "thread " << k;
  }
}

}  // namespace
}  // namespace smelt
