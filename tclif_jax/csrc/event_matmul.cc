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
#include <cstring>
#include <vector>

#ifdef __AVX2__
#include <immintrin.h>
#endif

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


// ----------------------------------------------------------------------------- spikes
//
// Products whose left operand is a dense array of spikes, mostly zeros (a hidden layer's
// output): only its nonzero entries are read into the sum.
//   tclif_spike_matmul:           out[r, :] = sum_f s[r, f] * kernel[f, :]  (f ascending)
//   tclif_spike_matmul_transpose: out[f, :] = acc[f, :] + sum_r s[r, f] * g[r, :]
// A per-step product inside a time loop is small (a few hundred rows) and runs on the
// calling thread; a large one (a whole sequence at once) runs in parallel, with the
// transpose's rows cut into chunks fixed by the shapes as above, so that no result
// depends on the thread count.

// Rows below which a product runs on one thread: an OpenMP region costs more than it
// saves on a per-step product.
constexpr int64_t kParallelRows = 4096;

// Writes the positions f (ascending) of the nonzero entries of row (width floats) into
// active and returns their number. Spikes are mostly zero, so with AVX2 eight entries are
// compared at once and only the nonzero ones visited.
int64_t ActiveIndices(const float* row, int64_t width, int32_t* active) {
  int64_t m = 0, f = 0;
#ifdef __AVX2__
  const __m256 zero = _mm256_setzero_ps();
  for (; f + 8 <= width; f += 8) {
    const __m256 x = _mm256_loadu_ps(row + f);
    unsigned mask = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(x, zero, _CMP_NEQ_UQ)));
    while (mask) {
      active[m++] = static_cast<int32_t>(f + __builtin_ctz(mask));
      mask &= mask - 1;
    }
  }
#endif
  for (; f < width; ++f) {
    if (row[f] != 0.0f) active[m++] = static_cast<int32_t>(f);
  }
  return m;
}

// Scratch for one row's active positions: on the stack up to this width, else the heap.
constexpr int64_t kStackWidth = 4096;

class Scratch {
 public:
  explicit Scratch(int64_t width) {
    if (width > kStackWidth) heap_.resize(width);
  }
  int32_t* data() { return heap_.empty() ? stack_ : heap_.data(); }

 private:
  int32_t stack_[kStackWidth];
  std::vector<int32_t> heap_;
};

// dw[f, :] += s[r, f] * g[r, :] for rows first..last-1 in order, nonzero s only.
void AddSpikeRows(const float* s, const float* g, int64_t first, int64_t last, int64_t width,
                  int64_t n, float* dw) {
  Scratch scratch(width);
  int32_t* active = scratch.data();
  for (int64_t r = first; r < last; ++r) {
    const float* row = s + r * width;
    const float* src = g + r * n;
    const int64_t m = ActiveIndices(row, width, active);
    for (int64_t e = 0; e < m; ++e) {
      const float v = row[active[e]];
      float* dst = dw + static_cast<int64_t>(active[e]) * n;
      for (int64_t j = 0; j < n; ++j) dst[j] += v * src[j];
    }
  }
}

ffi::Error SpikeMatmulImpl(Floats spikes, Floats kernel, FloatsOut out) {
  const int64_t rows = spikes.dimensions()[0], width = spikes.dimensions()[1];
  const int64_t n = kernel.dimensions()[1];
  if (kernel.dimensions()[0] != width) {
    return ffi::Error::InvalidArgument("spike_matmul: spikes (R, F) and kernel (F, n) differ in F");
  }
  if (out->dimensions()[0] != rows || out->dimensions()[1] != n) {
    return ffi::Error::InvalidArgument("spike_matmul: output shape is not (R, n)");
  }
  const float* s = spikes.typed_data();
  const float* w = kernel.typed_data();
  float* o = out->typed_data();

#pragma omp parallel if (rows >= kParallelRows)
  {
    Scratch scratch(width);
    int32_t* active = scratch.data();
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const float* row = s + r * width;
      const int64_t m = ActiveIndices(row, width, active);
      float* dst = o + r * n;
      for (int64_t j = 0; j < n; ++j) dst[j] = 0.0f;
      for (int64_t e = 0; e < m; ++e) {
        const float v = row[active[e]];
        const float* src = w + static_cast<int64_t>(active[e]) * n;
        for (int64_t j = 0; j < n; ++j) dst[j] += v * src[j];
      }
    }
  }
  return ffi::Error::Success();
}

ffi::Error SpikeMatmulTransposeImpl(Floats spikes, Floats g, Floats acc, FloatsOut out) {
  const int64_t rows = spikes.dimensions()[0], width = spikes.dimensions()[1];
  const int64_t n = g.dimensions()[1];
  if (g.dimensions()[0] != rows) {
    return ffi::Error::InvalidArgument("spike_matmul_transpose: spikes and cotangent differ in rows");
  }
  if (acc.dimensions()[0] != width || acc.dimensions()[1] != n ||
      out->dimensions()[0] != width || out->dimensions()[1] != n) {
    return ffi::Error::InvalidArgument("spike_matmul_transpose: accumulator is not (F, n)");
  }
  const float* s = spikes.typed_data();
  const float* gd = g.typed_data();
  float* dw = out->typed_data();
  const int64_t size = width * n;
  if (dw != acc.typed_data()) {
    const float* a = acc.typed_data();
    for (int64_t i = 0; i < size; ++i) dw[i] = a[i];
  }
  if (rows == 0 || size == 0) return ffi::Error::Success();

  const int64_t chunks = rows < kParallelRows ? 1 : TransposeChunks(rows, width, n);
  if (chunks == 1) {
    AddSpikeRows(s, gd, 0, rows, width, n, dw);
    return ffi::Error::Success();
  }
  std::vector<float> partial(chunks * size, 0.0f);

#pragma omp parallel for schedule(static, 1)
  for (int64_t c = 0; c < chunks; ++c) {
    float* part = partial.data() + c * size;
    const int64_t first = rows * c / chunks, last = rows * (c + 1) / chunks;
    AddSpikeRows(s, gd, first, last, width, n, part);
  }

#pragma omp parallel for schedule(static)
  for (int64_t f = 0; f < width; ++f) {
    float* dst = dw + f * n;
    for (int64_t c = 0; c < chunks; ++c) {
      const float* src = partial.data() + c * size + f * n;
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

// Arguments: spikes (R, F), kernel (F, n); result: (R, n).
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    TclifSpikeMatmul, SpikeMatmulImpl,
    ffi::Ffi::Bind().Arg<Floats>().Arg<Floats>().Ret<Floats>());

// Arguments: spikes (R, F), cotangent g (R, n), accumulator (F, n); result: (F, n).
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    TclifSpikeMatmulTranspose, SpikeMatmulTransposeImpl,
    ffi::Ffi::Bind().Arg<Floats>().Arg<Floats>().Arg<Floats>().Ret<Floats>());
