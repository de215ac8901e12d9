#include "ir/text.h"

#include <charconv>
#include <string>
#include <string_view>
#include <system_error>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace smelt::ir {
namespace {

// An attribute that the node's type already says: not printed, and filled back in on parsing.
bool implied_by_type(const Node& n, AttrName name, const AttrValue& value) {
  if (name == "dtype") {
    const DType* t = std::get_if<DType>(&value);
    return t != nullptr && *t == n.dtype();
  }
  if (name == "shape") {
    const IntList* s = std::get_if<IntList>(&value);
    return s != nullptr && *s == n.shape();
  }
  return false;
}

std::string float_str(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  std::string s(buf, ec == std::errc() ? end : buf);
  // A float must not read as an int, so that the text says which kind each value is.
  if (s.find_first_of(".e") == std::string::npos && s.find("inf") == std::string::npos &&
      s.find("nan") == std::string::npos) {
    s += ".0";
  }
  return s;
}

// ---- parsing -----------------------------------------------------------------------------------

bool is_name_char(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '.';
}

// More elements than any tensor can have; a bound that keeps numel() far from overflowing.
constexpr int64_t kMaxElements = int64_t{1} << 53;

// A number token: what an int or float literal may be made of ("-1e-05", "inf", "nan").
bool is_number_char(char c) { return is_name_char(c) || c == '-' || c == '+'; }

// One line of text under a cursor; every error names the line and the column it points at.
class LineParser {
 public:
  LineParser(absl::string_view line, int line_no) : line_(line), line_no_(line_no) {}

  size_t pos() const { return pos_; }
  char peek() const { return pos_ < line_.size() ? line_[pos_] : '\0'; }

  void skip_ws() {
    while (pos_ < line_.size() &&
           (line_[pos_] == ' ' || line_[pos_] == '\t' || line_[pos_] == '\r')) {
      ++pos_;
    }
  }

  // Nothing but blanks and a comment left.
  bool at_end() {
    skip_ws();
    return pos_ >= line_.size() || line_[pos_] == '#';
  }

  bool consume(char c) {
    if (pos_ >= line_.size() || line_[pos_] != c) return false;
    ++pos_;
    return true;
  }

  absl::string_view name() {
    size_t start = pos_;
    while (pos_ < line_.size() && is_name_char(line_[pos_])) ++pos_;
    return line_.substr(start, pos_ - start);
  }

  absl::string_view number_token() {
    size_t start = pos_;
    while (pos_ < line_.size() && is_number_char(line_[pos_])) ++pos_;
    return line_.substr(start, pos_ - start);
  }

  // What the cursor is at, for an error message: "'foo'" or "end of line".
  std::string here() const { return describe(pos_); }

  std::string describe(size_t at) const {
    if (at >= line_.size()) return "end of line";
    size_t end = at;
    while (end < line_.size() && end - at < 20 && line_[end] != ' ' && line_[end] != '\t') ++end;
    if (end == at) end = at + 1;
    return absl::StrCat("'", absl::CEscape(line_.substr(at, end - at)), "'");
  }

  absl::Status error_at(size_t at, absl::string_view what) const {
    return absl::InvalidArgumentError(
        absl::StrCat("line ", line_no_, ", column ", at + 1, ": ", what));
  }
  absl::Status error(absl::string_view what) const { return error_at(pos_, what); }

  absl::Status expect(char c, absl::string_view context) {
    if (consume(c)) return absl::OkStatus();
    return error(absl::StrCat("expected '", std::string(1, c), "' ", context, ", found ", here()));
  }

  absl::StatusOr<int64_t> integer() {
    size_t start = pos_;
    absl::string_view tok = number_token();
    int64_t v = 0;
    auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    if (tok.empty() || ec == std::errc::invalid_argument || end != tok.data() + tok.size()) {
      return error_at(start, absl::StrCat("expected an integer, found ", describe(start)));
    }
    if (ec != std::errc()) {
      return error_at(start, absl::StrCat("integer ", tok, " is out of range"));
    }
    return v;
  }

  absl::StatusOr<double> floating() {
    size_t start = pos_;
    absl::string_view tok = number_token();
    double v = 0;
    auto [end, ec] = std::from_chars(tok.data(), tok.data() + tok.size(), v);
    if (tok.empty() || ec == std::errc::invalid_argument || end != tok.data() + tok.size()) {
      return error_at(start, absl::StrCat("expected a number, found ", describe(start)));
    }
    if (ec != std::errc()) {
      return error_at(start, absl::StrCat("number ", tok, " is out of range"));
    }
    return v;
  }

  absl::StatusOr<IntList> int_list() {
    IntList v;
    if (absl::Status s = expect('[', "to open a list"); !s.ok()) return s;
    skip_ws();
    if (consume(']')) return v;
    while (true) {
      skip_ws();
      absl::StatusOr<int64_t> x = integer();
      if (!x.ok()) return x.status();
      v.push_back(*x);
      skip_ws();
      if (consume(',')) continue;
      if (consume(']')) return v;
      return error(absl::StrCat("expected ',' or ']' in a list, found ", here()));
    }
  }

  absl::StatusOr<DType> dtype() {
    size_t start = pos_;
    absl::string_view word = name();
    std::optional<DType> t = dtype_from_name(std::string_view(word.data(), word.size()));
    if (word.empty() || !t) {
      return error_at(start, absl::StrCat("unknown dtype ", describe(start),
                                          " (expected f32, f64, i32, i64 or bool)"));
    }
    return *t;
  }

  // `f32[2, 3]`.
  absl::StatusOr<TypeInfo> type() {
    TypeInfo t;
    if (!is_name_char(peek())) {
      return error(absl::StrCat("expected a type like f32[2, 3], found ", here()));
    }
    absl::StatusOr<DType> d = dtype();
    if (!d.ok()) return d.status();
    t.dtype = *d;
    skip_ws();
    if (peek() != '[') {
      return error(absl::StrCat("expected '[' and the shape after the dtype, found ", here()));
    }
    size_t shape_pos = pos_;
    absl::StatusOr<IntList> dims = int_list();
    if (!dims.ok()) return dims.status();
    if (absl::Status s = check_shape(*dims, shape_pos); !s.ok()) return s;
    t.shape = *std::move(dims);
    return t;
  }

  // Rejects what no real tensor can be, before a type rule computes a numel that overflows.
  absl::Status check_shape(const IntList& dims, size_t at) const {
    bool overflow = false;
    int64_t n = 1;  // of the nonzero dims: a type rule may multiply them in any order
    for (int64_t dim : dims) {
      if (dim < 0) {
        return error_at(at, absl::StrCat("negative dimension in shape ", shape_str(dims)));
      }
      overflow |= __builtin_mul_overflow(n, dim == 0 ? 1 : dim, &n);
    }
    if (overflow || n > kMaxElements) {
      return error_at(at, absl::StrCat("shape ", shape_str(dims), " has too many elements"));
    }
    return absl::OkStatus();
  }

  // Parses a value of the kind the op's schema gives the attribute.
  absl::StatusOr<AttrValue> attr_value(const AttrSpec& spec) {
    size_t start = pos_;
    switch (spec.kind) {
      case AttrKind::Bool: {
        absl::string_view w = name();
        if (w == "true") return AttrValue(true);
        if (w == "false") return AttrValue(false);
        return error_at(start, absl::StrCat("attribute '", spec.name.str(),
                                            "' expects true or false, found ", describe(start)));
      }
      case AttrKind::Int: {
        absl::StatusOr<int64_t> v = integer();
        if (!v.ok()) return v.status();
        return AttrValue(*v);
      }
      case AttrKind::Float: {
        absl::StatusOr<double> v = floating();
        if (!v.ok()) return v.status();
        return AttrValue(*v);
      }
      case AttrKind::IntList: {
        absl::StatusOr<IntList> v = int_list();
        if (!v.ok()) return v.status();
        if (spec.name == "shape") {
          if (absl::Status s = check_shape(*v, start); !s.ok()) return s;
        }
        return AttrValue(*std::move(v));
      }
      case AttrKind::DType: {
        absl::StatusOr<DType> v = dtype();
        if (!v.ok()) return v.status();
        return AttrValue(*v);
      }
    }
    return error_at(start, "unknown attribute kind");
  }

  // `{name=value, ...}` checked against the op's schema.
  absl::StatusOr<Attrs> attrs(const OpDef& def) {
    Attrs attrs;
    if (absl::Status s = expect('{', "to open the attributes"); !s.ok()) return s;
    skip_ws();
    if (consume('}')) return attrs;
    while (true) {
      skip_ws();
      size_t name_pos = pos_;
      absl::string_view n = name();
      if (n.empty()) return error(absl::StrCat("expected an attribute name, found ", here()));
      const AttrSpec* spec = nullptr;
      for (const AttrSpec& s : def.attrs) {
        if (s.name.str() == n) spec = &s;
      }
      if (spec == nullptr) {
        std::vector<absl::string_view> known;
        for (const AttrSpec& s : def.attrs) known.push_back(s.name.str());
        return error_at(
            name_pos,
            absl::StrCat(def.name, ": unknown attribute '", n, "' (",
                         known.empty() ? "it has none" : "it has " + absl::StrJoin(known, ", "),
                         ")"));
      }
      if (attrs.has(spec->name)) {
        return error_at(name_pos, absl::StrCat("attribute '", n, "' is given twice"));
      }
      skip_ws();
      if (absl::Status s = expect('=', absl::StrCat("after attribute '", n, "'")); !s.ok())
        return s;
      skip_ws();
      absl::StatusOr<AttrValue> v = attr_value(*spec);
      if (!v.ok()) return v.status();
      attrs.set(spec->name, *std::move(v));
      skip_ws();
      if (consume(',')) continue;
      if (consume('}')) return attrs;
      return error(absl::StrCat("expected ',' or '}' in the attributes, found ", here()));
    }
  }

 private:
  absl::string_view line_;
  int line_no_;
  size_t pos_ = 0;
};

struct Defined {
  NodePtr node;
  int line = 0;
};

class GraphParser {
 public:
  absl::StatusOr<Graph> parse(absl::string_view text) {
    int line_no = 0;
    size_t start = 0;
    while (start <= text.size()) {
      size_t end = text.find('\n', start);
      if (end == absl::string_view::npos) end = text.size();
      ++line_no;
      if (absl::Status s = parse_line(text.substr(start, end - start), line_no); !s.ok()) return s;
      start = end + 1;
    }
    if (!returned_) {
      return absl::InvalidArgumentError(
          absl::StrCat("line ", line_no, ", column 1: missing 'return' at the end of the graph"));
    }
    return std::move(graph_);
  }

 private:
  absl::Status parse_line(absl::string_view line, int line_no) {
    LineParser p(line, line_no);
    if (p.at_end()) return absl::OkStatus();
    if (returned_) return p.error(absl::StrCat("unexpected ", p.here(), " after 'return'"));
    if (p.peek() == '%') return parse_node(p, line_no);
    size_t word_pos = p.pos();
    if (p.name() == "return") return parse_return(p);
    return p.error_at(word_pos, absl::StrCat("expected '%name = op ...' or 'return', found ",
                                             p.describe(word_pos)));
  }

  // `%name`, defined on an earlier line.
  absl::StatusOr<NodePtr> operand(LineParser& p) {
    size_t at = p.pos();
    if (!p.consume('%'))
      return p.error(absl::StrCat("expected an operand '%name', found ", p.here()));
    absl::string_view n = p.name();
    if (n.empty()) return p.error_at(at, "expected a name after '%'");
    auto it = defined_.find(n);
    if (it == defined_.end()) return p.error_at(at, absl::StrCat("%", n, " is not defined"));
    return it->second.node;
  }

  absl::StatusOr<std::vector<NodePtr>> operands(LineParser& p) {
    std::vector<NodePtr> v;
    p.skip_ws();
    if (p.peek() != '%') return v;
    while (true) {
      absl::StatusOr<NodePtr> x = operand(p);
      if (!x.ok()) return x.status();
      v.push_back(*std::move(x));
      p.skip_ws();
      if (!p.consume(',')) return v;
      p.skip_ws();
    }
  }

  absl::Status parse_node(LineParser& p, int line_no) {
    size_t name_pos = p.pos();
    p.consume('%');
    std::string n(p.name());
    if (n.empty()) return p.error_at(name_pos, "expected a name after '%'");
    if (auto it = defined_.find(n); it != defined_.end()) {
      return p.error_at(name_pos,
                        absl::StrCat("%", n, " is already defined on line ", it->second.line));
    }
    p.skip_ws();
    if (absl::Status s = p.expect('=', absl::StrCat("after %", n)); !s.ok()) return s;
    p.skip_ws();
    size_t op_pos = p.pos();
    absl::string_view op = p.name();
    if (op.empty()) return p.error(absl::StrCat("expected an op name, found ", p.here()));
    const OpDef* def = find_op(op);
    if (def == nullptr) return p.error_at(op_pos, absl::StrCat("unknown op '", op, "'"));
    p.skip_ws();
    size_t type_pos = p.pos();
    absl::StatusOr<TypeInfo> printed = p.type();
    if (!printed.ok()) return printed.status();
    absl::StatusOr<std::vector<NodePtr>> inputs = operands(p);
    if (!inputs.ok()) return inputs.status();
    Attrs attrs;
    p.skip_ws();
    if (p.peek() == '{') {
      absl::StatusOr<Attrs> a = p.attrs(*def);
      if (!a.ok()) return a.status();
      attrs = *std::move(a);
    }
    if (!p.at_end()) {
      return p.error(absl::StrCat("unexpected ", p.here(), " after the ", def->name, " node"));
    }
    // The attributes the type implies were not printed.
    for (const AttrSpec& spec : def->attrs) {
      if (attrs.has(spec.name)) continue;
      if (spec.name == "dtype" && spec.kind == AttrKind::DType) {
        attrs.set("dtype", printed->dtype);
      } else if (spec.name == "shape" && spec.kind == AttrKind::IntList) {
        // An optional shape is absent on a 0-d node (a 0-d constant), as it was when built.
        if (spec.optional && printed->shape.empty()) continue;
        attrs.set("shape", printed->shape);
      }
    }
    absl::StatusOr<NodePtr> node = Node::make(def->code, *std::move(inputs), std::move(attrs));
    if (!node.ok()) return p.error_at(op_pos, node.status().message());
    if ((*node)->type() != *printed) {
      return p.error_at(type_pos,
                        absl::StrCat(def->name, ": printed type ", type_str(*printed),
                                     " differs from the inferred ", type_str((*node)->type())));
    }
    defined_.emplace(std::move(n), Defined{*std::move(node), line_no});
    return absl::OkStatus();
  }

  absl::Status parse_return(LineParser& p) {
    absl::StatusOr<std::vector<NodePtr>> outs = operands(p);
    if (!outs.ok()) return outs.status();
    if (!p.at_end()) return p.error(absl::StrCat("unexpected ", p.here(), " after the outputs"));
    graph_.outputs = *std::move(outs);
    returned_ = true;
    return absl::OkStatus();
  }

  absl::flat_hash_map<std::string, Defined> defined_;
  Graph graph_;
  bool returned_ = false;
};

}  // namespace

std::string type_str(const TypeInfo& type) {
  return absl::StrCat(dtype_name(type.dtype), shape_str(type.shape));
}

std::string attr_value_str(const AttrValue& value) {
  return std::visit(
      [](const auto& v) -> std::string {
        using T = std::decay_t<decltype(v)>;
        if constexpr (std::is_same_v<T, bool>) {
          return v ? "true" : "false";
        } else if constexpr (std::is_same_v<T, int64_t>) {
          return absl::StrCat(v);
        } else if constexpr (std::is_same_v<T, double>) {
          return float_str(v);
        } else if constexpr (std::is_same_v<T, IntList>) {
          return shape_str(v);
        } else {
          return dtype_name(v);
        }
      },
      value);
}

std::string node_attrs_str(const Node& n) {
  if (n.realized()) return "";
  std::string out;
  for (const auto& [name, value] : n.attrs().items()) {
    if (implied_by_type(n, name, value)) continue;
    absl::StrAppend(&out, out.empty() ? "{" : ", ", name.str(), "=", attr_value_str(value));
  }
  if (!out.empty()) out += "}";
  return out;
}

std::vector<const Node*> print_order(const Graph& g) {
  // Like topo_order, but a realized node is a leaf even when it kept its inputs for autograd:
  // the printed graph must be the one its parse gives back, where that node is an input.
  std::vector<const Node*> order;
  absl::flat_hash_set<const Node*> visited;
  struct Frame {
    const Node* node;
    size_t next;
    size_t count;
  };
  std::vector<Frame> stack;
  auto push = [&](const Node* n) {
    stack.push_back({n, 0, n->realized() ? 0 : n->inputs().size()});
  };
  for (const NodePtr& root : g.outputs) {
    if (root == nullptr || !visited.insert(root.get()).second) continue;
    push(root.get());
    while (!stack.empty()) {
      Frame& f = stack.back();
      if (f.next < f.count) {
        const Node* in = f.node->inputs()[f.next++].get();
        if (in != nullptr && visited.insert(in).second) push(in);
      } else {
        order.push_back(f.node);
        stack.pop_back();
      }
    }
  }
  return order;
}

std::string print_graph(const Graph& g) {
  const std::vector<const Node*> order = print_order(g);
  absl::flat_hash_map<const Node*, size_t> number;
  number.reserve(order.size());
  std::string out = absl::StrCat(kTextHeader, "\n");
  for (size_t i = 0; i < order.size(); ++i) {
    const Node& n = *order[i];
    number[&n] = i;
    const bool realized = n.realized();
    absl::StrAppend(&out, "%", i, " = ", realized ? op_name(OpCode::Input) : n.def().name, " ",
                    type_str(n.type()));
    if (!realized) {
      bool first = true;
      for (const NodePtr& in : n.inputs()) {
        absl::StrAppend(&out, first ? " %" : ", %", number.at(in.get()));
        first = false;
      }
    }
    std::string attrs = node_attrs_str(n);
    if (!attrs.empty()) absl::StrAppend(&out, " ", attrs);
    out += "\n";
  }
  out += "return";
  bool first = true;
  for (const NodePtr& o : g.outputs) {
    absl::StrAppend(&out, first ? " " : ", ");
    if (o == nullptr) {
      out += "%<null>";
    } else {
      absl::StrAppend(&out, "%", number.at(o.get()));
    }
    first = false;
  }
  out += "\n";
  return out;
}

absl::StatusOr<Graph> parse_graph(absl::string_view text) { return GraphParser().parse(text); }

}  // namespace smelt::ir
