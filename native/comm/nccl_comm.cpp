// The NCCL communicator: collectives on the device's stream (the stream the
// kernels use, so a collective follows the kernels that produced its input).
// Host arrays are staged through a device buffer; device buffers are reduced
// in place. Every wait polls the stream and NCCL's asynchronous error against
// the timeout, and a timed-out or failed communicator is aborted, so a dead
// rank is an error on the others, never a hang. Built only with CUDA.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "../cuda/runtime.h"
#include "nccl.h"

namespace syncbn {
namespace comm {

namespace {

ncclDataType_t nccl_type(ElemType t) {
  switch (t) {
    case ElemType::Float32: return ncclFloat32;
    case ElemType::Float64: return ncclFloat64;
    case ElemType::Int64: return ncclInt64;
  }
  return ncclFloat32;
}

// 'avg' is NCCL's own ncclAvg (NCCL 2.10+), so the division happens on the device.
ncclRedOp_t nccl_op(ReduceOp op, bool average) {
  if (average) return ncclAvg;
  switch (op) {
    case ReduceOp::Min: return ncclMin;
    case ReduceOp::Max: return ncclMax;
    case ReduceOp::Sum:
    case ReduceOp::Welford: break;
  }
  return ncclSum;
}

class NcclComm : public Communicator {
 public:
  NcclComm(ncclComm_t comm, int rank, int size, int device, std::chrono::milliseconds timeout)
      : Communicator(timeout), api_(nccl_api()), comm_(comm), rank_(rank), size_(size), device_(device) {}

  ~NcclComm() override {
    if (comm_ != nullptr) api_.CommDestroy(comm_);
    if (staging_ != nullptr) cuda::device_free(device_, staging_, capacity_);
  }

  const char* backend() const override { return "nccl"; }
  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int device() const override { return device_; }

  void all_reduce(void* data, size_t count, ElemType type, ReduceOp op) override {
    if (op == ReduceOp::Welford) {
      welford(static_cast<WelfordTriple*>(data), count);
      return;
    }
    const size_t bytes = count * elem_size(type);
    void* d = staging(bytes);
    cuda::copy_to_device(device_, d, data, bytes);
    all_reduce_device(d, count, type, op, false);
    cuda::copy_to_host(device_, data, d, bytes);
  }

  void all_reduce_device(void* data, size_t count, ElemType type, ReduceOp op, bool average) override {
    if (op == ReduceOp::Welford) throw CommError("nccl all_reduce: 'welford' reduces host triples, not device memory");
    run("all_reduce", [&](cudaStream_t s) { return api_.AllReduce(data, data, count, nccl_type(type), nccl_op(op, average), comm_, s); });
  }

  void all_gather(const void* in, void* out, size_t count, ElemType type) override {
    const size_t bytes = count * elem_size(type);
    char* d = static_cast<char*>(staging(bytes * (size_ + 1)));
    char* d_in = d + bytes * size_;
    cuda::copy_to_device(device_, d_in, in, bytes);
    all_gather_device(d_in, d, count, type);
    cuda::copy_to_host(device_, out, d, bytes * size_);
  }

  void all_gather_device(const void* in, void* out, size_t count, ElemType type) override {
    run("all_gather", [&](cudaStream_t s) { return api_.AllGather(in, out, count, nccl_type(type), comm_, s); });
  }

  void broadcast(void* data, size_t count, ElemType type, int root) override {
    const size_t bytes = count * elem_size(type);
    void* d = staging(bytes);
    cuda::copy_to_device(device_, d, data, bytes);
    broadcast_device(d, count, type, root);
    cuda::copy_to_host(device_, data, d, bytes);
  }

  void broadcast_device(void* data, size_t count, ElemType type, int root) override {
    if (root < 0 || root >= size_)
      throw CommError("nccl broadcast: root " + std::to_string(root) + " is not a rank of the group");
    run("broadcast", [&](cudaStream_t s) { return api_.Broadcast(data, data, count, nccl_type(type), root, comm_, s); });
  }

  void barrier() override {
    float one = 1.0f;
    all_reduce(&one, 1, ElemType::Float32, ReduceOp::Sum);
  }

 private:
  // NCCL has no user-defined reductions, so the exact Chan merge becomes two
  // sum all-reduces of O(C): counts and count-weighted means give the global
  // mean M; then each rank's m2 + n (mean - M)^2, all non-negative terms, sum
  // to the global m2 without cancellation.
  void welford(WelfordTriple* t, size_t n) {
    std::vector<double> first(2 * n), second(n);
    for (size_t i = 0; i < n; ++i) {
      first[2 * i] = t[i].count;
      first[2 * i + 1] = t[i].count > 0 ? t[i].count * t[i].mean : 0.0;
    }
    all_reduce(first.data(), 2 * n, ElemType::Float64, ReduceOp::Sum);
    std::vector<double> mean(n);
    for (size_t i = 0; i < n; ++i) {
      mean[i] = first[2 * i] > 0 ? first[2 * i + 1] / first[2 * i] : 0.0;
      const double d = t[i].mean - mean[i];
      second[i] = t[i].count > 0 ? t[i].m2 + t[i].count * d * d : 0.0;
    }
    all_reduce(second.data(), n, ElemType::Float64, ReduceOp::Sum);
    for (size_t i = 0; i < n; ++i) t[i] = WelfordTriple{first[2 * i], mean[i], second[i]};
  }

  void* staging(size_t bytes) {
    if (bytes > capacity_ || staging_ == nullptr) {
      if (staging_ != nullptr) cuda::device_free(device_, staging_, capacity_);
      staging_ = nullptr;
      staging_ = cuda::device_alloc(device_, std::max<size_t>(bytes, 4096), &capacity_);
    }
    return staging_;
  }

  std::string where(const char* what) const {
    return std::string("nccl ") + what + " (rank " + std::to_string(rank_) + " of " + std::to_string(size_) +
           ", cuda:" + std::to_string(device_) + ", timeout " + std::to_string(timeout_.count()) + " ms)";
  }

  template <typename Enqueue>
  void run(const char* what, Enqueue enqueue) {
    if (comm_ == nullptr)
      throw CommError(where(what) + ": the communicator was aborted by an earlier failure; destroy the process group and initialize it again");
    try {
      cuda::set_device(device_);
      cudaStream_t s = cuda::stream(device_);
      const ncclResult_t r = enqueue(s);
      if (r != ncclSuccess && r != ncclInProgress) fail(what, std::string("failed: ") + api_.GetErrorString(r));
      wait(what, s);
    } catch (const cuda::CudaError& e) {
      fail(what, std::string("failed: ") + e.what());
    }
  }

  // Polls instead of cudaStreamSynchronize: a peer that died or skipped the
  // collective would otherwise block this thread forever.
  void wait(const char* what, cudaStream_t s) {
    const auto deadline = std::chrono::steady_clock::now() + timeout_;
    for (;;) {
      const cudaError_t e = cudaStreamQuery(s);
      if (e == cudaSuccess) return;
      if (e != cudaErrorNotReady) fail(what, std::string("failed on the device: ") + cudaGetErrorString(e));
      ncclResult_t async = ncclSuccess;
      api_.CommGetAsyncError(comm_, &async);
      if (async != ncclSuccess && async != ncclInProgress) fail(what, std::string("failed: ") + api_.GetErrorString(async));
      if (std::chrono::steady_clock::now() > deadline)
        fail(what, "did not complete: a rank of the group died, or did not call the same collective");
      std::this_thread::sleep_for(std::chrono::microseconds(20));
    }
  }

  [[noreturn]] void fail(const char* what, const std::string& why) {
    if (comm_ != nullptr) api_.CommAbort(comm_);
    comm_ = nullptr;
    throw CommError(where(what) + " " + why);
  }

  const NcclApi& api_;
  ncclComm_t comm_;
  int rank_, size_, device_;
  void* staging_ = nullptr;
  size_t capacity_ = 0;
};

}  // namespace

std::unique_ptr<Communicator> nccl_connect(const NcclOptions& o) {
  const NcclApi& api = nccl_api();
  if (o.unique_id.size() != NCCL_UNIQUE_ID_BYTES)
    throw CommError("nccl: the unique id must have " + std::to_string(NCCL_UNIQUE_ID_BYTES) + " bytes, got " +
                    std::to_string(o.unique_id.size()));
  try {
    if (o.device >= cuda::device_count())
      throw CommError("nccl: CUDA device " + std::to_string(o.device) + " does not exist (" +
                      std::to_string(cuda::device_count()) + " devices)");
    // NCCL binds the communicator to the current device of this thread.
    cuda::set_device(o.device);
  } catch (const cuda::CudaError& e) {
    throw CommError(std::string("nccl: ") + e.what());
  }
  ncclUniqueId id{};
  std::memcpy(id.internal, o.unique_id.data(), NCCL_UNIQUE_ID_BYTES);
  ncclComm_t comm = nullptr;
  const ncclResult_t r = api.CommInitRank(&comm, o.size, id, o.rank);
  if (r != ncclSuccess)
    throw CommError("ncclCommInitRank (rank " + std::to_string(o.rank) + " of " + std::to_string(o.size) + ", cuda:" +
                    std::to_string(o.device) + ") failed: " + api.GetErrorString(r));
  return std::make_unique<NcclComm>(comm, o.rank, o.size, o.device, o.timeout);
}

}  // namespace comm
}  // namespace syncbn
