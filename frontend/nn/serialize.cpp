// save / load of named tensors in the format documented in include/smelt/serialize.h.
//
// Loading parses and verifies the whole file in memory, then checks every entry against the
// module, then builds every new value (device copies included), and only then swaps the values
// in: any failure before the swaps leaves the module exactly as it was.
#include <smelt/error.h>
#include <smelt/eval.h>
#include <smelt/serialize.h>

#include <bit>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "frontend/graph_builder.h"
#include "frontend/tensor_impl.h"
#include "ir/shape.h"

namespace smelt {
namespace {

// Tensor data is copied to and from the file as host memory.
static_assert(std::endian::native == std::endian::little,
              "the smelt file format stores little-endian data; add byte swapping for this host");

constexpr char kMagic[8] = {'S', 'M', 'E', 'L', 'T', 'T', 'N', 'S'};
constexpr uint32_t kVersion = 1;
constexpr size_t kHeaderSize = 24;
constexpr size_t kChecksumSize = 8;
constexpr uint32_t kMaxNameLength = 1 << 16;
constexpr uint8_t kMaxRank = 64;

// The file's dtype codes; fixed by the format, independent of the DType enum's values.
constexpr DType kDTypeByCode[] = {DType::Bool, DType::Int32, DType::Int64, DType::Float32,
                                  DType::Float64};

uint8_t dtype_code(DType t) {
  for (uint8_t c = 0; c < std::size(kDTypeByCode); ++c) {
    if (kDTypeByCode[c] == t) return c;
  }
  return 0xff;
}

uint64_t fnv1a64(const uint8_t* data, size_t size) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (size_t i = 0; i < size; ++i) {
    h ^= data[i];
    h *= 0x100000001b3ull;
  }
  return h;
}

struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  const uint8_t* data;  // into the file's bytes
  uint64_t nbytes;
};

std::string describe(DType dtype, const std::vector<int64_t>& shape) {
  return absl::StrCat(dtype_name(dtype), " ", ir::shape_str(shape));
}

// ---- writing -----------------------------------------------------------------------------------

class Writer {
 public:
  void bytes(const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    out_.insert(out_.end(), b, b + n);
  }
  template <typename T>
  void integer(T v) {
    static_assert(std::is_integral_v<T>);
    bytes(&v, sizeof(T));  // the host is little-endian (static_assert above)
  }
  std::vector<uint8_t>& buffer() { return out_; }

 private:
  std::vector<uint8_t> out_;
};

void write_file(const std::string& op, const std::string& path, const std::vector<uint8_t>& data) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream f(tmp, std::ios::binary | std::ios::trunc);
    if (!f) {
      throw Error(
          absl::StrCat(op, ": cannot open '", tmp, "' for writing: ", std::strerror(errno)));
    }
    f.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
    f.flush();
    if (!f) {
      std::remove(tmp.c_str());
      throw Error(absl::StrCat(op, ": writing '", tmp, "' failed: ", std::strerror(errno)));
    }
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    const std::string why = std::strerror(errno);
    std::remove(tmp.c_str());
    throw Error(absl::StrCat(op, ": cannot rename '", tmp, "' to '", path, "': ", why));
  }
}

void write_tensors(const std::string& op, const std::string& path,
                   const std::vector<std::pair<std::string, Tensor>>& tensors) {
  std::unordered_set<std::string> names;
  std::vector<Tensor> values;
  for (const auto& [name, t] : tensors) {
    if (name.empty()) throw Error(absl::StrCat(op, ": '", path, "': an entry has an empty name"));
    if (name.size() > kMaxNameLength) {
      throw Error(absl::StrCat(op, ": '", path, "': the name '", name.substr(0, 40),
                               "...' is longer than ", kMaxNameLength, " bytes"));
    }
    if (!names.insert(name).second) {
      throw Error(absl::StrCat(op, ": '", path, "': the name '", name, "' appears twice"));
    }
    if (!t.defined()) {
      throw Error(absl::StrCat(op, ": '", path, "': the tensor '", name, "' is undefined"));
    }
    if (t.dim() > kMaxRank) {
      throw Error(absl::StrCat(op, ": '", path, "': '", name, "' has ", t.dim(),
                               " dims; the format allows ", kMaxRank));
    }
    values.push_back(t);
  }
  // One program computes every pending value.
  eval(values);

  Writer w;
  w.bytes(kMagic, sizeof(kMagic));
  w.integer<uint32_t>(kVersion);
  w.integer<uint32_t>(0);
  w.integer<uint64_t>(tensors.size());
  for (size_t i = 0; i < tensors.size(); ++i) {
    const std::string& name = tensors[i].first;
    const ir::NodePtr node = detail::node_of(values[i], op);
    w.integer<uint32_t>(static_cast<uint32_t>(name.size()));
    w.bytes(name.data(), name.size());
    w.integer<uint8_t>(dtype_code(node->dtype()));
    w.integer<uint8_t>(static_cast<uint8_t>(node->rank()));
    for (int64_t d : node->shape()) w.integer<int64_t>(d);
    const uint64_t nbytes = static_cast<uint64_t>(node->numel()) * dtype_size(node->dtype());
    w.integer<uint64_t>(nbytes);
    if (nbytes > 0) w.bytes(detail::host_buffer(node, op)->data(), nbytes);
  }
  w.integer<uint64_t>(fnv1a64(w.buffer().data(), w.buffer().size()));
  write_file(op, path, w.buffer());
}

// ---- reading -----------------------------------------------------------------------------------

// Bounds-checked little-endian reads over the file's bytes; running past the end is reported as
// truncation (or a corrupted length field, which looks the same).
class Reader {
 public:
  Reader(const std::string& op, const std::string& path, const std::vector<uint8_t>& bytes,
         size_t end)
      : op_(op), path_(path), bytes_(bytes), end_(end) {}

  const uint8_t* take(size_t n, const std::string& what) {
    if (n > end_ - pos_) {
      fail(absl::StrCat("the file is truncated or corrupted: ", what, " needs ", n,
                        " bytes at offset ", pos_, " but only ", end_ - pos_,
                        " remain before the checksum"));
    }
    const uint8_t* p = bytes_.data() + pos_;
    pos_ += n;
    return p;
  }
  template <typename T>
  T integer(const std::string& what) {
    T v;
    std::memcpy(&v, take(sizeof(T), what), sizeof(T));
    return v;
  }
  size_t pos() const { return pos_; }
  [[noreturn]] void fail(const std::string& problem) const {
    throw Error(absl::StrCat(op_, ": '", path_, "': ", problem));
  }

 private:
  const std::string& op_;
  const std::string& path_;
  const std::vector<uint8_t>& bytes_;
  size_t end_;
  size_t pos_ = 0;
};

std::vector<uint8_t> read_file(const std::string& op, const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  if (!f) {
    throw Error(absl::StrCat(op, ": cannot open '", path, "': ", std::strerror(errno)));
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  if (f.bad()) throw Error(absl::StrCat(op, ": reading '", path, "' failed"));
  return bytes;
}

// Parses and verifies a whole file. The entries point into `bytes`.
std::vector<Entry> parse(const std::string& op, const std::string& path,
                         const std::vector<uint8_t>& bytes) {
  auto fail = [&](const std::string& problem) -> void {
    throw Error(absl::StrCat(op, ": '", path, "': ", problem));
  };
  if (bytes.size() < sizeof(kMagic) || std::memcmp(bytes.data(), kMagic, sizeof(kMagic)) != 0) {
    fail(bytes.size() < sizeof(kMagic)
             ? absl::StrCat("not a smelt tensor file (", bytes.size(), " bytes, too short)")
             : "not a smelt tensor file (wrong magic; expected \"SMELTTNS\")");
  }
  if (bytes.size() < kHeaderSize + kChecksumSize) {
    fail(absl::StrCat("the file is truncated: ", bytes.size(), " bytes, less than the ",
                      kHeaderSize + kChecksumSize, " of an empty file"));
  }
  Reader r(op, path, bytes, bytes.size() - kChecksumSize);
  r.take(sizeof(kMagic), "magic");
  const uint32_t version = r.integer<uint32_t>("version");
  if (version != kVersion) {
    fail(absl::StrCat("unsupported format version ", version, "; this smelt reads version ",
                      kVersion));
  }
  r.integer<uint32_t>("reserved");
  const uint64_t count = r.integer<uint64_t>("entry count");
  std::vector<Entry> entries;
  for (uint64_t k = 0; k < count; ++k) {
    const std::string where = absl::StrCat("entry ", k, "'s ");
    Entry e;
    const uint32_t len = r.integer<uint32_t>(where + "name length");
    if (len == 0 || len > kMaxNameLength) {
      r.fail(absl::StrCat("the file is corrupted: entry ", k, " has a name length of ", len));
    }
    const uint8_t* name = r.take(len, where + "name");
    e.name.assign(reinterpret_cast<const char*>(name), len);
    const uint8_t code = r.integer<uint8_t>(where + "dtype");
    if (code >= std::size(kDTypeByCode)) {
      r.fail(absl::StrCat("the file is corrupted: entry '", e.name, "' has unknown dtype code ",
                          static_cast<int>(code)));
    }
    e.dtype = kDTypeByCode[code];
    const uint8_t rank = r.integer<uint8_t>(where + "rank");
    if (rank > kMaxRank) {
      r.fail(absl::StrCat("the file is corrupted: entry '", e.name, "' has rank ",
                          static_cast<int>(rank)));
    }
    uint64_t numel = 1;
    bool overflow = false;
    for (uint8_t d = 0; d < rank; ++d) {
      const int64_t dim = r.integer<int64_t>(where + "shape");
      if (dim < 0) {
        r.fail(
            absl::StrCat("the file is corrupted: entry '", e.name, "' has a negative dim ", dim));
      }
      e.shape.push_back(dim);
      overflow |= dim != 0 && numel > (uint64_t{1} << 62) / static_cast<uint64_t>(dim);
      if (!overflow) numel *= static_cast<uint64_t>(dim);
    }
    e.nbytes = r.integer<uint64_t>(where + "byte count");
    if (overflow || e.nbytes != numel * dtype_size(e.dtype)) {
      r.fail(absl::StrCat("the file is corrupted: entry '", e.name, "' (",
                          describe(e.dtype, e.shape), ") records ", e.nbytes, " bytes of data"));
    }
    e.data = r.take(e.nbytes, absl::StrCat("the data of '", e.name, "'"));
    entries.push_back(std::move(e));
  }
  if (r.pos() != bytes.size() - kChecksumSize) {
    r.fail(absl::StrCat("the file is corrupted: ", bytes.size() - kChecksumSize - r.pos(),
                        " unexpected bytes after the last of ", count, " entries"));
  }
  uint64_t stored;
  std::memcpy(&stored, bytes.data() + bytes.size() - kChecksumSize, kChecksumSize);
  const uint64_t computed = fnv1a64(bytes.data(), bytes.size() - kChecksumSize);
  if (stored != computed) {
    r.fail(absl::StrCat("the file is corrupted: checksum mismatch (stored ", absl::Hex(stored),
                        ", computed ", absl::Hex(computed), ")"));
  }
  std::unordered_set<std::string> names;
  for (const Entry& e : entries) {
    if (!names.insert(e.name).second) {
      r.fail(absl::StrCat("the file is corrupted: the name '", e.name, "' appears twice"));
    }
  }
  return entries;
}

Tensor to_tensor(const Entry& e) {
  return Tensor(std::make_shared<detail::TensorImpl>(detail::host_node(e.dtype, e.shape, e.data)));
}

// A module's state in file order: parameters, then buffers.
std::vector<std::pair<std::string, Tensor>> module_state(const nn::Module& module) {
  std::vector<std::pair<std::string, Tensor>> state = module.named_parameters();
  for (auto& b : module.named_buffers()) state.push_back(std::move(b));
  return state;
}

}  // namespace

void save_tensors(const std::string& path,
                  const std::vector<std::pair<std::string, Tensor>>& tensors) {
  write_tensors("save_tensors", path, tensors);
}

std::vector<std::pair<std::string, Tensor>> load_tensors(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file("load_tensors", path);
  std::vector<std::pair<std::string, Tensor>> out;
  for (const Entry& e : parse("load_tensors", path, bytes)) out.emplace_back(e.name, to_tensor(e));
  return out;
}

void save(const nn::Module& module, const std::string& path) {
  write_tensors("save", path, module_state(module));
}

void load(nn::Module& module, const std::string& path) {
  const std::string op = "load";
  const std::vector<uint8_t> bytes = read_file(op, path);
  const std::vector<Entry> entries = parse(op, path, bytes);
  const std::vector<std::pair<std::string, Tensor>> state = module_state(module);

  // Every mismatch at once, so one failed load tells the whole story.
  std::unordered_map<std::string, const Entry*> by_name;
  for (const Entry& e : entries) by_name.emplace(e.name, &e);
  std::unordered_set<std::string> expected;
  std::vector<std::string> problems;
  for (const auto& [name, t] : state) {
    expected.insert(name);
    auto it = by_name.find(name);
    if (it == by_name.end()) {
      problems.push_back(
          absl::StrCat("missing entry '", name, "' (", describe(t.dtype(), t.shape()), ")"));
      continue;
    }
    const Entry& e = *it->second;
    if (e.dtype != t.dtype() || e.shape != t.shape()) {
      problems.push_back(absl::StrCat("entry '", name, "' is ", describe(e.dtype, e.shape),
                                      " but the module's is ", describe(t.dtype(), t.shape())));
    }
  }
  for (const Entry& e : entries) {
    if (!expected.contains(e.name)) {
      problems.push_back(absl::StrCat("unexpected entry '", e.name, "' (",
                                      describe(e.dtype, e.shape), ") that the ", module.name(),
                                      " does not have"));
    }
  }
  if (!problems.empty()) {
    throw Error(absl::StrCat(op, ": '", path, "' does not match the ", module.name(), ": ",
                             absl::StrJoin(problems, "; "), ". The module is unchanged"));
  }

  // Build every value (device copies may fail) before swapping any in.
  std::vector<ir::NodePtr> values;
  for (const auto& [name, t] : state) {
    Tensor v = to_tensor(*by_name.at(name));
    if (v.device() != t.device()) v = v.to(t.device());
    values.push_back(detail::node_of(v, op));
  }
  for (size_t i = 0; i < state.size(); ++i) state[i].second.impl()->set_node(values[i]);
}

}  // namespace smelt
