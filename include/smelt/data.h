// Data loading, like torch.utils.data and torchvision: datasets, a batching DataLoader with
// shuffling and background prefetch, image transforms, and the (Fashion-)MNIST files.
//
//   namespace T = smelt::data::transforms;
//   data::FashionMNIST train("/usr/share/datasets/fashion-mnist", /*train=*/true,
//                            T::Compose({T::RandomHorizontalFlip(), T::Normalize(0.5, 0.5)}));
//   data::DataLoader loader(train, data::DataLoaderOptions().batch_size(128).shuffle(true));
//   for (int epoch = 0; epoch < 10; ++epoch) {
//     for (auto& batch : loader) {  // batch.data [128, 1, 28, 28] Float32, batch.target [128]
//       ...                         // (the last batch of an epoch may be smaller: see drop_last)
//     }
//   }
//
// Datasets, examples and batches are ordinary Tensors; a batch is a new realized CPU tensor (or
// lives on the device of the dataset's tensors) without autograd history. Transforms and
// collation run on the host, so that the compiled training step sees the same graph every batch.
#pragma once

#include <smelt/tensor.h>

#include <concepts>
#include <cstdint>
#include <functional>
#include <initializer_list>
#include <iterator>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

namespace smelt::data {

// ---- examples and datasets ----------------------------------------------------------------------

// One example, or a batch of them: the input and its label. `auto& [x, y] = batch;` works too.
struct Example {
  Tensor data;
  Tensor target;
};

// A map-style dataset (torch.utils.data.Dataset): a size and random access by index. Derive from
// it and implement size() and get(); the DataLoader calls get() from its worker threads when
// num_workers > 0, so get() must be safe to call concurrently (it is const for that reason).
// get() should return realized tensors (e.g. from_vector, or rows of a realized tensor): each
// distinct lazy graph an example carries would be compiled on its own.
class Dataset {
 public:
  virtual ~Dataset() = default;

  // The number of examples.
  virtual int64_t size() const = 0;
  // The example at `index`, 0 <= index < size().
  virtual Example get(int64_t index) const = 0;
  // The examples at `indices` as one batch (data [B, ...], target [B, ...]). The default calls
  // get() for each and default_collate()s them; a dataset that holds its examples as rows of one
  // tensor overrides it with a single gather (TensorDataset does).
  virtual Example get_batch(const std::vector<int64_t>& indices) const;
};

// Stacks the examples' data along a new first dim, and their targets likewise (a batch of 0-d
// targets is [B]). Every example's data must have one shape and dtype, and so must the targets;
// undefined targets stay undefined. CPU tensors are copied into one new buffer; tensors on
// another device are joined with stack().
Example default_collate(std::vector<Example> examples);

// How a DataLoader turns the examples of one batch into the batch (default_collate by default).
using Collate = std::function<Example(std::vector<Example>)>;

// Something that maps a tensor to a tensor: any of the classes in data::transforms, a
// transforms::Compose of them, or a lambda.
using Transform = std::function<Tensor(const Tensor&)>;

namespace detail {
template <typename D>
concept DatasetType = std::derived_from<std::remove_cvref_t<D>, Dataset>;

// A dataset passed as an lvalue is borrowed (the caller keeps it alive, as with PyTorch's
// DataLoader); a temporary is moved into shared ownership, so `DataLoader(TensorDataset(x, y))`
// is safe.
template <DatasetType D>
std::shared_ptr<const Dataset> hold_dataset(D&& dataset) {
  if constexpr (std::is_lvalue_reference_v<D>) {
    return std::shared_ptr<const Dataset>(std::shared_ptr<const Dataset>(), &dataset);
  } else {
    return std::make_shared<const std::remove_cvref_t<D>>(std::move(dataset));
  }
}
}  // namespace detail

// Examples that are rows of tensors (torch.utils.data.TensorDataset): example i is
// {data[i], targets[i]}. Both must have at least one dim, the same size of their first dim, and
// the same device. The tensors are realized at construction; examples and batches are copies of
// their rows (a batch is one gather, not one copy per example).
class TensorDataset : public Dataset {
 public:
  TensorDataset(Tensor data, Tensor targets);

  int64_t size() const override;
  Example get(int64_t index) const override;
  Example get_batch(const std::vector<int64_t>& indices) const override;

  const Tensor& data() const { return data_; }
  const Tensor& targets() const { return targets_; }

 private:
  Tensor data_;
  Tensor targets_;
};

// Another dataset with a transform applied to each example's data (and optionally one to its
// target) when it is read: LibTorch's `dataset.map(...)`, torchvision's `transform=` argument for
// any dataset. `dataset` is borrowed when given as an lvalue (keep it alive), owned when a
// temporary or a shared_ptr. An empty transform leaves that part as it is.
class TransformDataset : public Dataset {
 public:
  template <detail::DatasetType D>
  TransformDataset(D&& dataset, Transform transform, Transform target_transform = nullptr)
      : TransformDataset(detail::hold_dataset(std::forward<D>(dataset)), std::move(transform),
                         std::move(target_transform)) {}
  TransformDataset(std::shared_ptr<const Dataset> dataset, Transform transform,
                   Transform target_transform = nullptr);

  int64_t size() const override;
  Example get(int64_t index) const override;

 private:
  std::shared_ptr<const Dataset> dataset_;
  Transform transform_;
  Transform target_transform_;
};

// ---- the loader ------------------------------------------------------------------------------

// How a DataLoader batches, like torch.utils.data.DataLoader's arguments. Setters chain:
//   data::DataLoaderOptions().batch_size(64).shuffle(true).num_workers(1)
class DataLoaderOptions {
 public:
  DataLoaderOptions() = default;
  // LibTorch's shorthand: DataLoaderOptions(64).
  explicit DataLoaderOptions(int64_t batch_size) : batch_size_(batch_size) {}

  // Examples per batch (default 1).
  DataLoaderOptions& batch_size(int64_t n) {
    batch_size_ = n;
    return *this;
  }
  int64_t batch_size() const { return batch_size_; }

  // A new random order every epoch (default false: the dataset's order).
  DataLoaderOptions& shuffle(bool on) {
    shuffle_ = on;
    return *this;
  }
  bool shuffle() const { return shuffle_; }

  // Drops the last batch of an epoch when it is smaller than batch_size (default false).
  DataLoaderOptions& drop_last(bool on) {
    drop_last_ = on;
    return *this;
  }
  bool drop_last() const { return drop_last_; }

  // The seed of the epochs' orders and of the random transforms: epoch e is shuffled by a
  // generator seeded from (seed, e), and batch b's random transforms draw from one seeded from
  // (seed, e, b), so a run is reproducible whatever num_workers is. Unset (the default), the seed
  // is drawn from smelt's generator when the DataLoader is made, so manual_seed() fixes it.
  DataLoaderOptions& seed(uint64_t seed) {
    seed_ = seed;
    return *this;
  }
  std::optional<uint64_t> seed() const { return seed_; }

  // Background threads that prepare batches while the loop body runs (default 0: each batch is
  // made by the iterating thread when the loop asks for it). Batches arrive in order either way.
  DataLoaderOptions& num_workers(int n) {
    num_workers_ = n;
    return *this;
  }
  int num_workers() const { return num_workers_; }

  // With workers: how many batches each may prepare ahead of the loop (default 2, as PyTorch).
  DataLoaderOptions& prefetch_factor(int n) {
    prefetch_factor_ = n;
    return *this;
  }
  int prefetch_factor() const { return prefetch_factor_; }

  // Builds each batch from its examples (read with Dataset::get) instead of
  // Dataset::get_batch. Runs on the worker threads when there are any.
  DataLoaderOptions& collate(Collate fn) {
    collate_ = std::move(fn);
    return *this;
  }
  const Collate& collate() const { return collate_; }

 private:
  int64_t batch_size_ = 1;
  bool shuffle_ = false;
  bool drop_last_ = false;
  std::optional<uint64_t> seed_;
  int num_workers_ = 0;
  int prefetch_factor_ = 2;
  Collate collate_;
};

// Batches of a dataset, epoch after epoch: `for (auto& batch : loader)` runs one epoch, and each
// new loop over the loader starts the next one (with a new order when shuffling). A concrete
// class, so it can be a member or a parameter: `void train(data::DataLoader& loader)`.
//
// One epoch runs at a time: begin() ends the epoch in progress (its iterators become invalid)
// and starts the next. An exception thrown while making a batch (by the dataset, a transform or
// the collate function) is rethrown by the iterator step that reaches that batch.
class DataLoader {
 public:
  // The batches of one epoch; an input iterator (one pass).
  class Iterator {
   public:
    using iterator_category = std::input_iterator_tag;
    using value_type = Example;
    using difference_type = std::ptrdiff_t;
    using pointer = Example*;
    using reference = Example&;

    Iterator() = default;
    // The current batch; it stays valid until the next increment.
    Example& operator*() const;
    Example* operator->() const { return &**this; }
    Iterator& operator++();
    void operator++(int) { ++*this; }
    bool operator==(const Iterator& other) const { return done() == other.done(); }

   private:
    friend class DataLoader;
    explicit Iterator(DataLoader* loader) : loader_(loader) {}
    bool done() const;

    DataLoader* loader_ = nullptr;  // null: the end iterator
  };

  // `dataset` is borrowed when given as an lvalue (it must outlive the loader), owned when a
  // temporary or a shared_ptr. Throws smelt::Error for a batch_size < 1, num_workers < 0 or
  // prefetch_factor < 1.
  template <detail::DatasetType D>
  explicit DataLoader(D&& dataset, DataLoaderOptions options = DataLoaderOptions())
      : DataLoader(detail::hold_dataset(std::forward<D>(dataset)), std::move(options)) {}
  explicit DataLoader(std::shared_ptr<const Dataset> dataset,
                      DataLoaderOptions options = DataLoaderOptions());
  ~DataLoader();
  DataLoader(DataLoader&&) noexcept;
  DataLoader& operator=(DataLoader&&) noexcept;
  DataLoader(const DataLoader&) = delete;
  DataLoader& operator=(const DataLoader&) = delete;

  // Starts the next epoch (see set_epoch) and returns its first batch.
  Iterator begin();
  Iterator end() { return Iterator(); }

  // Batches per epoch: ceil(dataset size / batch_size), or the floor with drop_last.
  int64_t size() const;
  // The epoch the last begin() started (0, 1, ...); -1 before the first.
  int64_t epoch() const;
  // Makes the next begin() start epoch `epoch` (its order and transforms), e.g. to resume a run.
  void set_epoch(int64_t epoch);

  const Dataset& dataset() const;
  const DataLoaderOptions& options() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- transforms (torchvision.transforms) --------------------------------------------------------
//
// Each is a callable Tensor -> Tensor on images of shape [..., C, H, W] (flips and crops need
// only [..., H, W]); leading dims are a batch that gets the same treatment (one coin for a flip,
// one offset for a crop). They run on the host: the result is a new realized tensor on the
// input's device, without autograd history (a flip that does not happen returns the input). Random
// ones draw from a generator of the calling thread that the DataLoader seeds for every batch (see
// DataLoaderOptions::seed); outside a loader, transforms::manual_seed() seeds it.
namespace transforms {

// Seeds the calling thread's generator of the random transforms.
void manual_seed(uint64_t seed);

// (x - mean) / std, with one mean and std for all values or one per channel (dim -3). Floating
// tensors only; every std must be nonzero.
class Normalize {
 public:
  Normalize(double mean, double std);
  Normalize(std::vector<double> mean, std::vector<double> std);
  Tensor operator()(const Tensor& image) const;

 private:
  std::vector<double> mean_;
  std::vector<double> std_;
};

// Mirrors the image left-right (reverses the last dim) with probability p.
class RandomHorizontalFlip {
 public:
  explicit RandomHorizontalFlip(double p = 0.5);
  Tensor operator()(const Tensor& image) const;

 private:
  double p_;
};

// Mirrors the image upside down (reverses dim -2) with probability p.
class RandomVerticalFlip {
 public:
  explicit RandomVerticalFlip(double p = 0.5);
  Tensor operator()(const Tensor& image) const;

 private:
  double p_;
};

// Pads every side of the image with `padding` zeros, then cuts out a size x size (or
// height x width, from {height, width}) window at a uniformly random position. The padded image
// must be at least as large as the window.
class RandomCrop {
 public:
  explicit RandomCrop(int64_t size, int64_t padding = 0);
  explicit RandomCrop(const std::vector<int64_t>& size, int64_t padding = 0);
  // Makes RandomCrop({24, 20}) unambiguous (it could otherwise be a copy from {size, padding}).
  explicit RandomCrop(std::initializer_list<int64_t> size, int64_t padding = 0)
      : RandomCrop(std::vector<int64_t>(size), padding) {}
  Tensor operator()(const Tensor& image) const;

 private:
  int64_t height_;
  int64_t width_;
  int64_t padding_;
};

// Applies transforms in order: Compose({RandomCrop(28, 4), Normalize(0.5, 0.5)}).
class Compose {
 public:
  explicit Compose(std::vector<Transform> transforms);
  Tensor operator()(const Tensor& image) const;

 private:
  std::vector<Transform> transforms_;
};

// A function as a transform: Lambda([](const Tensor& x) { return x * 2.f; }). Any callable
// converts to a Transform directly too; Lambda is the torchvision name.
class Lambda {
 public:
  explicit Lambda(Transform fn);
  Tensor operator()(const Tensor& image) const;

 private:
  Transform fn_;
};

}  // namespace transforms

// ---- MNIST-format datasets (IDX files) ---------------------------------------------------------

// The MNIST digits from their IDX files (torchvision.datasets.MNIST): the training split
// (train-images-idx3-ubyte and train-labels-idx1-ubyte) or the test split (t10k-...), each read
// as is or gzip-compressed (the same name plus ".gz"), from `root` or from the layout torchvision
// downloads to (`root`/MNIST/raw). Example i is {image [1, 28, 28] Float32 in [0, 1] (the bytes
// / 255), label Int64 []}, with `transform` applied to the image and `target_transform` to the
// label. The files are decompressed once, into one tensor. Throws smelt::Error naming the file
// when one is missing, truncated, not an IDX file of 28 x 28 images or labels 0-9, or when the
// two files' counts differ.
class MNIST : public Dataset {
 public:
  explicit MNIST(const std::string& root, bool train = true, Transform transform = nullptr,
                 Transform target_transform = nullptr);

  int64_t size() const override;
  Example get(int64_t index) const override;
  // One gather from the image tensor when there are no transforms.
  Example get_batch(const std::vector<int64_t>& indices) const override;

  // Every image, [N, 1, 28, 28] Float32 in [0, 1] (no transform applied), and every label, [N]
  // Int64: e.g. to evaluate on the whole test split at once.
  const Tensor& images() const { return rows_.data(); }
  const Tensor& targets() const { return rows_.targets(); }
  // The names of the labels 0-9.
  const std::vector<std::string>& classes() const { return *classes_; }

 protected:
  // `name` is the dataset's name in errors and in torchvision's layout (`root`/name/raw).
  MNIST(const std::string& name, const std::vector<std::string>* classes, const std::string& root,
        bool train, Transform transform, Transform target_transform);

 private:
  TensorDataset rows_;
  Transform transform_;
  Transform target_transform_;
  const std::vector<std::string>* classes_;  // static storage
};

// Zalando's Fashion-MNIST (torchvision.datasets.FashionMNIST): 60,000 training and 10,000 test
// images of clothing, in MNIST's format and file names. Debian's package puts them in
// /usr/share/datasets/fashion-mnist. Labels: 0 T-shirt/top, 1 Trouser, 2 Pullover, 3 Dress,
// 4 Coat, 5 Sandal, 6 Shirt, 7 Sneaker, 8 Bag, 9 Ankle boot.
class FashionMNIST : public MNIST {
 public:
  explicit FashionMNIST(const std::string& root, bool train = true, Transform transform = nullptr,
                        Transform target_transform = nullptr);
};

}  // namespace smelt::data
