// A lock for critical sections of a few instructions (copying a shared_ptr out of an object):
// one atomic exchange to take it and a plain store to release it, no call into pthreads. Two
// threads on one lock at the same instant are rare there; a waiter spins, then yields.
#pragma once

#include <atomic>
#include <thread>

namespace smelt::base {

class SpinLock {
 public:
  void lock() {
    while (held_.exchange(true, std::memory_order_acquire)) {
      for (int spins = 0; held_.load(std::memory_order_relaxed); ++spins) {
        if (spins >= 64) std::this_thread::yield();
      }
    }
  }
  void unlock() { held_.store(false, std::memory_order_release); }

 private:
  std::atomic<bool> held_{false};
};

}  // namespace smelt::base
