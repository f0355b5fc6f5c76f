// Turns a validated RunConfig into the objects a run needs: the datasets (train and evaluation
// splits) and the model, with the MoE section mapped onto the layer's MoEConfig.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "configs/run_config.hpp"
#include "data/dataset.hpp"
#include "models/model.hpp"
#include "models/moe/moe_config.hpp"

namespace troupe {

struct RunSetup {
  std::shared_ptr<const Dataset> train;
  std::shared_ptr<const Dataset> eval;
  std::shared_ptr<Model> model;
  bool language_model = false;
  std::string data_summary;  // one line for the log
};

// The MoE layer configuration of the config's model (hidden_size and the expert MLP included).
MoEConfig moe_config_from(const RunConfig& config);

// Reads the data (filling the dataset-dependent model fields: image shape, classes, vocabulary)
// and builds the model. Throws std::runtime_error / std::invalid_argument with the config key
// and value that caused it. The model holds the experts of expert-parallel rank `ep_rank`.
RunSetup build_run(RunConfig& config, std::int64_t ep_rank = 0);

}  // namespace troupe
