// The IDX reader and the (Fashion-)MNIST datasets: synthetic files, raw and gzipped, every bad
// file case, and Debian's Fashion-MNIST files when they are installed.
#include <gtest/gtest.h>
#include <smelt/smelt.h>
#include <unistd.h>

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "frontend/data/idx_reader.h"
#include "tests/frontend/frontend_testing.h"

namespace smelt::data {
namespace {

namespace fs = std::filesystem;
using smelt::testing::expect_error;

constexpr char kFashionRoot[] = "/usr/share/datasets/fashion-mnist";

// ---- writing test files -------------------------------------------------------------------------

uint32_t crc32(const std::vector<uint8_t>& bytes) {
  uint32_t crc = 0xffffffffu;
  for (uint8_t b : bytes) {
    crc ^= b;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void put_le32(std::vector<uint8_t>& out, uint32_t v) {
  for (int k = 0; k < 4; ++k) out.push_back(static_cast<uint8_t>(v >> (8 * k)));
}

// A gzip member holding `raw` in stored (uncompressed) deflate blocks: a real gzip file that
// zlib checks (CRC, length), written without linking zlib into the test.
std::vector<uint8_t> gzip_stored(const std::vector<uint8_t>& raw) {
  std::vector<uint8_t> out = {0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff};
  size_t pos = 0;
  do {
    const size_t n = std::min<size_t>(65535, raw.size() - pos);
    const bool last = pos + n == raw.size();
    out.push_back(last ? 1 : 0);
    out.push_back(static_cast<uint8_t>(n));
    out.push_back(static_cast<uint8_t>(n >> 8));
    out.push_back(static_cast<uint8_t>(~n));
    out.push_back(static_cast<uint8_t>(~n >> 8));
    out.insert(out.end(), raw.begin() + static_cast<std::ptrdiff_t>(pos),
               raw.begin() + static_cast<std::ptrdiff_t>(pos + n));
    pos += n;
  } while (pos < raw.size());
  put_le32(out, crc32(raw));
  put_le32(out, static_cast<uint32_t>(raw.size()));
  return out;
}

std::vector<uint8_t> idx_bytes(uint8_t type, const std::vector<uint32_t>& dims,
                               const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out = {0, 0, type, static_cast<uint8_t>(dims.size())};
  for (uint32_t d : dims) {
    for (int k = 3; k >= 0; --k) out.push_back(static_cast<uint8_t>(d >> (8 * k)));
  }
  out.insert(out.end(), data.begin(), data.end());
  return out;
}

void write_file(const fs::path& path, const std::vector<uint8_t>& bytes) {
  std::ofstream f(path, std::ios::binary);
  f.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(f.good()) << path;
}

// A fresh temporary directory, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    path_ = fs::temp_directory_path() / (std::string("smelt_data_") + info->test_suite_name() +
                                         "_" + info->name() + "_" + std::to_string(::getpid()));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  const fs::path& path() const { return path_; }
  std::string str() const { return path_.string(); }

 private:
  fs::path path_;
};

// `n` synthetic 28 x 28 images (pixel k of image i is (i * 7 + k) % 256) and labels i % 10.
struct Split {
  std::vector<uint8_t> images;
  std::vector<uint8_t> labels;
};

Split synthetic(uint32_t n) {
  Split s;
  std::vector<uint8_t> pixels(static_cast<size_t>(n) * 784);
  for (size_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < 784; ++k) pixels[i * 784 + k] = static_cast<uint8_t>((i * 7 + k) % 256);
  }
  std::vector<uint8_t> labels(n);
  for (size_t i = 0; i < n; ++i) labels[i] = static_cast<uint8_t>(i % 10);
  s.images = idx_bytes(0x08, {n, 28, 28}, pixels);
  s.labels = idx_bytes(0x08, {n}, labels);
  return s;
}

void write_split(const fs::path& dir, const std::string& prefix, const Split& s, bool gz) {
  const std::string ext = gz ? ".gz" : "";
  write_file(dir / (prefix + "-images-idx3-ubyte" + ext), gz ? gzip_stored(s.images) : s.images);
  write_file(dir / (prefix + "-labels-idx1-ubyte" + ext), gz ? gzip_stored(s.labels) : s.labels);
}

void expect_synthetic(const MNIST& ds, uint32_t n) {
  ASSERT_EQ(ds.size(), n);
  EXPECT_EQ(ds.images().shape(), (std::vector<int64_t>{n, 1, 28, 28}));
  EXPECT_EQ(ds.images().dtype(), DType::Float32);
  EXPECT_EQ(ds.targets().shape(), (std::vector<int64_t>{n}));
  EXPECT_EQ(ds.targets().dtype(), DType::Int64);
  for (int64_t i : {int64_t{0}, int64_t{n - 1}}) {
    const Example e = ds.get(i);
    EXPECT_EQ(e.data.shape(), (std::vector<int64_t>{1, 28, 28}));
    EXPECT_EQ(e.target.shape(), std::vector<int64_t>{});
    EXPECT_EQ(e.target.item<int64_t>(), i % 10);
    const std::vector<float> px = e.data.to_vector<float>();
    for (int64_t k : {0, 1, 300, 783}) {
      EXPECT_EQ(px[static_cast<size_t>(k)], static_cast<float>((i * 7 + k) % 256) / 255.0f);
    }
  }
}

// ---- the IDX reader -----------------------------------------------------------------------------

TEST(IdxReader, ReadsRawAndGzippedFilesAlike) {
  TempDir dir;
  const std::vector<uint8_t> data = {1, 2, 3, 4, 5, 6};
  const std::vector<uint8_t> bytes = idx_bytes(0x08, {2, 3}, data);
  write_file(dir.path() / "a.idx", bytes);
  write_file(dir.path() / "a.idx.gz", gzip_stored(bytes));
  for (const char* name : {"a.idx", "a.idx.gz"}) {
    absl::StatusOr<detail::IdxFile> idx = detail::read_idx((dir.path() / name).string());
    ASSERT_TRUE(idx.ok()) << idx.status();
    EXPECT_EQ(idx->type, 0x08);
    EXPECT_EQ(idx->dims, (std::vector<int64_t>{2, 3}));
    EXPECT_EQ(idx->data, data);
  }
}

TEST(IdxReader, ReadsOtherElementTypesBySize) {
  TempDir dir;
  // Two big-endian int32 elements.
  const std::vector<uint8_t> data = {0, 0, 1, 0, 0xff, 0xff, 0xff, 0xfe};
  write_file(dir.path() / "i.idx", idx_bytes(0x0C, {2}, data));
  absl::StatusOr<detail::IdxFile> idx = detail::read_idx((dir.path() / "i.idx").string());
  ASSERT_TRUE(idx.ok()) << idx.status();
  EXPECT_EQ(idx->type, 0x0C);
  EXPECT_EQ(idx->data, data);
}

TEST(IdxReader, ErrorsNameTheFileAndTheProblem) {
  TempDir dir;
  const std::vector<uint8_t> good = idx_bytes(0x08, {4, 3}, std::vector<uint8_t>(12, 7));
  struct Case {
    std::string name;
    std::vector<uint8_t> bytes;
    std::string expected;
  };
  std::vector<uint8_t> short_data(good.begin(), good.end() - 5);
  std::vector<uint8_t> long_data = good;
  long_data.push_back(0);
  std::vector<uint8_t> gz_cut = gzip_stored(good);
  gz_cut.resize(gz_cut.size() - 20);
  std::vector<uint8_t> gz_no_trailer = gzip_stored(good);
  gz_no_trailer.resize(gz_no_trailer.size() - 8);
  std::vector<uint8_t> gz_bad_crc = gzip_stored(good);
  gz_bad_crc[gz_bad_crc.size() - 12] ^= 0x5a;  // a data byte: the CRC no longer matches
  const std::vector<Case> cases = {
      {"empty.idx", {}, "is truncated: it ends after 0 bytes"},
      {"magic.idx", {0x1f, 0x00, 0x08, 0x01, 0, 0, 0, 1, 9}, "is not an IDX file"},
      {"type.idx", {0, 0, 0x07, 1, 0, 0, 0, 1, 9}, "is not an IDX file"},
      {"header.idx", {0, 0, 0x08, 3, 0, 0, 0, 4, 0}, "ends inside its header of 3 dims"},
      {"short.idx", short_data, "is truncated: its header promises dims [4, 3] (12 bytes"},
      {"long.idx", long_data, "has more data than its header's dims [4, 3]"},
      {"cut.idx.gz", gz_cut, "is truncated"},
      {"trailer.idx.gz", gz_no_trailer, "is truncated"},
      {"crc.idx.gz", gz_bad_crc, "is corrupted"},
      {"huge.idx",
       {0, 0, 0x08, 3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 0, 1, 0},
       "over 1 TiB"},
  };
  for (const Case& c : cases) {
    const fs::path path = dir.path() / c.name;
    write_file(path, c.bytes);
    absl::StatusOr<detail::IdxFile> idx = detail::read_idx(path.string());
    ASSERT_FALSE(idx.ok()) << c.name;
    const std::string msg(idx.status().message());
    EXPECT_NE(msg.find(path.string()), std::string::npos) << msg;
    EXPECT_NE(msg.find(c.expected), std::string::npos) << c.name << ": " << msg;
  }
  absl::StatusOr<detail::IdxFile> missing = detail::read_idx((dir.path() / "none.idx").string());
  ASSERT_FALSE(missing.ok());
  EXPECT_NE(missing.status().message().find("none.idx: No such file"), std::string::npos)
      << missing.status();
}

// ---- MNIST / FashionMNIST on synthetic files ------------------------------------------------

TEST(FashionMNIST, ReadsGzippedSplits) {
  TempDir dir;
  write_split(dir.path(), "train", synthetic(30), /*gz=*/true);
  write_split(dir.path(), "t10k", synthetic(12), /*gz=*/true);
  expect_synthetic(FashionMNIST(dir.str(), /*train=*/true), 30);
  expect_synthetic(FashionMNIST(dir.str(), /*train=*/false), 12);
}

TEST(FashionMNIST, ReadsRawFilesAndPrefersThemToGz) {
  TempDir dir;
  write_split(dir.path(), "train", synthetic(5), /*gz=*/false);
  // A broken .gz next to the raw file is never opened.
  write_file(dir.path() / "train-images-idx3-ubyte.gz", {1, 2, 3});
  expect_synthetic(FashionMNIST(dir.str()), 5);
}

TEST(FashionMNIST, FindsTorchvisionLayout) {
  TempDir dir;
  fs::create_directories(dir.path() / "FashionMNIST" / "raw");
  write_split(dir.path() / "FashionMNIST" / "raw", "t10k", synthetic(4), /*gz=*/true);
  expect_synthetic(FashionMNIST(dir.str(), /*train=*/false), 4);
  fs::create_directories(dir.path() / "MNIST" / "raw");
  write_split(dir.path() / "MNIST" / "raw", "t10k", synthetic(3), /*gz=*/false);
  const MNIST digits(dir.str(), /*train=*/false);
  expect_synthetic(digits, 3);
  EXPECT_EQ(digits.classes().at(3), "3 - three");
}

TEST(FashionMNIST, MissingFilesAreNamed) {
  TempDir dir;
  expect_error([&] { FashionMNIST((dir.path() / "nope").string()); },
               {"FashionMNIST: cannot find", "train-images-idx3-ubyte.gz", "does not exist"});
  expect_error([&] { FashionMNIST(dir.str()); },
               {"FashionMNIST: cannot find", (dir.path() / "train-images-idx3-ubyte").string()});
  // Images without labels.
  write_file(dir.path() / "train-images-idx3-ubyte.gz", gzip_stored(synthetic(2).images));
  expect_error([&] { FashionMNIST(dir.str()); },
               {"FashionMNIST: cannot find", "train-labels-idx1-ubyte"});
}

TEST(FashionMNIST, BadFilesAreNamed) {
  TempDir dir;
  const fs::path images = dir.path() / "train-images-idx3-ubyte.gz";
  const fs::path labels = dir.path() / "train-labels-idx1-ubyte.gz";
  const Split good = synthetic(6);
  write_split(dir.path(), "train", good, /*gz=*/true);

  std::vector<uint8_t> cut = gzip_stored(good.images);
  cut.resize(cut.size() / 2);
  write_file(images, cut);
  expect_error([&] { FashionMNIST(dir.str()); }, {"FashionMNIST: ", images.string(), "truncated"});

  std::vector<uint8_t> corrupt = gzip_stored(good.images);
  corrupt[corrupt.size() / 2] ^= 0xff;
  write_file(images, corrupt);
  expect_error([&] { FashionMNIST(dir.str()); }, {images.string(), "corrupted"});

  std::vector<uint8_t> short_images = good.images;
  short_images.resize(short_images.size() - 100);
  write_file(images, gzip_stored(short_images));
  expect_error([&] { FashionMNIST(dir.str()); },
               {images.string(), "truncated", "[6, 28, 28]", "4704 bytes of data"});

  write_file(images, gzip_stored(idx_bytes(0x08, {2, 32, 32}, std::vector<uint8_t>(2048))));
  expect_error([&] { FashionMNIST(dir.str()); },
               {images.string(), "[2, 32, 32]", "expected images [N, 28, 28]"});

  write_file(images, gzip_stored(idx_bytes(0x0D, {1, 28, 28}, std::vector<uint8_t>(784 * 4))));
  expect_error([&] { FashionMNIST(dir.str()); }, {images.string(), "0x0d", "unsigned bytes"});

  write_file(images, gzip_stored(good.images));
  write_file(labels, gzip_stored(synthetic(5).labels));
  expect_error([&] { FashionMNIST(dir.str()); },
               {"holds 6 images but", labels.string(), "holds 5 labels"});

  write_file(labels, gzip_stored(idx_bytes(0x08, {6}, {0, 1, 2, 10, 4, 5})));
  expect_error([&] { FashionMNIST(dir.str()); }, {labels.string(), "label 3 is 10"});

  write_file(labels, gzip_stored(good.images));  // images where labels belong
  expect_error([&] { FashionMNIST(dir.str()); }, {labels.string(), "expected labels [N]"});
}

TEST(FashionMNIST, TransformsApplyToExamplesAndBatches) {
  TempDir dir;
  write_split(dir.path(), "train", synthetic(8), /*gz=*/true);
  FashionMNIST plain(dir.str());
  FashionMNIST ds(dir.str(), true, transforms::Normalize(0.5, 0.5),
                  [](const Tensor& y) { return y + int64_t{100}; });
  const Example a = plain.get(3), b = ds.get(3);
  const std::vector<float> x = a.data.to_vector<float>(), y = b.data.to_vector<float>();
  for (size_t k = 0; k < x.size(); ++k) ASSERT_FLOAT_EQ(y[k], (x[k] - 0.5f) / 0.5f);
  EXPECT_EQ(b.target.item<int64_t>(), 103);
  const Example batch = ds.get_batch({1, 2});
  EXPECT_EQ(batch.data.shape(), (std::vector<int64_t>{2, 1, 28, 28}));
  EXPECT_EQ(batch.target.to_vector<int64_t>(), (std::vector<int64_t>{101, 102}));
}

// ---- Debian's files
// ------------------------------------------------------------------------------

TEST(FashionMNIST, RealFiles) {
  if (!fs::exists(fs::path(kFashionRoot) / "train-images-idx3-ubyte.gz")) {
    GTEST_SKIP() << "Fashion-MNIST is not installed in " << kFashionRoot;
  }
  const auto start = std::chrono::steady_clock::now();
  FashionMNIST train(kFashionRoot, /*train=*/true);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  FashionMNIST test(kFashionRoot, /*train=*/false);
  ASSERT_EQ(train.size(), 60000);
  ASSERT_EQ(test.size(), 10000);
  EXPECT_LT(seconds, 10.0) << "decompressing and converting 47 MB should take well under 1 s";
  EXPECT_EQ(train.images().shape(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(test.images().shape(), (std::vector<int64_t>{10000, 1, 28, 28}));
  EXPECT_EQ(train.targets().dtype(), DType::Int64);

  // The first labels of each split, read from the files with Python's gzip module.
  const std::vector<int64_t> train_first = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9, 5, 5, 7, 9};
  const std::vector<int64_t> test_first = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5, 7, 3, 4, 1};
  EXPECT_EQ(train.targets().slice(0, 0, 16).to_vector<int64_t>(), train_first);
  EXPECT_EQ(test.targets().slice(0, 0, 16).to_vector<int64_t>(), test_first);
  // Balanced classes: 6,000 of each label in training.
  const std::vector<int64_t> labels = train.targets().to_vector<int64_t>();
  std::array<int64_t, 10> counts{};
  for (int64_t l : labels) {
    ASSERT_GE(l, 0);
    ASSERT_LT(l, 10);
    ++counts[static_cast<size_t>(l)];
  }
  for (int64_t c : counts) EXPECT_EQ(c, 6000);
  // Pixels span [0, 1] exactly (0 and 255 both occur); the first image's bytes sum to 76247.
  EXPECT_FLOAT_EQ(train.images().min().item<float>(), 0.0f);
  EXPECT_FLOAT_EQ(train.images().max().item<float>(), 1.0f);
  EXPECT_NEAR(train.get(0).data.sum().item<double>(), 76247.0 / 255.0, 1e-3);

  const Example e = train.get(59999);
  EXPECT_EQ(e.data.shape(), (std::vector<int64_t>{1, 28, 28}));
  EXPECT_EQ(e.data.dtype(), DType::Float32);
  EXPECT_EQ(e.target.shape(), std::vector<int64_t>{});
  EXPECT_EQ(train.classes().at(9), "Ankle boot");

  DataLoader loader(train, DataLoaderOptions().batch_size(64).shuffle(true).seed(1));
  EXPECT_EQ(loader.size(), 938);
  auto it = loader.begin();
  EXPECT_EQ(it->data.shape(), (std::vector<int64_t>{64, 1, 28, 28}));
  EXPECT_EQ(it->target.shape(), (std::vector<int64_t>{64}));
  EXPECT_EQ(it->target.dtype(), DType::Int64);
  // In order, a batch is exactly the rows of the image and label tensors.
  DataLoader ordered(test, DataLoaderOptions(100));
  const Example first = *ordered.begin();
  EXPECT_EQ(first.data.to_vector<float>(), test.images().slice(0, 0, 100).to_vector<float>());
  EXPECT_EQ(first.target.to_vector<int64_t>(),
            test.targets().slice(0, 0, 100).to_vector<int64_t>());
}

}  // namespace
}  // namespace smelt::data
