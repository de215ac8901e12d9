// Helpers for the frontend tests: comparing a tensor's values and checking error messages.
#pragma once

#include <gtest/gtest.h>
#include <smelt/smelt.h>

#include <cmath>
#include <functional>
#include <initializer_list>
#include <sstream>
#include <string>
#include <vector>

namespace smelt::testing {

// Expects `t` to have `shape` and (as doubles) `values`, within `tol` (NaN matches NaN, an
// infinity only itself).
inline void expect_tensor(const Tensor& t, const std::vector<int64_t>& shape,
                          const std::vector<double>& values, double tol = 1e-5) {
  ASSERT_EQ(t.shape(), shape);
  const std::vector<double> got = t.to_vector<double>();
  ASSERT_EQ(got.size(), values.size());
  for (size_t i = 0; i < values.size(); ++i) {
    if (std::isnan(values[i])) {
      EXPECT_TRUE(std::isnan(got[i])) << "element " << i << " is " << got[i];
    } else if (std::isinf(values[i])) {
      EXPECT_EQ(got[i], values[i]) << "element " << i;
    } else {
      EXPECT_NEAR(got[i], values[i], tol) << "element " << i;
    }
  }
}

// Expects `fn` to throw smelt::Error whose message contains every one of `parts`.
inline void expect_error(const std::function<void()>& fn,
                         std::initializer_list<std::string> parts) {
  try {
    fn();
  } catch (const Error& e) {
    const std::string msg = e.what();
    for (const std::string& p : parts) {
      EXPECT_NE(msg.find(p), std::string::npos)
          << "message \"" << msg << "\" lacks \"" << p << "\"";
    }
    return;
  }
  ADD_FAILURE() << "no smelt::Error thrown";
}

// The printed form of a tensor.
inline std::string str(const Tensor& t) {
  std::ostringstream os;
  os << t;
  return os.str();
}

// Turns eager mode on for a scope.
class EagerScope {
 public:
  explicit EagerScope(bool on) : was_(is_eager()) { set_eager(on); }
  ~EagerScope() { set_eager(was_); }

 private:
  bool was_;
};

}  // namespace smelt::testing
