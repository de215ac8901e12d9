// save / load: round trips, and every kind of bad file failing with a clear error while the
// module stays untouched.
#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <functional>
#include <iterator>
#include <string>
#include <vector>

#include "tests/frontend/frontend_testing.h"

namespace smelt {
namespace {

using testing::expect_error;

std::string temp_path(const std::string& name) { return ::testing::TempDir() + name; }

std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)),
                              std::istreambuf_iterator<char>());
}

void write_bytes(const std::string& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
}

// FNV-1a 64, as the format specifies, to re-seal files the tests edit on purpose.
uint64_t fnv1a64(const std::vector<uint8_t>& b, size_t n) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < n; ++i) h = (h ^ b[i]) * 0x100000001b3ull;
  return h;
}
void reseal(std::vector<uint8_t>& b) {
  const uint64_t h = fnv1a64(b, b.size() - 8);
  for (int i = 0; i < 8; ++i) b[b.size() - 8 + i] = static_cast<uint8_t>(h >> (8 * i));
}

nn::Sequential make_model() {
  return nn::Sequential(nn::Linear(3, 4), nn::BatchNorm1d(4), nn::ReLU(), nn::Linear(4, 2));
}

// Every value of the module's state, for "untouched" checks.
std::vector<std::vector<double>> snapshot(const nn::Module& m) {
  std::vector<std::vector<double>> out;
  for (const Tensor& t : m.parameters()) out.push_back(t.to_vector<double>());
  for (const Tensor& t : m.buffers()) out.push_back(t.to_vector<double>());
  return out;
}

TEST(Serialize, RoundTripRestoresParametersAndBuffers) {
  manual_seed(1);
  nn::Sequential saved = make_model();
  saved(randn({8, 3}));  // moves BatchNorm's running statistics off their initial values
  const std::string path = temp_path("nn_roundtrip.smelt");
  save(saved, path);

  manual_seed(2);
  nn::Sequential loaded = make_model();
  Tensor w = loaded->parameters()[0];
  ASSERT_NE(snapshot(*loaded), snapshot(*saved));
  load(loaded, path);
  EXPECT_EQ(snapshot(*loaded), snapshot(*saved));
  // The handles are the same and still trainable leaves.
  EXPECT_EQ(w.impl(), loaded->parameters()[0].impl());
  EXPECT_TRUE(w.requires_grad());
  EXPECT_TRUE(w.is_leaf());
  loaded->eval();
  saved->eval();
  Tensor x = randn({5, 3});
  EXPECT_EQ(loaded(x).to_vector<float>(), saved(x).to_vector<float>());
  // The Impl works as well as the holder.
  save(*saved, path);
  load(*loaded, path);
  EXPECT_EQ(snapshot(*loaded), snapshot(*saved));
}

TEST(Serialize, NamedTensorsRoundTripEveryDType) {
  const std::string path = temp_path("nn_tensors.smelt");
  std::vector<std::pair<std::string, Tensor>> tensors = {
      {"f32", tensor({{1.5f, -2.f}, {3.f, 4.f}})},
      {"f64", tensor({1.0, 2.5})},
      {"i64", from_vector(std::vector<int64_t>{-7, 1LL << 40})},
      {"i32", from_vector(std::vector<int32_t>{3, -4})},
      {"bool", tensor({true, false, true})},
      {"scalar", scalar_tensor(0.25f)},
      {"empty", zeros({0, 3})},
      {"pending", ones({2}) * 3.f},
  };
  save_tensors(path, tensors);
  const auto loaded = load_tensors(path);
  ASSERT_EQ(loaded.size(), tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    EXPECT_EQ(loaded[i].first, tensors[i].first);
    EXPECT_EQ(loaded[i].second.dtype(), tensors[i].second.dtype()) << tensors[i].first;
    EXPECT_EQ(loaded[i].second.shape(), tensors[i].second.shape()) << tensors[i].first;
    EXPECT_EQ(loaded[i].second.to_vector<double>(), tensors[i].second.to_vector<double>())
        << tensors[i].first;
  }
  expect_error(
      [&] {
        save_tensors(path, {{"a", ones({1})}, {"a", ones({1})}});
      },
      {"save_tensors", "'a' appears twice"});
  expect_error([&] { save_tensors(path, {{"", ones({1})}}); }, {"empty name"});
  expect_error([&] { save_tensors(path, {{"u", Tensor()}}); }, {"'u' is undefined"});
  expect_error([&] { save_tensors("/nonexistent-dir/x.smelt", tensors); },
               {"save_tensors", "cannot open", "/nonexistent-dir/x.smelt.tmp"});
  expect_error([&] { load_tensors(temp_path("does-not-exist.smelt")); },
               {"load_tensors", "cannot open", "does-not-exist.smelt"});
}

TEST(Serialize, FileLayoutIsTheDocumentedOne) {
  const std::string path = temp_path("nn_layout.smelt");
  save_tensors(path, {{"w", tensor({1.f, 2.f})}});
  const std::vector<uint8_t> b = read_bytes(path);
  // header 24 + name len 4 + "w" 1 + dtype 1 + rank 1 + dim 8 + byte count 8 + data 8 + hash 8.
  ASSERT_EQ(b.size(), 63u);
  EXPECT_EQ(std::string(b.begin(), b.begin() + 8), "SMELTTNS");
  EXPECT_EQ(b[8], 1);   // version
  EXPECT_EQ(b[16], 1);  // one entry
  EXPECT_EQ(b[24], 1);  // name length
  EXPECT_EQ(b[28], 'w');
  EXPECT_EQ(b[29], 3);  // f32
  EXPECT_EQ(b[30], 1);  // rank
  EXPECT_EQ(b[31], 2);  // dim
  EXPECT_EQ(b[39], 8);  // bytes
  float first;
  std::memcpy(&first, b.data() + 47, 4);
  EXPECT_EQ(first, 1.f);
  uint64_t stored;
  std::memcpy(&stored, b.data() + b.size() - 8, 8);
  EXPECT_EQ(stored, fnv1a64(b, b.size() - 8));
}

// Expects load(target, path) to throw a smelt::Error naming every one of `parts` and the path,
// and the model to stay as it was.
void expect_load_fails(nn::Sequential& target, const std::string& path,
                       std::vector<std::string> parts) {
  const auto before = snapshot(*target);
  parts.push_back(path);
  try {
    load(target, path);
    ADD_FAILURE() << "no smelt::Error thrown";
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << p << "\"";
    }
  }
  EXPECT_EQ(snapshot(*target), before) << "the model was changed by a failed load";
}

// Saves a model, lets `corrupt` edit the file, and expects load to fail with `parts` while the
// target model stays as it was.
void expect_bad_file(const std::string& name,
                     const std::function<void(std::vector<uint8_t>&)>& corrupt,
                     std::initializer_list<std::string> parts) {
  SCOPED_TRACE(name);
  manual_seed(3);
  nn::Sequential source = make_model();
  const std::string path = temp_path("nn_bad_" + name + ".smelt");
  save(source, path);
  std::vector<uint8_t> bytes = read_bytes(path);
  corrupt(bytes);
  write_bytes(path, bytes);
  manual_seed(4);
  nn::Sequential target = make_model();
  expect_load_fails(target, path, parts);
}

TEST(Serialize, BadFilesThrowAndLeaveTheModelUntouched) {
  expect_bad_file("magic", [](auto& b) { b[0] = 'X'; }, {"load", "wrong magic"});
  expect_bad_file("empty", [](auto& b) { b.clear(); }, {"not a smelt tensor file", "too short"});
  expect_bad_file("version", [](auto& b) { b[8] = 2; }, {"unsupported format version 2"});
  // Truncated in the header, in an entry's name, shape, data, and in the checksum itself.
  for (size_t keep : {20, 26, 40, 100, 300}) {
    expect_bad_file("truncated" + std::to_string(keep), [keep](auto& b) { b.resize(keep); },
                    {"truncated"});
  }
  expect_bad_file("truncated_checksum", [](auto& b) { b.resize(b.size() - 3); }, {"corrupted"});
  // The last 16 bytes are the last entry's 8 data bytes (BatchNorm's num_batches_tracked) and
  // the file's checksum.
  expect_bad_file("flipped_data", [](auto& b) { b[b.size() - 12] ^= 0x40; },
                  {"corrupted", "checksum mismatch"});
  expect_bad_file("flipped_checksum", [](auto& b) { b.back() ^= 1; }, {"checksum mismatch"});
  expect_bad_file("extra_bytes",
                  [](auto& b) {
                    b.insert(b.end() - 8, 5, 0);
                    reseal(b);
                  },
                  {"5 unexpected bytes after the last"});
  expect_bad_file("bad_dtype_code",
                  [](auto& b) {
                    // The first entry is "0.weight": its dtype byte follows the 8-byte name.
                    b[24 + 4 + 8] = 9;
                    reseal(b);
                  },
                  {"unknown dtype code 9"});
}

TEST(Serialize, MismatchedModelsThrowNamingEveryProblem) {
  const std::string path = temp_path("nn_mismatch.smelt");
  manual_seed(5);
  save(nn::Sequential(nn::Linear(3, 4), nn::Linear(4, 2)), path);

  auto expect_mismatch = [&](nn::Sequential target, std::initializer_list<std::string> parts) {
    std::vector<std::string> all(parts);
    all.push_back("The module is unchanged");
    expect_load_fails(target, path, all);
  };
  // Wrong shape.
  expect_mismatch(nn::Sequential(nn::Linear(3, 5), nn::Linear(5, 2)),
                  {"entry '0.weight' is f32 [4, 3] but the module's is f32 [5, 3]",
                   "'1.weight' is f32 [2, 4] but the module's is f32 [2, 5]"});
  // Missing names (the module has more) and unexpected names (the file has more).
  expect_mismatch(nn::Sequential(nn::Linear(3, 4), nn::Linear(4, 2), nn::Linear(2, 2)),
                  {"missing entry '2.weight' (f32 [2, 2])", "missing entry '2.bias'"});
  expect_mismatch(nn::Sequential(nn::Linear(3, 4)),
                  {"unexpected entry '1.weight' (f32 [2, 4])", "unexpected entry '1.bias'"});
  expect_mismatch(nn::Sequential(nn::Linear(3, 4, /*bias=*/false), nn::Linear(4, 2)),
                  {"unexpected entry '0.bias'"});
  // Wrong dtype.
  nn::Sequential f64(nn::Linear(3, 4), nn::Linear(4, 2));
  f64->to(DType::Float64);
  expect_mismatch(f64, {"entry '0.weight' is f32 [4, 3] but the module's is f64 [4, 3]"});
}

}  // namespace
}  // namespace smelt
