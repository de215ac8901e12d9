// DataLoader: epochs of batches, in order or shuffled, made on the iterating thread or ahead of
// it by worker threads.
#include <smelt/creation.h>
#include <smelt/data.h>
#include <smelt/error.h>

#include <algorithm>
#include <condition_variable>
#include <exception>
#include <limits>
#include <mutex>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "frontend/data/data_random.h"

namespace smelt::data {
namespace {

// The stream number of an epoch's shuffle; batches use their index, which never reaches it.
constexpr uint64_t kShuffleStream = std::numeric_limits<uint64_t>::max();

// One epoch: its order, and (with workers) the batches being prepared ahead of the loop.
// Batch b is made from the same indices and the same transform seed on whichever thread makes
// it, so the batches do not depend on num_workers.
class Epoch {
 public:
  Epoch(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options, uint64_t seed,
        int64_t epoch, int64_t num_batches)
      : dataset_(std::move(dataset)),
        options_(std::move(options)),
        seed_(seed),
        epoch_(epoch),
        num_batches_(num_batches),
        window_(static_cast<int64_t>(options_.num_workers()) * options_.prefetch_factor()) {
    const int64_t n = dataset_->size();
    if (options_.shuffle()) {
      order_ = detail::permutation(
          n, detail::derive_seed(seed_, static_cast<uint64_t>(epoch_), kShuffleStream));
    } else {
      order_.resize(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) order_[static_cast<size_t>(i)] = i;
    }
    if (options_.num_workers() > 0) {
      slots_.resize(static_cast<size_t>(num_batches_));
      workers_.reserve(static_cast<size_t>(options_.num_workers()));
      try {
        for (int w = 0; w < options_.num_workers(); ++w) workers_.emplace_back([this] { work(); });
      } catch (...) {
        stop_workers();
        throw;
      }
    }
  }

  ~Epoch() { stop_workers(); }
  Epoch(const Epoch&) = delete;
  Epoch& operator=(const Epoch&) = delete;

  // Batch b; called with b = 0, 1, ... in order.
  Example take(int64_t b) {
    if (workers_.empty()) return make_batch(b);
    Slot slot;
    {
      std::unique_lock<std::mutex> lock(mu_);
      ready_.wait(lock, [&] { return slots_[static_cast<size_t>(b)].ready; });
      slot = std::move(slots_[static_cast<size_t>(b)]);
      taken_ = b + 1;
    }
    work_.notify_all();
    if (slot.error) std::rethrow_exception(slot.error);
    return std::move(slot.batch);
  }

 private:
  // A batch a worker made, or the exception that making it threw.
  struct Slot {
    bool ready = false;
    Example batch;
    std::exception_ptr error;
  };

  Example make_batch(int64_t b) const {
    const int64_t n = static_cast<int64_t>(order_.size());
    const int64_t begin = b * options_.batch_size();
    const int64_t end = std::min(n, begin + options_.batch_size());
    const std::vector<int64_t> indices(order_.begin() + begin, order_.begin() + end);
    detail::ScopedTransformSeed seed(
        detail::derive_seed(seed_, static_cast<uint64_t>(epoch_), static_cast<uint64_t>(b)));
    if (!options_.collate()) return dataset_->get_batch(indices);
    std::vector<Example> examples;
    examples.reserve(indices.size());
    for (int64_t i : indices) examples.push_back(dataset_->get(i));
    return options_.collate()(std::move(examples));
  }

  // A worker claims the next unclaimed batch while it is within `window_` batches of the loop.
  void work() {
    std::unique_lock<std::mutex> lock(mu_);
    while (true) {
      work_.wait(lock, [&] { return stop_ || next_ >= num_batches_ || next_ < taken_ + window_; });
      if (stop_ || next_ >= num_batches_) return;
      const int64_t b = next_++;
      lock.unlock();
      Slot slot;
      try {
        slot.batch = make_batch(b);
      } catch (...) {
        slot.error = std::current_exception();
      }
      slot.ready = true;
      lock.lock();
      slots_[static_cast<size_t>(b)] = std::move(slot);
      ready_.notify_all();
    }
  }

  void stop_workers() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_.notify_all();
    for (std::thread& t : workers_) t.join();
    workers_.clear();
  }

  const std::shared_ptr<const Dataset> dataset_;
  const DataLoaderOptions options_;
  const uint64_t seed_;
  const int64_t epoch_;
  const int64_t num_batches_;
  const int64_t window_;
  std::vector<int64_t> order_;

  std::mutex mu_;
  std::condition_variable work_;   // a batch was taken, or stop
  std::condition_variable ready_;  // a batch is ready
  std::vector<Slot> slots_;        // by batch index; guarded by mu_
  int64_t next_ = 0;               // the next batch a worker claims; guarded by mu_
  int64_t taken_ = 0;              // batches the loop has taken; guarded by mu_
  bool stop_ = false;              // guarded by mu_
  std::vector<std::thread> workers_;
};

}  // namespace

struct DataLoader::Impl {
  std::shared_ptr<const Dataset> dataset;
  DataLoaderOptions options;
  uint64_t seed = 0;
  int64_t epoch = -1;
  int64_t next_epoch = 0;

  std::unique_ptr<Epoch> run;  // the epoch in progress
  int64_t num_batches = 0;     // of `run`
  int64_t position = 0;        // the index of `current` in `run`
  bool done = true;
  Example current;

  // Makes batch `position` current, or ends the epoch after its last batch. An exception from
  // making the batch ends the epoch too (its workers stop) before it reaches the loop.
  void load_current() {
    if (position >= num_batches) {
      finish();
      return;
    }
    try {
      current = run->take(position);
    } catch (...) {
      finish();
      throw;
    }
  }

  void finish() {
    done = true;
    run.reset();
    current = Example();
  }
};

DataLoader::DataLoader(std::shared_ptr<const Dataset> dataset, DataLoaderOptions options)
    : impl_(std::make_unique<Impl>()) {
  if (dataset == nullptr) throw Error("DataLoader: the dataset is null");
  if (options.batch_size() < 1) {
    throw Error(
        absl::StrCat("DataLoader: batch_size must be at least 1, got ", options.batch_size()));
  }
  if (options.num_workers() < 0) {
    throw Error(absl::StrCat("DataLoader: num_workers must be 0 (batches are made by the loop's ",
                             "thread) or more, got ", options.num_workers()));
  }
  if (options.prefetch_factor() < 1) {
    throw Error(absl::StrCat("DataLoader: prefetch_factor must be at least 1, got ",
                             options.prefetch_factor()));
  }
  impl_->dataset = std::move(dataset);
  // Without a seed, smelt's generator picks one, so manual_seed() makes the run reproducible.
  impl_->seed = options.seed().has_value()
                    ? *options.seed()
                    : static_cast<uint64_t>(
                          randint(0, std::numeric_limits<int64_t>::max(), {}).item<int64_t>());
  impl_->options = std::move(options);
}

DataLoader::~DataLoader() = default;
DataLoader::DataLoader(DataLoader&&) noexcept = default;
DataLoader& DataLoader::operator=(DataLoader&&) noexcept = default;

DataLoader::Iterator DataLoader::begin() {
  Impl& s = *impl_;
  s.finish();  // joins the workers of an epoch left early (a break out of the loop)
  s.epoch = s.next_epoch++;
  s.num_batches = size();
  s.position = 0;
  if (s.num_batches > 0) {
    s.run = std::make_unique<Epoch>(s.dataset, s.options, s.seed, s.epoch, s.num_batches);
    s.done = false;
    s.load_current();
  }
  return Iterator(this);
}

int64_t DataLoader::size() const {
  const int64_t n = impl_->dataset->size();
  const int64_t b = impl_->options.batch_size();
  return impl_->options.drop_last() ? n / b : (n + b - 1) / b;
}

int64_t DataLoader::epoch() const { return impl_->epoch; }

void DataLoader::set_epoch(int64_t epoch) {
  if (epoch < 0)
    throw Error(absl::StrCat("DataLoader: set_epoch needs an epoch >= 0, got ", epoch));
  impl_->next_epoch = epoch;
}

const Dataset& DataLoader::dataset() const { return *impl_->dataset; }
const DataLoaderOptions& DataLoader::options() const { return impl_->options; }

// ---- Iterator ---------------------------------------------------------------------------------

bool DataLoader::Iterator::done() const { return loader_ == nullptr || loader_->impl_->done; }

Example& DataLoader::Iterator::operator*() const {
  if (done()) throw Error("DataLoader: dereferencing an iterator past the end of the epoch");
  return loader_->impl_->current;
}

DataLoader::Iterator& DataLoader::Iterator::operator++() {
  if (done()) throw Error("DataLoader: incrementing an iterator past the end of the epoch");
  Impl& s = *loader_->impl_;
  ++s.position;
  s.load_current();
  return *this;
}

}  // namespace smelt::data
