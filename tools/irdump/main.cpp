// irdump: reads a graph in the IR text format (a .smir file, stdin, or a built-in example),
// verifies it, and prints it back as text or Graphviz, or evaluates it with the reference
// evaluator; runs compiler passes (--after: fusion prints the kernel partition) and code emitters
// (--emit: kernel IR, LLVM IR) from stages.h. Nothing is compiled to machine code or executed.
//
// Exit codes: 0 success, 1 bad input (a parse, verification or evaluation error, printed with
// its line and column), 2 bad usage (including a stage that is not available yet).
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <iterator>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "examples.h"
#include "ir/dot.h"
#include "ir/graph.h"
#include "ir/reference.h"
#include "ir/text.h"
#include "ir/verify.h"
#include "stages.h"

namespace smelt::irdump {
namespace {

constexpr int kBadInput = 1;
constexpr int kBadUsage = 2;

constexpr char kUsage[] =
    "usage: irdump [options] <file.smir | - | example-name>\n"
    "\n"
    "Reads a graph in the smelt IR text format (a file, '-' for stdin, or a built-in example\n"
    "when no file has that name), verifies it and prints it back.\n"
    "\n"
    "options:\n"
    "  --format=text|dot  print as IR text (default) or as a Graphviz digraph\n"
    "  --eval             evaluate with the reference evaluator on random inputs (fixed seed)\n"
    "                     and print each output's type and first values\n"
    "  --after=PASS       run the compiler pipeline up to and including PASS, then print\n"
    "                     (autodiff differentiates the output named by a directive line\n"
    "                     '# grad: %out wrt %a, %b' in the file, seeded with ones, and\n"
    "                     appends the gradients to 'return' in that order; without one,\n"
    "                     output 0 with respect to every floating input)\n"
    "  --emit=WHAT        print the code an emitter makes of the graph\n"
    "  --list-examples    list the built-in examples\n"
    "  --help             this text\n";

struct Options {
  std::string format = "text";
  bool eval = false;
  std::string after;
  std::string emit;
  std::string source;
};

int usage_error(absl::string_view what) {
  std::cerr << "irdump: " << what << "\n(irdump --help lists the options)\n";
  return kBadUsage;
}

std::string stage_list() {
  std::string s = "passes (--after):\n";
  for (const Pass& p : passes()) {
    absl::StrAppend(
        &s, absl::StrFormat("  %-10s %s%s\n", p.name, p.what,
                            p.available ? "" : " (not available yet; the pipeline skips it)"));
  }
  s += "emitters (--emit):\n";
  for (const Emitter& e : emitters()) {
    absl::StrAppend(&s, absl::StrFormat("  %-10s %s%s\n", e.name, e.what,
                                        e.emit ? "" : " (not available yet)"));
  }
  return s;
}

// Reads the graph named on the command line, with what --after=autodiff differentiates. Errors
// are prefixed with where it came from.
absl::StatusOr<ParsedSource> load(const std::string& source) {
  std::string text;
  if (source == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::error_code ec;
    const bool is_file = std::filesystem::is_regular_file(source, ec);
    if (!is_file) {
      if (const Example* ex = find_example(source)) {
        absl::StatusOr<ir::Graph> g = ex->build();
        if (!g.ok()) {
          return absl::Status(g.status().code(),
                              absl::StrCat("example '", source, "': ", g.status().message()));
        }
        GradSpec grad = default_grad_spec(*g);
        return ParsedSource{*std::move(g), std::move(grad)};
      }
      return absl::NotFoundError(absl::StrCat(
          "cannot read '", source, "': no such file or built-in example (see --list-examples)"));
    }
    std::ifstream in(source, std::ios::binary);
    std::stringstream buf;
    buf << in.rdbuf();
    if (!in) return absl::NotFoundError(absl::StrCat("cannot read '", source, "'"));
    text = buf.str();
  }
  absl::StatusOr<ParsedSource> parsed = parse_source(text);
  if (!parsed.ok()) {
    return absl::Status(parsed.status().code(), absl::StrCat(source == "-" ? "<stdin>" : source,
                                                             ": ", parsed.status().message()));
  }
  return parsed;
}

// Random values for every input, from a fixed seed so that runs compare.
absl::StatusOr<ir::LeafValues> random_inputs(const ir::Graph& g) {
  constexpr int64_t kMaxElements = int64_t{1} << 24;
  std::mt19937_64 rng(0x5eed);
  std::uniform_real_distribution<double> real(-1.0, 1.0);
  std::uniform_int_distribution<int64_t> small(0, 3);
  ir::LeafValues leaves;
  int64_t total = 0;
  for (const ir::Node* n : ir::print_order(g)) {
    if (n->op() != ir::OpCode::Input || n->realized()) continue;
    total += n->numel();
    if (n->numel() > kMaxElements || total > kMaxElements) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "--eval: the inputs have more than ", kMaxElements, " elements; too big to evaluate"));
    }
    ir::RefTensor t = ir::RefTensor::zeros(n->dtype(), n->shape());
    for (int64_t k = 0; k < t.numel(); ++k) {
      if (t.floating()) {
        t.set(k, real(rng));
      } else {
        t.set_int(k, n->dtype() == DType::Bool ? small(rng) % 2 : small(rng));
      }
    }
    leaves.emplace(n, std::move(t));
  }
  return leaves;
}

absl::StatusOr<std::string> evaluate(const ir::Graph& g) {
  absl::StatusOr<ir::LeafValues> leaves = random_inputs(g);
  if (!leaves.ok()) return leaves.status();
  absl::StatusOr<std::vector<ir::RefTensor>> values = ir::reference_evaluate(g.outputs, &*leaves);
  if (!values.ok()) return values.status();
  constexpr int64_t kShown = 8;
  std::string out;
  for (size_t i = 0; i < values->size(); ++i) {
    const ir::RefTensor& v = (*values)[i];
    absl::StrAppend(&out, "output ", i, ": ", ir::type_str({v.dtype, v.shape}), " = [");
    for (int64_t k = 0; k < std::min(v.numel(), kShown); ++k) {
      if (k > 0) out += ", ";
      if (v.floating()) {
        absl::StrAppend(&out, absl::StrFormat("%.6g", v.f[k]));
      } else if (v.dtype == DType::Bool) {
        out += v.i[k] ? "true" : "false";
      } else {
        absl::StrAppend(&out, v.i[k]);
      }
    }
    if (v.numel() > kShown) absl::StrAppend(&out, ", ... (", v.numel(), " values)");
    out += "]\n";
  }
  return out;
}

int run(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    absl::string_view arg = argv[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage << "\n" << stage_list();
      return 0;
    }
    if (arg == "--list-examples") {
      for (const Example& e : examples()) {
        std::cout << absl::StrFormat("%-10s %s\n", e.name, e.what);
      }
      return 0;
    }
    if (arg == "--eval") {
      opt.eval = true;
    } else if (absl::ConsumePrefix(&arg, "--format=")) {
      opt.format = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--after=")) {
      opt.after = std::string(arg);
    } else if (absl::ConsumePrefix(&arg, "--emit=")) {
      opt.emit = std::string(arg);
    } else if (arg.size() > 1 && arg[0] == '-') {
      return usage_error(absl::StrCat("unknown option '", arg, "'"));
    } else if (!opt.source.empty()) {
      return usage_error(absl::StrCat("more than one input: '", opt.source, "' and '", arg, "'"));
    } else {
      opt.source = std::string(arg);
    }
  }
  if (opt.source.empty()) return usage_error("no input given");
  if (opt.format != "text" && opt.format != "dot") {
    return usage_error(absl::StrCat("--format=", opt.format, ": expected text or dot"));
  }
  if (!opt.emit.empty() && opt.eval) return usage_error("--emit and --eval exclude each other");
  // Stage names are checked before the input is read: a misspelt one is a usage error.
  auto named = [](auto rows, absl::string_view name) {
    for (const auto& r : rows) {
      if (r.name == name) return true;
    }
    return false;
  };
  if (!opt.after.empty()) {
    if (!named(passes(), opt.after)) {
      return usage_error(absl::StrCat("--after=", opt.after, ": unknown pass\n", stage_list()));
    }
    const Pass* pass = find_pass(opt.after);
    if (!pass->available) {
      return usage_error(absl::StrCat("--after=", opt.after, ": the ", opt.after,
                                      " pass does not exist yet (not available yet)"));
    }
    if (pass->print != nullptr && opt.format == "dot" && opt.emit.empty() && !opt.eval) {
      return usage_error(absl::StrCat("--after=", opt.after, " prints text only"));
    }
  }
  if (!opt.emit.empty()) {
    if (!named(emitters(), opt.emit)) {
      return usage_error(absl::StrCat("--emit=", opt.emit, ": unknown emitter\n", stage_list()));
    }
    for (const Emitter& e : emitters()) {
      if (e.name == opt.emit && e.emit == nullptr) {
        return usage_error(
            absl::StrCat("--emit=", opt.emit, ": the ", e.name, " emitter is not available yet"));
      }
    }
  }

  absl::StatusOr<ParsedSource> parsed = load(opt.source);
  if (!parsed.ok()) {
    std::cerr << "irdump: " << parsed.status().message() << "\n";
    return kBadInput;
  }
  absl::StatusOr<ir::Graph> g = std::move(parsed->graph);
  if (absl::Status s = ir::verify(*g); !s.ok()) {
    std::cerr << "irdump: " << opt.source << ": " << s.message() << "\n";
    return kBadInput;
  }
  if (!opt.after.empty()) {
    absl::StatusOr<ir::Graph> next = run_passes_until(*std::move(g), parsed->grad, opt.after);
    if (!next.ok()) {
      std::cerr << "irdump: " << next.status().message() << "\n";
      return absl::IsUnimplemented(next.status()) || absl::IsInvalidArgument(next.status())
                 ? kBadUsage
                 : kBadInput;
    }
    g = *std::move(next);
  }
  if (!opt.emit.empty()) {
    absl::StatusOr<std::string> code = emit(*g, opt.emit);
    if (!code.ok()) {
      std::cerr << "irdump: " << code.status().message() << "\n";
      return absl::IsUnimplemented(code.status()) || absl::IsInvalidArgument(code.status())
                 ? kBadUsage
                 : kBadInput;
    }
    std::cout << *code;
    return 0;
  }
  if (opt.eval) {
    absl::StatusOr<std::string> values = evaluate(*g);
    if (!values.ok()) {
      std::cerr << "irdump: " << opt.source << ": " << values.status().message() << "\n";
      return kBadInput;
    }
    std::cout << *values;
    return 0;
  }
  if (const Pass* pass = opt.after.empty() ? nullptr : find_pass(opt.after);
      pass != nullptr && pass->print != nullptr) {
    absl::StatusOr<std::string> text = pass->print(*g);
    if (!text.ok()) {
      std::cerr << "irdump: " << opt.source << ": " << text.status().message() << "\n";
      return kBadInput;
    }
    std::cout << *text;
    return 0;
  }
  std::cout << (opt.format == "dot" ? ir::print_dot(*g) : ir::print_graph(*g));
  return 0;
}

}  // namespace
}  // namespace smelt::irdump

int main(int argc, char** argv) { return smelt::irdump::run(argc, argv); }
