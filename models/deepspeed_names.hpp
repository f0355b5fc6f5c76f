// A troupe model's parameters under the names a PyTorch model gets when its MoE layers are built
// as DeepSpeed's MoE tutorial shows (the expert wrapped in deepspeed.moe.layer.MoE), and back.
//
//   troupe                               DeepSpeed / PyTorch state dict
//   L.gate.weight           [E, d]       L.deepspeed_moe.gate.wg.weight                   [E, d]
//   L.experts.w1            [E, f, d]    L.deepspeed_moe.experts.deepspeed_experts.i.0.weight [f,
//   d] L.experts.b1            [E, f]       L.deepspeed_moe.experts.deepspeed_experts.i.0.bias [f]
//   L.experts.w2            [E, d, f]    L.deepspeed_moe.experts.deepspeed_experts.i.2.weight [d,
//   f] L.experts.b2            [E, d]       L.deepspeed_moe.experts.deepspeed_experts.i.2.bias [d]
//   L.residual_mlp.{w1,b1,w2,b2} [1, …]  L.mlp.{0,2}.{weight,bias}           (use_residual)
//   L.coefficient.{weight,bias}          L.coefficient.{weight,bias}         (use_residual)
//   everything else                      the same name and shape (PyTorch's [out, in] layout)
//
// The expert is the PyTorch module nn.Sequential(nn.Linear(d, f), activation, nn.Linear(f, d)),
// whose parameters are named 0.* and 2.* (docs/INTEROP.md). Experts are numbered globally, as in a
// one-rank state dict.
#pragma once

#include "memory/safetensors.hpp"

namespace troupe {

// Renames (and splits per expert) a troupe state dict; tensors are copied, in a stable order.
NamedTensors to_deepspeed_state_dict(const NamedTensors& troupe_parameters);

// The inverse: stacks the experts again. Throws std::invalid_argument naming the tensor when an
// expert is missing, experts disagree in shape, or a name has the DeepSpeed MoE form but not a
// known parameter.
NamedTensors from_deepspeed_state_dict(const NamedTensors& deepspeed_parameters);

}  // namespace troupe
