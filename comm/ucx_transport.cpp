// UcxTransport: worker setup, the progress thread's event loop, plan execution and failure
// handling (see ucx_transport.hpp for the design).
#include "comm/ucx_transport.hpp"

#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <ucp/api/ucp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <list>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>

namespace troupe {

namespace {

void check_ucs(ucs_status_t status, const char* call) {
  if (status != UCS_OK) {
    throw std::runtime_error(std::string("UCX: ") + call + " failed: " + ucs_status_string(status));
  }
}

// Zero-byte transfers still need a valid address.
std::byte empty_buffer[1];

// How a dead peer is named in the errors of the collectives it fails, whichever path noticed it
// first (the peer watch, or UCX's own endpoint error): "world rank R lost: why".
std::string lost_peer(int peer, const std::string& why) {
  return "world rank " + std::to_string(peer) + " lost: " + why;
}

}  // namespace

struct UcxTransport::Impl {
  struct Op;

  // One posted UCX request of an operation; the request's callback finds it through user_data.
  struct InFlight {
    Impl* impl = nullptr;
    Op* op = nullptr;
    void* request = nullptr;  // the UCX request while it is posted and not completed
    bool done = false;        // the completion was reported (then `request` is freed)
    bool is_recv = false;
    int peer = 0;
    std::size_t bytes = 0;
  };

  // A plan being executed: which phase, and how many of its transfers are still outstanding.
  struct Op {
    std::shared_ptr<UcxPlan> plan;
    std::size_t phase = 0;
    std::size_t outstanding = 0;
    bool finished = false;  // the request was completed or failed
    std::list<InFlight> in_flight;
    std::vector<int> peers;
  };

  struct EndpointContext {
    Impl* impl = nullptr;
    int peer = 0;
  };

  int rank = 0;
  int size = 1;
  bool peer_error_handling = true;
  ucp_context_h context = nullptr;
  ucp_worker_h worker = nullptr;
  int worker_fd = -1;
  int wake_fd = -1;
  std::vector<ucp_ep_h> endpoints;  // by world rank; null for this rank
  std::vector<EndpointContext> endpoint_contexts;
  std::atomic<std::uint16_t> next_id{0};

  std::mutex queue_mutex;
  std::vector<std::shared_ptr<UcxPlan>> queue;    // submitted, not yet started
  std::vector<std::pair<int, std::string>> lost;  // peer_lost() reports, not yet handled
  std::atomic<bool> stopping{false};
  std::thread progress_thread;

  // Progress thread only.
  std::list<Op> ops;
  std::map<int, std::string> dead_peers;  // world rank -> why

  ~Impl();
  void run();
  void start(std::shared_ptr<UcxPlan> plan);
  void post_phase(Op& op);
  void transfer_done(InFlight& transfer, ucs_status_t status, std::size_t received);
  void fail(Op& op, const std::string& reason);
  void peer_failed(int peer, const std::string& reason);
  void reap();
  void wake();
  void close_endpoints();

  static void send_callback(void* request, ucs_status_t status, void* user_data);
  static void recv_callback(void* request, ucs_status_t status, const ucp_tag_recv_info_t* info,
                            void* user_data);
  static void endpoint_error(void* arg, ucp_ep_h ep, ucs_status_t status);
};

UcxTransport::UcxTransport() : impl_(std::make_unique<Impl>()) {}

std::shared_ptr<UcxTransport> UcxTransport::connect(int rank, int world_size,
                                                    RendezvousClient& store,
                                                    const UcxOptions& options) {
  if (world_size < 1 || rank < 0 || rank >= world_size) {
    throw std::invalid_argument("UCX transport: rank " + std::to_string(rank) + " of world size " +
                                std::to_string(world_size) +
                                " is not allowed: rank must be in [0, " +
                                std::to_string(world_size) + ")");
  }
  std::shared_ptr<UcxTransport> transport(new UcxTransport());
  Impl& impl = *transport->impl_;
  impl.rank = rank;
  impl.size = world_size;
  impl.peer_error_handling = options.peer_error_handling;

  ucp_config_t* config = nullptr;
  check_ucs(ucp_config_read(nullptr, nullptr, &config), "ucp_config_read");
  ucp_params_t params{};
  params.field_mask = UCP_PARAM_FIELD_FEATURES | UCP_PARAM_FIELD_ESTIMATED_NUM_EPS;
  params.features = UCP_FEATURE_TAG | UCP_FEATURE_WAKEUP;
  params.estimated_num_eps = static_cast<std::size_t>(world_size);
  const ucs_status_t init = ucp_init(&params, config, &impl.context);
  ucp_config_release(config);
  check_ucs(init, "ucp_init");

  ucp_worker_params_t worker_params{};
  worker_params.field_mask = UCP_WORKER_PARAM_FIELD_THREAD_MODE;
  worker_params.thread_mode = UCS_THREAD_MODE_SERIALIZED;  // setup here, then the progress thread
  check_ucs(ucp_worker_create(impl.context, &worker_params, &impl.worker), "ucp_worker_create");
  check_ucs(ucp_worker_get_efd(impl.worker, &impl.worker_fd), "ucp_worker_get_efd");
  impl.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl.wake_fd < 0) throw std::runtime_error(std::string("eventfd: ") + std::strerror(errno));

  ucp_address_t* address = nullptr;
  std::size_t address_bytes = 0;
  check_ucs(ucp_worker_get_address(impl.worker, &address, &address_bytes),
            "ucp_worker_get_address");
  store.set(options.prefix + "/" + std::to_string(rank),
            std::string(reinterpret_cast<const char*>(address), address_bytes));
  ucp_worker_release_address(impl.worker, address);

  impl.endpoints.assign(world_size, nullptr);
  impl.endpoint_contexts.resize(world_size);
  for (int peer = 0; peer < world_size; ++peer) {
    if (peer == rank) continue;
    const std::string peer_address = store.get(options.prefix + "/" + std::to_string(peer));
    impl.endpoint_contexts[peer] = {&impl, peer};
    ucp_ep_params_t ep_params{};
    ep_params.field_mask = UCP_EP_PARAM_FIELD_REMOTE_ADDRESS |
                           UCP_EP_PARAM_FIELD_ERR_HANDLING_MODE | UCP_EP_PARAM_FIELD_ERR_HANDLER;
    ep_params.address = reinterpret_cast<const ucp_address_t*>(peer_address.data());
    ep_params.err_mode =
        options.peer_error_handling ? UCP_ERR_HANDLING_MODE_PEER : UCP_ERR_HANDLING_MODE_NONE;
    ep_params.err_handler.cb = &Impl::endpoint_error;
    ep_params.err_handler.arg = &impl.endpoint_contexts[peer];
    check_ucs(ucp_ep_create(impl.worker, &ep_params, &impl.endpoints[peer]), "ucp_ep_create");
  }
  impl.progress_thread = std::thread([&impl] { impl.run(); });
  spdlog::debug("UCX transport: rank {} of {} connected", rank, world_size);
  return transport;
}

UcxTransport::~UcxTransport() = default;

UcxTransport::Impl::~Impl() {
  if (progress_thread.joinable()) {
    stopping.store(true);
    wake();
    progress_thread.join();
  }
  // The progress thread has stopped: this thread owns the worker now.
  {
    std::lock_guard lock(queue_mutex);
    for (auto& plan : queue) plan->request->fail("the UCX transport shut down before it started");
    queue.clear();
  }
  for (auto& op : ops) {
    if (!op.finished) fail(op, "the UCX transport shut down");
  }
  if (worker != nullptr) close_endpoints();
  if (wake_fd >= 0) close(wake_fd);
  if (worker != nullptr) ucp_worker_destroy(worker);
  if (context != nullptr) ucp_cleanup(context);
}

int UcxTransport::rank() const {
  return impl_->rank;
}
int UcxTransport::size() const {
  return impl_->size;
}

std::uint16_t UcxTransport::next_communicator_id() {
  return impl_->next_id.fetch_add(1);
}

void UcxTransport::submit(std::shared_ptr<UcxPlan> plan) {
  {
    std::lock_guard lock(impl_->queue_mutex);
    impl_->queue.push_back(std::move(plan));
  }
  impl_->wake();
}

void UcxTransport::peer_lost(int peer, const std::string& reason) {
  {
    std::lock_guard lock(impl_->queue_mutex);
    impl_->lost.emplace_back(peer, lost_peer(peer, reason));
  }
  impl_->wake();
}

void UcxTransport::Impl::wake() {
  const std::uint64_t one = 1;
  // A full counter (EAGAIN) still leaves the fd readable, which is all a wake-up needs.
  [[maybe_unused]] const auto written = write(wake_fd, &one, sizeof one);
}

void UcxTransport::Impl::run() {
  while (true) {
    std::vector<std::shared_ptr<UcxPlan>> started;
    std::vector<std::pair<int, std::string>> lost_now;
    {
      std::lock_guard lock(queue_mutex);
      started.swap(queue);
      lost_now.swap(lost);
    }
    for (auto& [peer, reason] : lost_now) peer_failed(peer, reason);
    for (auto& plan : started) start(std::move(plan));
    while (ucp_worker_progress(worker) != 0) {
    }
    reap();
    if (stopping.load()) return;
    // Sleep until the worker or a submit() has something; arm reports BUSY when events are
    // already pending, and then we progress again instead of sleeping.
    const ucs_status_t armed = ucp_worker_arm(worker);
    if (armed == UCS_ERR_BUSY) continue;
    if (armed != UCS_OK) {
      spdlog::error("UCX: ucp_worker_arm failed: {}", ucs_status_string(armed));
      continue;
    }
    pollfd fds[2] = {{worker_fd, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    if (poll(fds, 2, -1) < 0 && errno != EINTR) {
      spdlog::error("UCX progress: poll failed: {}", std::strerror(errno));
    }
    if (fds[1].revents & POLLIN) {
      std::uint64_t count = 0;
      [[maybe_unused]] const auto got = read(wake_fd, &count, sizeof count);
    }
  }
}

void UcxTransport::Impl::start(std::shared_ptr<UcxPlan> plan) {
  ops.emplace_back();
  Op& op = ops.back();
  op.plan = std::move(plan);
  for (const auto& phase : op.plan->phases) {
    for (const auto* list : {&phase.sends, &phase.recvs}) {
      for (const auto& t : *list) op.peers.push_back(t.peer);
    }
  }
  for (int peer : op.peers) {
    auto dead = dead_peers.find(peer);
    if (dead != dead_peers.end()) return fail(op, dead->second);
  }
  post_phase(op);
}

void UcxTransport::Impl::post_phase(Op& op) {
  // Phases without transfers (or whose transfers all failed to post) advance at once.
  while (!op.finished && op.outstanding == 0) {
    if (op.phase == op.plan->phases.size()) {
      op.finished = true;
      // Staging goes back to its pool before the caller learns of the end, so that the caller's
      // next operation reuses it instead of allocating (and page-faulting) fresh buffers.
      op.plan->scratch.clear();
      op.plan->request->complete();
      return;
    }
    UcxPhase& phase = op.plan->phases[op.phase];
    if (!phase.sends.empty() || !phase.recvs.empty()) {
      // Count first: a transfer that fails to post may fail the op while others are pending.
      op.outstanding = phase.sends.size() + phase.recvs.size();
      // Receives first, so that arriving messages find them posted instead of being staged as
      // unexpected.
      for (int pass = 0; pass < 2; ++pass) {
        const bool is_recv = pass == 0;
        for (const UcxTransfer& t : is_recv ? phase.recvs : phase.sends) {
          op.in_flight.push_back({this, &op, nullptr, false, is_recv, t.peer, t.bytes});
          InFlight& record = op.in_flight.back();
          ucp_request_param_t param{};
          param.op_attr_mask = UCP_OP_ATTR_FIELD_CALLBACK | UCP_OP_ATTR_FIELD_USER_DATA |
                               UCP_OP_ATTR_FLAG_NO_IMM_CMPL;
          param.user_data = &record;
          void* data = t.bytes == 0 ? static_cast<void*>(empty_buffer) : t.data;
          ucs_status_ptr_t status;
          if (is_recv) {
            param.cb.recv = &Impl::recv_callback;
            status = ucp_tag_recv_nbx(worker, data, t.bytes, t.tag, ~ucp_tag_t{0}, &param);
          } else {
            param.cb.send = &Impl::send_callback;
            status = ucp_tag_send_nbx(endpoints[t.peer], data, t.bytes, t.tag, &param);
          }
          if (UCS_PTR_IS_ERR(status)) {
            record.done = true;
            transfer_done(record, UCS_PTR_STATUS(status), 0);
          } else if (!record.done) {
            record.request = status;
          }
        }
      }
      if (op.outstanding > 0) return;  // the callbacks continue from here
    }
    if (!op.finished && phase.then) phase.then();
    ++op.phase;
  }
}

void UcxTransport::Impl::transfer_done(InFlight& transfer, ucs_status_t status,
                                       std::size_t received) {
  Op& op = *transfer.op;
  --op.outstanding;
  if (!op.finished) {
    const std::string direction = transfer.is_recv ? "receive from" : "send to";
    if (status != UCS_OK) {
      fail(op, direction + " world rank " + std::to_string(transfer.peer) +
                   " failed: " + ucs_status_string(status));
    } else if (transfer.is_recv && received != transfer.bytes) {
      fail(op, "world rank " + std::to_string(transfer.peer) + " sent " + std::to_string(received) +
                   " bytes where " + std::to_string(transfer.bytes) +
                   " were expected (do the ranks agree on the sizes?)");
    }
  }
  if (op.outstanding == 0 && !op.finished) {
    UcxPhase& phase = op.plan->phases[op.phase];
    if (phase.then) phase.then();
    ++op.phase;
    post_phase(op);
  }
}

void UcxTransport::Impl::fail(Op& op, const std::string& reason) {
  if (op.finished) return;
  op.finished = true;
  op.plan->request->fail(reason);
  // Cancel what is still posted; the callbacks (maybe from inside ucp_request_cancel) release it.
  std::vector<void*> pending;
  for (const auto& t : op.in_flight) {
    if (t.request != nullptr) pending.push_back(t.request);
  }
  for (void* request : pending) ucp_request_cancel(worker, request);
}

void UcxTransport::Impl::peer_failed(int peer, const std::string& reason) {
  if (dead_peers.count(peer) != 0) return;
  // While shutting down, peers that finished first close their endpoints: not worth a warning.
  spdlog::log(stopping.load() ? spdlog::level::debug : spdlog::level::warn, "UCX rank {}: {}", rank,
              reason);
  dead_peers.emplace(peer, reason);
  for (auto& op : ops) {
    if (!op.finished && std::find(op.peers.begin(), op.peers.end(), peer) != op.peers.end()) {
      fail(op, reason);
    }
  }
}

void UcxTransport::Impl::reap() {
  ops.remove_if([](const Op& op) { return op.finished && op.outstanding == 0; });
}

// UCX calls these from ucp_worker_progress (or from ucp_request_cancel), on the progress thread.
void UcxTransport::Impl::send_callback(void* request, ucs_status_t status, void* user_data) {
  auto* transfer = static_cast<InFlight*>(user_data);
  ucp_request_free(request);
  transfer->request = nullptr;
  transfer->done = true;
  transfer->impl->transfer_done(*transfer, status, 0);
}

void UcxTransport::Impl::recv_callback(void* request, ucs_status_t status,
                                       const ucp_tag_recv_info_t* info, void* user_data) {
  auto* transfer = static_cast<InFlight*>(user_data);
  ucp_request_free(request);
  transfer->request = nullptr;
  transfer->done = true;
  transfer->impl->transfer_done(*transfer, status, status == UCS_OK ? info->length : 0);
}

void UcxTransport::Impl::endpoint_error(void* arg, ucp_ep_h, ucs_status_t status) {
  auto* context = static_cast<EndpointContext*>(arg);
  context->impl->peer_failed(context->peer,
                             lost_peer(context->peer, std::string("its UCX endpoint failed (") +
                                                          ucs_status_string(status) + ")"));
}

void UcxTransport::Impl::close_endpoints() {
  std::vector<void*> closing;
  for (int peer = 0; peer < size; ++peer) {
    if (endpoints[peer] == nullptr) continue;
    const bool dead = dead_peers.count(peer) != 0;
    // A dead peer cannot acknowledge a flush. With peer error handling its endpoint is released at
    // once; without it a forced close is undefined, so ucp_worker_destroy releases it instead.
    if (dead && !peer_error_handling) continue;
    ucp_request_param_t param{};
    param.op_attr_mask = UCP_OP_ATTR_FIELD_FLAGS;
    param.flags = dead ? UCP_EP_CLOSE_FLAG_FORCE : 0;
    ucs_status_ptr_t status = ucp_ep_close_nbx(endpoints[peer], &param);
    if (status != nullptr && !UCS_PTR_IS_ERR(status)) closing.push_back(status);
    endpoints[peer] = nullptr;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  for (void* request : closing) {
    while (ucp_request_check_status(request) == UCS_INPROGRESS &&
           std::chrono::steady_clock::now() < deadline) {
      ucp_worker_progress(worker);
    }
    ucp_request_free(request);
  }
  // Let cancelled transfers report back before the worker goes away.
  while (ucp_worker_progress(worker) != 0) {
  }
}

}  // namespace troupe
