// Where the benchmarks find their real data.
#pragma once

namespace smelt::bench {

// The Debian package dataset-fashion-mnist's IDX files.
inline constexpr const char* kFashionMnistRoot = "/usr/share/datasets/fashion-mnist";

}  // namespace smelt::bench
