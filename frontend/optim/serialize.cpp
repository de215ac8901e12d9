// Optimizer state in files: state_dict() through serialize.h's named-tensor format.
#include <smelt/optim.h>
#include <smelt/serialize.h>

namespace smelt {

void save(const optim::Optimizer& optimizer, const std::string& path) {
  save_tensors(path, optimizer.state_dict());
}

void load(optim::Optimizer& optimizer, const std::string& path) {
  // load_tensors checks the file as a whole before returning anything, and load_state_dict
  // checks every entry before changing anything: either step failing leaves the optimizer as it
  // was.
  optimizer.load_state_dict(load_tensors(path));
}

}  // namespace smelt
