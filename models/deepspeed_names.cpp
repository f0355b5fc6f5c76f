// Renaming between troupe's and DeepSpeed's MoE parameter names (see deepspeed_names.hpp).
#include "models/deepspeed_names.hpp"

#include <cstring>
#include <map>
#include <stdexcept>
#include <string_view>

namespace troupe {
namespace {

constexpr std::string_view kExperts = ".deepspeed_moe.experts.deepspeed_experts.";
constexpr std::string_view kGate = ".deepspeed_moe.gate.wg.weight";

// troupe's stacked expert tensors and the expert module's parameter names.
struct ExpertTensor {
  std::string_view troupe;   // "w1"
  std::string_view pytorch;  // "0.weight"
};
constexpr ExpertTensor kExpertTensors[] = {
    {"w1", "0.weight"}, {"b1", "0.bias"}, {"w2", "2.weight"}, {"b2", "2.bias"}};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

// Row `index` of a stacked tensor, as a tensor of its own.
Tensor stacked_item(const Tensor& stacked, std::int64_t index) {
  Shape shape(stacked.shape().begin() + 1, stacked.shape().end());
  Tensor out = Tensor::empty(shape, stacked.dtype());
  std::memcpy(out.raw_data(), static_cast<const char*>(stacked.raw_data()) + index * out.nbytes(),
              out.nbytes());
  return out;
}

Tensor stack(const std::vector<Tensor>& items, const std::string& name) {
  Shape shape = items.front().shape();
  for (const auto& t : items)
    if (t.shape() != shape || t.dtype() != items.front().dtype())
      throw std::invalid_argument("experts of " + name + " differ in shape or dtype: " +
                                  shape_string(shape) + " and " + shape_string(t.shape()));
  shape.insert(shape.begin(), static_cast<std::int64_t>(items.size()));
  Tensor out = Tensor::empty(shape, items.front().dtype());
  for (std::size_t i = 0; i < items.size(); ++i)
    std::memcpy(static_cast<char*>(out.raw_data()) + i * items[i].nbytes(), items[i].raw_data(),
                items[i].nbytes());
  return out;
}

// "L.experts.w1" → {"L", "w1"} when the name is a stacked expert (or residual mlp) tensor.
bool split_stacked(const std::string& name, std::string_view group, std::string& layer,
                   std::string_view& tensor) {
  for (const auto& e : kExpertTensors) {
    const std::string suffix = "." + std::string(group) + "." + std::string(e.troupe);
    if (ends_with(name, suffix)) {
      layer = name.substr(0, name.size() - suffix.size());
      tensor = e.troupe;
      return true;
    }
  }
  return false;
}

std::string_view pytorch_name(std::string_view troupe_tensor) {
  for (const auto& e : kExpertTensors)
    if (e.troupe == troupe_tensor) return e.pytorch;
  throw std::logic_error("unknown expert tensor");
}

}  // namespace

NamedTensors to_deepspeed_state_dict(const NamedTensors& troupe_parameters) {
  NamedTensors out;
  for (const auto& [name, tensor] : troupe_parameters) {
    std::string layer;
    std::string_view which;
    if (split_stacked(name, "experts", layer, which)) {
      for (std::int64_t i = 0; i < tensor.size(0); ++i)
        out.emplace_back(layer + std::string(kExperts) + std::to_string(i) + "." +
                             std::string(pytorch_name(which)),
                         stacked_item(tensor, i));
    } else if (split_stacked(name, "residual_mlp", layer, which)) {
      out.emplace_back(layer + ".mlp." + std::string(pytorch_name(which)), stacked_item(tensor, 0));
    } else if (ends_with(name, ".gate.weight")) {
      out.emplace_back(name.substr(0, name.size() - 12) + std::string(kGate), tensor.clone());
    } else {
      out.emplace_back(name, tensor.clone());
    }
  }
  return out;
}

NamedTensors from_deepspeed_state_dict(const NamedTensors& deepspeed_parameters) {
  // Experts are collected by (layer, tensor) and stacked at the place of the first one seen.
  struct Stacked {
    std::map<std::int64_t, Tensor> experts;
    std::size_t position = 0;
  };
  std::map<std::string, Stacked> stacked;
  NamedTensors out;
  for (const auto& [name, tensor] : deepspeed_parameters) {
    if (const auto at = name.find(kExperts); at != std::string::npos) {
      const std::string layer = name.substr(0, at);
      const std::string rest = name.substr(at + kExperts.size());  // "i.0.weight"
      const auto dot = rest.find('.');
      std::int64_t index = -1;
      try {
        index = std::stoll(rest.substr(0, dot));
      } catch (const std::exception&) {
      }
      const std::string param = dot == std::string::npos ? "" : rest.substr(dot + 1);
      std::string_view which;
      for (const auto& e : kExpertTensors)
        if (e.pytorch == param) which = e.troupe;
      if (index < 0 || which.empty())
        throw std::invalid_argument(
            "tensor " + name + " is not an expert parameter troupe knows: expected <layer>" +
            std::string(kExperts) +
            "<i>.{0,2}.{weight,bias} (an nn.Sequential(Linear, activation, Linear) expert)");
      const std::string key = layer + ".experts." + std::string(which);
      auto [it, fresh] = stacked.try_emplace(key);
      if (fresh) {
        it->second.position = out.size();
        out.emplace_back(key, Tensor());
      }
      if (!it->second.experts.emplace(index, tensor).second)
        throw std::invalid_argument("tensor " + name + " appears twice");
      continue;
    }
    if (ends_with(name, kGate)) {
      out.emplace_back(name.substr(0, name.size() - kGate.size()) + ".gate.weight", tensor.clone());
      continue;
    }
    bool residual = false;
    for (const auto& e : kExpertTensors) {
      const std::string suffix = ".mlp." + std::string(e.pytorch);
      if (ends_with(name, suffix)) {
        out.emplace_back(
            name.substr(0, name.size() - suffix.size()) + ".residual_mlp." + std::string(e.troupe),
            stack({tensor}, name));
        residual = true;
      }
    }
    if (!residual) out.emplace_back(name, tensor.clone());
  }
  for (auto& [key, s] : stacked) {
    std::vector<Tensor> items;
    std::int64_t expected = 0;
    for (auto& [index, tensor] : s.experts) {
      if (index != expected)
        throw std::invalid_argument("expert " + std::to_string(expected) + " of " + key +
                                    " is missing (experts must be numbered 0 to E - 1)");
      items.push_back(tensor);
      ++expected;
    }
    out[s.position].second = stack(items, key);
  }
  return out;
}

}  // namespace troupe
