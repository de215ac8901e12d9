// Fashion-MNIST, the introduction's second and third programs: a data loader, a model (an MLP
// 784-256-10, or a small CNN: two 3x3 convolutions with max pooling), cross-entropy, Adam, a
// progress bar, test accuracy, and the learning curve as CSV.
//
//   fashion_mnist [--model mlp|cnn] [--epochs N] [--batch B] [--lr X] [--device cpu|cuda]
//                 [--csv curve.csv] [--data /usr/share/datasets/fashion-mnist] [--show-kernels]
//
// --show-kernels prints, after training, what one training step compiles to: the fused kernels
// of forward + backward, with the reason for every kernel boundary.
#include <smelt/smelt.h>

#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>

#include "progress.h"

using namespace smelt;

namespace {

struct Args {
  std::string model = "mlp";
  int epochs = 15;
  int64_t batch = 0;  // 0: 128 for the MLP, 64 for the CNN
  double lr = 1e-3;
  std::string device = "cpu";
  std::string csv;
  std::string data = "/usr/share/datasets/fashion-mnist";
  bool show_kernels = false;
};

Args parse(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << arg << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (arg == "--model") {
      a.model = value();
      if (a.model != "mlp" && a.model != "cnn") {
        std::cerr << "--model: mlp or cnn, not " << a.model << "\n";
        std::exit(2);
      }
    } else if (arg == "--epochs") {
      a.epochs = std::atoi(value().c_str());
    } else if (arg == "--batch") {
      a.batch = std::atoll(value().c_str());
    } else if (arg == "--lr") {
      a.lr = std::atof(value().c_str());
    } else if (arg == "--device") {
      a.device = value();
    } else if (arg == "--csv") {
      a.csv = value();
    } else if (arg == "--data") {
      a.data = value();
    } else if (arg == "--show-kernels") {
      a.show_kernels = true;
    } else {
      std::cerr << "usage: fashion_mnist [--model mlp|cnn] [--epochs N] [--batch B] [--lr X] "
                   "[--device cpu|cuda] [--csv file] [--data dir] [--show-kernels]\n";
      std::exit(2);
    }
  }
  if (a.batch == 0) a.batch = a.model == "mlp" ? 128 : 64;
  return a;
}

nn::Sequential make_model(const std::string& name) {
  if (name == "mlp") {
    return nn::Sequential(nn::Flatten(), nn::Linear(784, 256), nn::ReLU(), nn::Linear(256, 10));
  }
  // [B, 1, 28, 28] -> [B, 32, 14, 14] -> [B, 64, 7, 7] -> 128 -> 10
  return nn::Sequential(nn::Conv2d(1, 32, 3, /*stride=*/1, /*padding=*/1), nn::ReLU(),
                        nn::MaxPool2d(2), nn::Conv2d(32, 64, 3, 1, 1), nn::ReLU(), nn::MaxPool2d(2),
                        nn::Flatten(), nn::Linear(64 * 7 * 7, 128), nn::ReLU(),
                        nn::Linear(128, 10));
}

// Fraction of `loader`'s examples whose arg-max class is the target.
double accuracy(nn::Sequential& model, data::DataLoader& loader, Device device) {
  NoGradGuard no_grad;
  model->eval();
  int64_t correct = 0, total = 0;
  for (auto& batch : loader) {
    Tensor predicted = model(batch.data.to(device)).argmax(1);
    correct += (predicted == batch.target.to(device)).sum().item<int64_t>();
    total += batch.target.numel();
  }
  model->train();
  return total > 0 ? static_cast<double>(correct) / total : 0;
}

}  // namespace

int main(int argc, char** argv) {
  const Args args = parse(argc, argv);
  const Device device = args.device == "cuda" ? Device::cuda() : Device::cpu();
  manual_seed(0);

  data::FashionMNIST train_set(args.data, /*train=*/true);
  data::FashionMNIST test_set(args.data, /*train=*/false);
  data::DataLoader train(train_set, data::DataLoaderOptions().batch_size(args.batch).shuffle(true));
  data::DataLoader test(test_set, data::DataLoaderOptions().batch_size(1000));

  nn::Sequential model = make_model(args.model);
  model->to(device);
  optim::Adam opt(model->parameters(), optim::AdamOptions(args.lr));
  // The learning rate falls along a cosine to 0 over the run (changing it compiles nothing).
  optim::CosineAnnealingLR schedule(opt, args.epochs);
  nn::CrossEntropyLoss loss_fn;

  std::cout << "Fashion-MNIST, " << (args.model == "mlp" ? "MLP 784-256-10" : "CNN 2x conv3x3")
            << " on " << device << ": " << train_set.size() << " training and " << test_set.size()
            << " test images\n";
  examples::Progress progress(args.epochs, static_cast<int64_t>(train.size()));
  Tensor last_x, last_y;
  for (int epoch = 1; epoch <= args.epochs; ++epoch) {
    progress.start_epoch(epoch);
    int64_t b = 0;
    double shown_loss = 0;
    for (auto& batch : train) {
      Tensor x = batch.data.to(device), y = batch.target.to(device);
      opt.zero_grad();
      Tensor loss = loss_fn(model(x), y);
      loss.backward();
      opt.step();  // forward, backward and the update run here, as one compiled program
      // Reading the loss computes it again (it was not an output of the step): every 20 batches.
      if (b % 20 == 0) shown_loss = loss.item<float>();
      progress.update(b++, x.size(0), shown_loss);
      last_x = x;
      last_y = y;
    }
    progress.end_epoch(accuracy(model, test, device));
    schedule.step();
  }
  if (!args.csv.empty() && !progress.write_csv(args.csv)) {
    std::cerr << "cannot write " << args.csv << "\n";
    return 1;
  }
  if (args.show_kernels) {
    // One more step's forward and backward, compiled but not run: the fusion plan.
    Tensor loss = loss_fn(model(last_x), last_y);
    std::vector<Tensor> outputs = grad({loss}, model->parameters());
    outputs.push_back(loss);
    std::cout << "\nOne training step (forward + backward) compiles to:\n"
              << compiled_text(outputs, "fusion");
  }
  return 0;
}
