// A training progress display for the examples (public API only, header-only): on a terminal,
// one line redrawn in place
//
//   epoch 2/5 [#########...........]  214/469  loss 0.4132  25.1k img/s  ETA 0:04
//
// and, when the output is not a terminal (a log file, CI), one plain line every `every` batches
// and at the end of each epoch. Also keeps the learning curve for a CSV file.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <string>
#include <vector>

namespace examples {

class Progress {
 public:
  Progress(int epochs, int64_t batches_per_epoch, int every = 50)
      : epochs_(epochs), batches_(batches_per_epoch), every_(every), tty_(isatty(1) != 0) {}

  void start_epoch(int epoch) {
    epoch_ = epoch;
    seen_ = 0;
    loss_sum_ = 0;
    count_ = 0;
    start_ = std::chrono::steady_clock::now();
  }

  // After batch `batch` (0-based) of `examples` examples with mean loss `loss`.
  void update(int64_t batch, int64_t examples, double loss) {
    seen_ += examples;
    loss_sum_ += loss;
    ++count_;
    const double seconds = elapsed();
    const double rate = seconds > 0 ? static_cast<double>(seen_) / seconds : 0;
    const double eta = batch + 1 < batches_ ? seconds / (batch + 1) * (batches_ - batch - 1) : 0;
    if (tty_) {
      const int width = 20;
      const int filled = static_cast<int>(width * (batch + 1) / batches_);
      std::printf("\r\033[Kepoch %d/%d [%s%s] %5lld/%lld  loss %.4f  %s img/s  ETA %s", epoch_,
                  epochs_, std::string(filled, '#').c_str(),
                  std::string(width - filled, '.').c_str(), static_cast<long long>(batch + 1),
                  static_cast<long long>(batches_), loss_sum_ / count_, human(rate).c_str(),
                  clock(eta).c_str());
      std::fflush(stdout);
    } else if ((batch + 1) % every_ == 0) {
      std::printf("epoch %d/%d batch %lld/%lld loss %.4f %s img/s ETA %s\n", epoch_, epochs_,
                  static_cast<long long>(batch + 1), static_cast<long long>(batches_),
                  loss_sum_ / count_, human(rate).c_str(), clock(eta).c_str());
    }
  }

  // Ends the epoch line with its mean loss and the test accuracy; records the curve.
  void end_epoch(double test_accuracy) {
    const double seconds = elapsed();
    const double loss = count_ > 0 ? loss_sum_ / count_ : 0;
    if (tty_) std::printf("\r\033[K");
    std::printf("epoch %d/%d  train loss %.4f  test accuracy %.2f%%  (%.1f s, %s img/s)\n", epoch_,
                epochs_, loss, 100 * test_accuracy, seconds,
                human(seconds > 0 ? seen_ / seconds : 0).c_str());
    std::fflush(stdout);
    curve_.push_back({epoch_, loss, test_accuracy, seconds});
  }

  // Writes epoch,train_loss,test_accuracy,seconds rows; false if the file cannot be written.
  bool write_csv(const std::string& path) const {
    std::ofstream out(path);
    out << "epoch,train_loss,test_accuracy,seconds\n";
    for (const Row& r : curve_) {
      out << r.epoch << ',' << r.loss << ',' << r.accuracy << ',' << r.seconds << '\n';
    }
    return static_cast<bool>(out);
  }

 private:
  struct Row {
    int epoch;
    double loss, accuracy, seconds;
  };

  double elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  }
  static std::string human(double v) {
    char buf[32];
    if (v >= 1e6) {
      std::snprintf(buf, sizeof buf, "%.1fM", v / 1e6);
    } else if (v >= 1e3) {
      std::snprintf(buf, sizeof buf, "%.1fk", v / 1e3);
    } else {
      std::snprintf(buf, sizeof buf, "%.0f", v);
    }
    return buf;
  }
  static std::string clock(double seconds) {
    const long s = static_cast<long>(seconds + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%ld:%02ld", s / 60, s % 60);
    return buf;
  }

  const int epochs_;
  const int64_t batches_;
  const int every_;
  const bool tty_;
  int epoch_ = 0;
  int64_t seen_ = 0;
  double loss_sum_ = 0;
  int64_t count_ = 0;
  std::chrono::steady_clock::time_point start_;
  std::vector<Row> curve_;
};

}  // namespace examples
