// Event-driven input projection for tclif_jax.event_kernel, as XLA FFI handlers (CPU).
//
// Per row r of the padded events (channels, counts), both (R, K):
//   tclif_event_matmul:           out[r, :] = sum_k counts[r, k] * kernel[channels[r, k], :]
//   tclif_event_matmul_transpose: dW[c, :]  = sum over (r, k) with channels[r, k] == c
//                                              of counts[r, k] * g[r, :]
// Entries with count 0 (padding) and channels outside 0..F-1 are skipped. Both sum
// every output element in an order fixed by the shapes (the forward in (r, k) order; the
// transpose per chunk of rows, then the chunks in order), so the results do not depend
// on the number of threads.

#include <cstdint>
#include <vector>

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using Ints = ffi::BufferR2<ffi::S32>;  // (rows, cols), row-major
using Floats = ffi::BufferR2<ffi::F32>;
using FloatsOut = ffi::ResultBufferR2<ffi::F32>;

namespace {

inline bool Live(int32_t channel, float count, int64_t num_channels) {
  return count != 0.0f && channel >= 0 && channel < num_channels;
}

ffi::Error CheckEvents(const Ints& channels, const Floats& counts) {
  auto c = channels.dimensions(), v = counts.dimensions();
  if (c[0] != v[0] || c[1] != v[1]) {
    return ffi::Error::InvalidArgument("event_matmul: channels and counts differ in shape");
  }
  return ffi::Error::Success();
}

// out (R, n) from channels, counts (R, K) and kernel (F, n); one row per iteration.
ffi::Error EventMatmulImpl(Ints channels, Floats counts, Floats kernel, FloatsOut out) {
  if (auto err = CheckEvents(channels, counts); err.failure()) return err;
  const int64_t rows = channels.dimensions()[0], k = channels.dimensions()[1];
  const int64_t num_channels = kernel.dimensions()[0], n = kernel.dimensions()[1];
  if (out->dimensions()[0] != rows || out->dimensions()[1] != n) {
    return ffi::Error::InvalidArgument("event_matmul: output shape is not (R, n)");
  }
  const int32_t* ch = channels.typed_data();
  const float* cn = counts.typed_data();
  const float* w = kernel.typed_data();
  float* o = out->typed_data();

#pragma omp parallel for schedule(static)
  for (int64_t r = 0; r < rows; ++r) {
    float* dst = o + r * n;
    for (int64_t j = 0; j < n; ++j) dst[j] = 0.0f;
    for (int64_t e = r * k; e < (r + 1) * k; ++e) {
      if (!Live(ch[e], cn[e], num_channels)) continue;
      const float v = cn[e];
      const float* src = w + static_cast<int64_t>(ch[e]) * n;
      for (int64_t j = 0; j < n; ++j) dst[j] += v * src[j];
    }
  }
  return ffi::Error::Success();
}

// The number of row chunks of the transpose: a function of the shapes only (never of the
// thread count), so that dW is summed in one order whatever the threads: up to 16
// chunks (so up to 16 threads share the first pass), with their partial sums
// (chunks x F x n floats) within 64 MiB.
int64_t TransposeChunks(int64_t rows, int64_t num_channels, int64_t n) {
  constexpr int64_t kMaxChunks = 16;
  constexpr int64_t kMaxPartialFloats = int64_t{16} << 20;  // 64 MiB of float32
  const int64_t per_chunk = num_channels * n > 0 ? num_channels * n : 1;
  int64_t chunks = kMaxPartialFloats / per_chunk;
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  if (chunks > rows) chunks = rows;
  return chunks < 1 ? 1 : chunks;
}

// dW (F, n) from channels, counts (R, K) and the output cotangent g (R, n). The rows are
// cut into a fixed number of chunks; each chunk adds its entries, in (r, k) order, into
// its own (F, n) partial sum, reading g row by row (each row once, from cache) while the
// partial stays in cache; then each element of dW is the sum of the partials in chunk
// order. Chunks and channels run in parallel; no two threads write the same memory.
ffi::Error EventMatmulTransposeImpl(Ints channels, Floats counts, Floats g,
                                    FloatsOut dkernel) {
  if (auto err = CheckEvents(channels, counts); err.failure()) return err;
  const int64_t rows = channels.dimensions()[0], k = channels.dimensions()[1];
  const int64_t num_channels = dkernel->dimensions()[0], n = dkernel->dimensions()[1];
  if (g.dimensions()[0] != rows || g.dimensions()[1] != n) {
    return ffi::Error::InvalidArgument("event_matmul_transpose: cotangent is not (R, n)");
  }
  const int32_t* ch = channels.typed_data();
  const float* cn = counts.typed_data();
  const float* gd = g.typed_data();
  float* dw = dkernel->typed_data();
  const int64_t size = num_channels * n;
  if (rows == 0 || size == 0) {
    for (int64_t i = 0; i < size; ++i) dw[i] = 0.0f;
    return ffi::Error::Success();
  }

  const int64_t chunks = TransposeChunks(rows, num_channels, n);
  std::vector<float> partial(chunks * size, 0.0f);

#pragma omp parallel for schedule(static, 1)
  for (int64_t c = 0; c < chunks; ++c) {
    float* acc = partial.data() + c * size;
    const int64_t first = rows * c / chunks, last = rows * (c + 1) / chunks;
    for (int64_t r = first; r < last; ++r) {
      const float* src = gd + r * n;
      for (int64_t e = r * k; e < (r + 1) * k; ++e) {
        if (!Live(ch[e], cn[e], num_channels)) continue;
        const float v = cn[e];
        float* dst = acc + static_cast<int64_t>(ch[e]) * n;
        for (int64_t j = 0; j < n; ++j) dst[j] += v * src[j];
      }
    }
  }

#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < num_channels; ++row) {
    float* dst = dw + row * n;
    for (int64_t j = 0; j < n; ++j) dst[j] = partial[row * n + j];
    for (int64_t c = 1; c < chunks; ++c) {
      const float* src = partial.data() + c * size + row * n;
      for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
    }
  }
  return ffi::Error::Success();
}

}  // namespace

// Arguments: channels (R, K), counts (R, K), kernel (F, n); result: (R, n).
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    TclifEventMatmul, EventMatmulImpl,
    ffi::Ffi::Bind().Arg<Ints>().Arg<Floats>().Arg<Floats>().Ret<Floats>());

// Arguments: channels (R, K), counts (R, K), cotangent g (R, n); result: dW (F, n).
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    TclifEventMatmulTranspose, EventMatmulTransposeImpl,
    ffi::Ffi::Bind().Arg<Ints>().Arg<Floats>().Arg<Floats>().Ret<Floats>());
