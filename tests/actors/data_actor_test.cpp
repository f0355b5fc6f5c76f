// The data actor: prefetching never changes which training batches are handed out or the epoch
// they are reported in, get_position names the next unserved batch (so a data actor started there
// continues the sequence exactly), and the evaluation split is streamed once, in order, per
// rewind. Expected batches are derived by hand from Batcher::epoch_order, the documented order.
// The actor runs on CAF's deterministic test coordinator: each request's messages, the prefetch
// the actor sends itself included, run to completion before the reply is taken.
#include <catch2/catch.hpp>

#include <memory>
#include <vector>

#include "actors/data_actor.hpp"
#include "test_util/deterministic_system.hpp"

using namespace troupe;

namespace {

using Samples = std::vector<std::int64_t>;

constexpr std::int64_t kTrainSamples = 23;  // 5 batches of 4 per epoch, 3 samples dropped
constexpr std::int64_t kBatch = 4;
constexpr std::int64_t kBatchesPerEpoch = kTrainSamples / kBatch;
constexpr std::int64_t kEvalSamples = 10;  // eval batches of 4: 4, 4, then a partial 2
constexpr std::int64_t kEvalBatch = 4;
constexpr std::uint64_t kSeed = 11;

// Sample i has the input [i, 0.5 + i] and the target i, so every batch shows which samples it
// holds and whether inputs and targets stayed together.
class IotaDataset final : public Dataset {
 public:
  explicit IotaDataset(std::int64_t n) : n_(n) {}
  std::int64_t size() const override { return n_; }
  void gather(std::span<const std::int64_t> indices, Tensor& inputs,
              Tensor& targets) const override {
    check_indices("IotaDataset", indices, n_);
    const auto n = static_cast<std::int64_t>(indices.size());
    inputs = Tensor::empty({n, 2});
    targets = Tensor::empty({n}, DType::i32);
    for (std::int64_t i = 0; i < n; ++i) {
      const auto v = indices[static_cast<std::size_t>(i)];
      inputs.data<float>()[2 * i] = static_cast<float>(v);
      inputs.data<float>()[2 * i + 1] = 0.5f + static_cast<float>(v);
      targets.data<std::int32_t>()[i] = static_cast<std::int32_t>(v);
    }
  }

 private:
  std::int64_t n_;
};

DataActorOptions options(std::int64_t prefetch, BatcherPosition start = {}) {
  DataActorOptions o;
  o.train.batch_size = kBatch;
  o.train.seed = kSeed;
  o.eval_batch_size = kEvalBatch;
  o.prefetch = prefetch;
  o.start = start;
  return o;
}

// The samples of one handed-out batch, checking that inputs and targets agree.
Samples samples_of(const batch_data& b) {
  const Tensor& x = b.inputs.tensor();
  const Tensor& y = b.targets.tensor();
  REQUIRE(x.shape().size() == 2);
  REQUIRE(x.shape()[1] == 2);
  REQUIRE(y.shape() == Shape{x.shape()[0]});
  Samples out;
  for (std::int64_t i = 0; i < y.shape()[0]; ++i) {
    const auto v = y.data<std::int32_t>()[i];
    CHECK(x.data<float>()[2 * i] == static_cast<float>(v));
    CHECK(x.data<float>()[2 * i + 1] == 0.5f + static_cast<float>(v));
    out.push_back(v);
  }
  return out;
}

// One batch handed out, with the epoch its reply reported.
struct Served {
  Samples samples;
  std::int64_t reply_epoch = 0;
  bool epoch_finished = false;
};

struct Fixture {
  test::DeterministicSystem actors;
  std::shared_ptr<const Dataset> train = std::make_shared<IotaDataset>(kTrainSamples);
  std::shared_ptr<const Dataset> eval = std::make_shared<IotaDataset>(kEvalSamples);

  data_actor spawn(DataActorOptions o) {
    return spawn_data_actor(actors.system, train, eval, o, ActorContext{"data", nullptr});
  }

  // Asks `data` for `count` batches; returns each batch with its reply's epoch / finished flag.
  std::vector<Served> request(const data_actor& data, std::int64_t count, bool evaluation) {
    std::vector<Served> out;
    actors.ask(data, next_batches{count, evaluation}, [&](const batches_reply& r) {
      for (const auto& b : r.batches)
        out.push_back(Served{samples_of(b), r.epoch, r.epoch_finished});
    });
    return out;
  }

  std::vector<Served> train_batches(const data_actor& data,
                                    const std::vector<std::int64_t>& counts) {
    std::vector<Served> out;
    for (auto count : counts) {
      auto got = request(data, count, false);
      REQUIRE(static_cast<std::int64_t>(got.size()) == count);
      out.insert(out.end(), got.begin(), got.end());
    }
    return out;
  }

  data_position position(const data_actor& data) {
    data_position out{-1, -1};
    actors.ask(data, get_position{}, [&](const data_position& p) { out = p; });
    return out;
  }

  // set_position / rewind_eval: answered with an empty reply once done.
  template <class Msg>
  void send_and_wait(const data_actor& data, Msg msg) {
    actors.ask(data, std::move(msg), [] {});
  }
};

// Training batch k (counted from the start of training) as the documented order makes it: epoch
// k / 5's permutation cut into batches of 4, the 3 left-over samples dropped.
Samples expected_train_batch(std::int64_t k) {
  const Batcher reference(std::make_shared<IotaDataset>(kTrainSamples), options(0).train);
  const auto order = reference.epoch_order(k / kBatchesPerEpoch);
  const auto first = order.begin() + (k % kBatchesPerEpoch) * kBatch;
  return Samples(first, first + kBatch);
}

}  // namespace

TEST_CASE_METHOD(Fixture, "data actor: prefetching does not change the training batches") {
  // 15 batches = 3 epochs, in requests that span an epoch boundary (batches 3..6), end inside an
  // epoch, end exactly at its end (8..9) and cover exactly one epoch (10..14).
  const std::vector<std::int64_t> counts{3, 4, 1, 2, 5};
  const auto plain = train_batches(spawn(options(0)), counts);
  const auto prefetched = train_batches(spawn(options(2)), counts);
  REQUIRE(plain.size() == 15);
  REQUIRE(prefetched.size() == 15);

  // Both hand out the documented order, each reply reporting the epoch of its last batch
  // whatever the batcher has drawn ahead.
  std::int64_t k = 0;
  for (auto count : counts) {
    k += count;
    for (std::int64_t i = k - count; i < k; ++i) {
      INFO("batch " << i);
      const auto& a = plain[static_cast<std::size_t>(i)];
      const auto& b = prefetched[static_cast<std::size_t>(i)];
      CHECK(a.samples == expected_train_batch(i));
      CHECK(b.samples == a.samples);
      CHECK(a.reply_epoch == (k - 1) / kBatchesPerEpoch);
      CHECK(b.reply_epoch == a.reply_epoch);
      CHECK_FALSE(a.epoch_finished);
      CHECK_FALSE(b.epoch_finished);
    }
  }
  // The shuffle actually moved samples between epochs (otherwise "same order" proves little).
  CHECK(plain[0].samples != plain[5].samples);
}

TEST_CASE_METHOD(Fixture, "data actor: get_position names the next unserved batch") {
  const auto first = spawn(options(2));
  // After each prefix of requests the position is that of batch k (5 per epoch, 4 samples each),
  // though prefetching has drawn up to 2 requests' worth further; (1, 0) right after epoch 0's
  // last batch, never (0, 20).
  std::int64_t served = 0;
  for (std::int64_t count : {3, 2, 1}) {
    train_batches(first, {count});
    served += count;
    const data_position p = position(first);
    INFO("after " << served << " batches");
    CHECK(p.epoch == served / kBatchesPerEpoch);
    CHECK(p.index == (served % kBatchesPerEpoch) * kBatch);
  }
  const data_position p = position(first);

  // A second actor started there continues with exactly the batches the first hands out next,
  // across the next epoch boundary.
  const auto resumed = spawn(options(1, BatcherPosition{p.epoch, p.index}));
  const auto expected = train_batches(first, {2, 5});
  const auto got = train_batches(resumed, {4, 3});
  REQUIRE(got.size() == expected.size());
  for (std::size_t i = 0; i < got.size(); ++i) {
    INFO("batch " << served + static_cast<std::int64_t>(i));
    CHECK(got[i].samples == expected[i].samples);
    CHECK(got[i].samples == expected_train_batch(served + static_cast<std::int64_t>(i)));
  }

  // set_position discards what was prefetched: the first actor replays from the saved position.
  send_and_wait(first, set_position{p});
  CHECK(position(first).index == p.index);
  const auto replayed = train_batches(first, {7});
  for (std::size_t i = 0; i < replayed.size(); ++i)
    CHECK(replayed[i].samples == expected[i].samples);
}

TEST_CASE_METHOD(Fixture, "data actor: evaluation streams the split once per rewind") {
  const auto data = spawn(options(1));
  const std::vector<Samples> split{{0, 1, 2, 3}, {4, 5, 6, 7}, {8, 9}};
  auto samples = [](const std::vector<Served>& served) {
    std::vector<Samples> out;
    for (const auto& s : served) out.push_back(s.samples);
    return out;
  };
  auto finished = [](const std::vector<Served>& served) {
    return !served.empty() && served.front().epoch_finished;
  };

  // One batch at a time: only the reply carrying the partial last batch says finished.
  send_and_wait(data, rewind_eval{});
  for (std::size_t i = 0; i < split.size(); ++i) {
    INFO("eval batch " << i);
    const auto got = request(data, 1, true);
    REQUIRE(got.size() == 1);
    CHECK(got[0].samples == split[i]);
    CHECK(got[0].epoch_finished == (i + 1 == split.size()));
  }

  // Asking for more than is left stops at the end of the split.
  send_and_wait(data, rewind_eval{});
  auto got = request(data, 2, true);
  CHECK(samples(got) == std::vector<Samples>{split[0], split[1]});
  CHECK_FALSE(finished(got));
  got = request(data, 5, true);
  CHECK(samples(got) == std::vector<Samples>{split[2]});
  CHECK(finished(got));

  // Rewinding in the middle restarts from the first batch; training batches are unaffected.
  send_and_wait(data, rewind_eval{});
  CHECK(samples(request(data, 1, true)) == std::vector<Samples>{split[0]});
  const auto train = train_batches(data, {2});
  CHECK(train[0].samples == expected_train_batch(0));
  send_and_wait(data, rewind_eval{});
  got = request(data, 3, true);
  CHECK(samples(got) == split);
  CHECK(finished(got));
}
