// Event-driven products for tclif_jax.event_kernel, as XLA FFI handlers (CPU).
//
// Events: padded per-row lists (channels, counts, valid), each (R, K). An entry is live
// when valid, its count is nonzero and its channel lies in 0..F-1; the others are skipped.
//   tclif_event_matmul:           out[r, :] = bias + sum_k counts[r, k] * kernel[channels[r, k], :]
//   tclif_event_matmul_transpose: dW[f, :]  = sum over live (r, k) with channels[r, k] == f
//                                             of counts[r, k] * g[r, :]
// Spikes: a dense (R, F) array, mostly zeros (a hidden layer's output); only its nonzero
// entries are read into the sums.
//   tclif_spike_matmul:           out[r, :] = sum_f s[r, f] * kernel[f, :]
//   tclif_spike_matmul_transpose: out[f, :] = acc[f, :] + sum_r s[r, f] * g[r, :]
// Every output element is summed in an order fixed by the shapes (a row's entries in
// order; a transpose per chunk of rows, then the chunks in order), so no result depends
// on the number of threads.

#include <cstdint>
#include <vector>

#ifdef __AVX2__
#include <immintrin.h>
#endif

#include "xla/ffi/api/ffi.h"

namespace ffi = xla::ffi;
using Ints2 = ffi::BufferR2<ffi::S32>;  // (rows, cols), row-major
using Bools2 = ffi::BufferR2<ffi::PRED>;
using Floats2 = ffi::BufferR2<ffi::F32>;
using Floats1 = ffi::BufferR1<ffi::F32>;
using Out2 = ffi::ResultBufferR2<ffi::F32>;

namespace {

// Rows below which a product runs on the calling thread: a per-step product inside a
// time loop (a few hundred rows) costs less than starting an OpenMP region.
constexpr int64_t kParallelRows = 4096;

// One row's live entries: kernel rows and their factors, on the stack up to this many.
constexpr int64_t kStackEntries = 4096;

class RowEntries {
 public:
  explicit RowEntries(int64_t capacity) {
    if (capacity > kStackEntries) {
      heap_index_.resize(capacity);
      heap_value_.resize(capacity);
    }
  }
  int32_t* index() { return heap_index_.empty() ? index_ : heap_index_.data(); }
  float* value() { return heap_value_.empty() ? value_ : heap_value_.data(); }

 private:
  int32_t index_[kStackEntries];
  float value_[kStackEntries];
  std::vector<int32_t> heap_index_;
  std::vector<float> heap_value_;
};

// dst[j] = bias[j] + sum_e value[e] * w[index[e], j] for j < n, e ascending (bias null:
// 0). With AVX2, 64 and then 8 columns are summed at a time in registers.
void SumKernelRows(const int32_t* index, const float* value, int64_t m, const float* w,
                   int64_t n, const float* bias, float* dst) {
  int64_t j0 = 0;
#ifdef __AVX2__
  for (; j0 + 64 <= n; j0 += 64) {
    __m256 acc[8];
    for (int i = 0; i < 8; ++i) {
      acc[i] = bias ? _mm256_loadu_ps(bias + j0 + 8 * i) : _mm256_setzero_ps();
    }
    for (int64_t e = 0; e < m; ++e) {
      const __m256 v = _mm256_set1_ps(value[e]);
      const float* src = w + static_cast<int64_t>(index[e]) * n + j0;
      for (int i = 0; i < 8; ++i) acc[i] = _mm256_fmadd_ps(v, _mm256_loadu_ps(src + 8 * i), acc[i]);
    }
    for (int i = 0; i < 8; ++i) _mm256_storeu_ps(dst + j0 + 8 * i, acc[i]);
  }
  for (; j0 + 8 <= n; j0 += 8) {
    __m256 acc = bias ? _mm256_loadu_ps(bias + j0) : _mm256_setzero_ps();
    for (int64_t e = 0; e < m; ++e) {
      const float* src = w + static_cast<int64_t>(index[e]) * n + j0;
      acc = _mm256_fmadd_ps(_mm256_set1_ps(value[e]), _mm256_loadu_ps(src), acc);
    }
    _mm256_storeu_ps(dst + j0, acc);
  }
#endif
  for (int64_t j = j0; j < n; ++j) dst[j] = bias ? bias[j] : 0.0f;
  if (j0 == n) return;
  for (int64_t e = 0; e < m; ++e) {
    const float v = value[e];
    const float* src = w + static_cast<int64_t>(index[e]) * n;
    for (int64_t j = j0; j < n; ++j) dst[j] += v * src[j];
  }
}

// dst[j] += v * src[j] for j < n (with AVX2, eight at a time with fused multiply-adds).
inline void AddScaled(float v, const float* src, int64_t n, float* dst) {
  int64_t j = 0;
#ifdef __AVX2__
  const __m256 scale = _mm256_set1_ps(v);
  for (; j + 8 <= n; j += 8) {
    const __m256 sum = _mm256_fmadd_ps(scale, _mm256_loadu_ps(src + j), _mm256_loadu_ps(dst + j));
    _mm256_storeu_ps(dst + j, sum);
  }
#endif
  for (; j < n; ++j) dst[j] += v * src[j];
}

// The live entries of event row e (K of them from `first`): their channels and counts.
inline int64_t LiveEvents(const int32_t* ch, const float* cn, const bool* ok, int64_t first,
                          int64_t k, int64_t num_channels, int32_t* index, float* value) {
  int64_t m = 0;
  for (int64_t e = first; e < first + k; ++e) {
    if (!ok[e] || cn[e] == 0.0f || ch[e] < 0 || ch[e] >= num_channels) continue;
    index[m] = ch[e];
    value[m++] = cn[e];
  }
  return m;
}

// The positions f (ascending) and values of the nonzero entries of a spike row. Spikes are
// mostly zero, so with AVX2 eight entries are compared at once and only nonzero ones
// visited.
inline int64_t NonzeroSpikes(const float* row, int64_t width, int32_t* index, float* value) {
  int64_t m = 0, f = 0;
#ifdef __AVX2__
  const __m256 zero = _mm256_setzero_ps();
  for (; f + 8 <= width; f += 8) {
    const __m256 x = _mm256_loadu_ps(row + f);
    unsigned mask = static_cast<unsigned>(_mm256_movemask_ps(_mm256_cmp_ps(x, zero, _CMP_NEQ_UQ)));
    while (mask) {
      const int64_t i = f + __builtin_ctz(mask);
      index[m] = static_cast<int32_t>(i);
      value[m++] = row[i];
      mask &= mask - 1;
    }
  }
#endif
  for (; f < width; ++f) {
    if (row[f] == 0.0f) continue;
    index[m] = static_cast<int32_t>(f);
    value[m++] = row[f];
  }
  return m;
}

// The number of row chunks of a transpose: a function of the shapes only (never of the
// thread count), so that its sums have one order whatever the threads: one chunk for a
// per-step product, else up to 16 (so up to 16 threads share the first pass) with their
// partial sums (chunks x size floats) within 64 MiB.
int64_t TransposeChunks(int64_t rows, int64_t size) {
  if (rows < kParallelRows) return 1;
  constexpr int64_t kMaxChunks = 16;
  constexpr int64_t kMaxPartialFloats = int64_t{16} << 20;  // 64 MiB of float32
  int64_t chunks = kMaxPartialFloats / (size > 0 ? size : 1);
  if (chunks > kMaxChunks) chunks = kMaxChunks;
  if (chunks > rows) chunks = rows;
  return chunks < 1 ? 1 : chunks;
}

// out[i] += sum over chunks c of partial[c * size + i], c ascending; rows of n in parallel.
void AddPartials(const std::vector<float>& partial, int64_t chunks, int64_t size, int64_t n,
                 float* out) {
  const int64_t rows = size / n;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    float* dst = out + row * n;
    for (int64_t c = 0; c < chunks; ++c) {
      const float* src = partial.data() + c * size + row * n;
      for (int64_t j = 0; j < n; ++j) dst[j] += src[j];
    }
  }
}

ffi::Error CheckEvents(const Ints2& channels, const Floats2& counts, const Bools2& valid) {
  auto c = channels.dimensions(), v = counts.dimensions(), ok = valid.dimensions();
  if (c[0] != v[0] || c[1] != v[1] || c[0] != ok[0] || c[1] != ok[1]) {
    return ffi::Error::InvalidArgument("event_matmul: channels, counts and valid differ in shape");
  }
  return ffi::Error::Success();
}

// ----------------------------------------------------------------------------- events

ffi::Error EventMatmulImpl(Ints2 channels, Floats2 counts, Bools2 valid, Floats2 kernel,
                           Floats1 bias, Out2 out) {
  if (auto err = CheckEvents(channels, counts, valid); err.failure()) return err;
  const int64_t rows = channels.dimensions()[0], k = channels.dimensions()[1];
  const int64_t num_channels = kernel.dimensions()[0], n = kernel.dimensions()[1];
  if (out->dimensions()[0] != rows || out->dimensions()[1] != n || bias.dimensions()[0] != n) {
    return ffi::Error::InvalidArgument("event_matmul: output is not (R, n) or bias not (n,)");
  }
  const int32_t* ch = channels.typed_data();
  const float* cn = counts.typed_data();
  const bool* ok = valid.typed_data();
  const float* w = kernel.typed_data();
  const float* b = bias.typed_data();
  float* dst = out->typed_data();

#pragma omp parallel if (rows >= kParallelRows)
  {
    RowEntries entries(k);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t m =
          LiveEvents(ch, cn, ok, r * k, k, num_channels, entries.index(), entries.value());
      SumKernelRows(entries.index(), entries.value(), m, w, n, b, dst + r * n);
    }
  }
  return ffi::Error::Success();
}

// The rows are cut into chunks; each chunk adds its entries, in row order, into its own
// (F, n) partial sum, reading each row of g once while the partial stays in cache; then
// the partials are added up in chunk order.
ffi::Error EventMatmulTransposeImpl(Ints2 channels, Floats2 counts, Bools2 valid, Floats2 g,
                                    Out2 dkernel) {
  if (auto err = CheckEvents(channels, counts, valid); err.failure()) return err;
  const int64_t rows = channels.dimensions()[0], k = channels.dimensions()[1];
  const int64_t num_channels = dkernel->dimensions()[0], n = dkernel->dimensions()[1];
  if (g.dimensions()[0] != rows || g.dimensions()[1] != n) {
    return ffi::Error::InvalidArgument("event_matmul_transpose: cotangent is not (R, n)");
  }
  const int32_t* ch = channels.typed_data();
  const float* cn = counts.typed_data();
  const bool* ok = valid.typed_data();
  const float* grad = g.typed_data();
  float* dw = dkernel->typed_data();
  const int64_t size = num_channels * n;
  for (int64_t i = 0; i < size; ++i) dw[i] = 0.0f;
  if (rows == 0 || size == 0) return ffi::Error::Success();

  const int64_t chunks = TransposeChunks(rows, size);
  std::vector<float> partial(chunks * size, 0.0f);

#pragma omp parallel for schedule(static, 1) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    float* part = partial.data() + c * size;
    const int64_t first = rows * c / chunks, last = rows * (c + 1) / chunks;
    for (int64_t r = first; r < last; ++r) {
      for (int64_t e = r * k; e < (r + 1) * k; ++e) {
        if (!ok[e] || cn[e] == 0.0f || ch[e] < 0 || ch[e] >= num_channels) continue;
        AddScaled(cn[e], grad + r * n, n, part + static_cast<int64_t>(ch[e]) * n);
      }
    }
  }
  AddPartials(partial, chunks, size, n, dw);
  return ffi::Error::Success();
}

// ----------------------------------------------------------------------------- spikes

ffi::Error SpikeMatmulImpl(Floats2 spikes, Floats2 kernel, Out2 out) {
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
    RowEntries entries(width);
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t m = NonzeroSpikes(s + r * width, width, entries.index(), entries.value());
      SumKernelRows(entries.index(), entries.value(), m, w, n, nullptr, o + r * n);
    }
  }
  return ffi::Error::Success();
}

// dw[f, :] += s[r, f] * g[r, :] for rows first..last-1 in order, nonzero s only.
void AddSpikeRows(const float* s, const float* g, int64_t first, int64_t last, int64_t width,
                  int64_t n, float* dw) {
  RowEntries entries(width);
  int32_t* index = entries.index();
  float* value = entries.value();
  for (int64_t r = first; r < last; ++r) {
    const int64_t m = NonzeroSpikes(s + r * width, width, index, value);
    for (int64_t e = 0; e < m; ++e) {
      AddScaled(value[e], g + r * n, n, dw + static_cast<int64_t>(index[e]) * n);
    }
  }
}

ffi::Error SpikeMatmulTransposeImpl(Floats2 spikes, Floats2 g, Floats2 acc, Out2 out) {
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
  const float* grad = g.typed_data();
  float* dw = out->typed_data();
  const int64_t size = width * n;
  if (dw != acc.typed_data()) {  // else the accumulator's buffer is the result's
    const float* a = acc.typed_data();
    for (int64_t i = 0; i < size; ++i) dw[i] = a[i];
  }
  if (rows == 0 || size == 0) return ffi::Error::Success();

  const int64_t chunks = TransposeChunks(rows, size);
  if (chunks == 1) {
    AddSpikeRows(s, grad, 0, rows, width, n, dw);
    return ffi::Error::Success();
  }
  std::vector<float> partial(chunks * size, 0.0f);
#pragma omp parallel for schedule(static, 1)
  for (int64_t c = 0; c < chunks; ++c) {
    AddSpikeRows(s, grad, rows * c / chunks, rows * (c + 1) / chunks, width, n,
                 partial.data() + c * size);
  }
  AddPartials(partial, chunks, size, n, dw);
  return ffi::Error::Success();
}

}  // namespace

// Arguments: channels, counts, valid (R, K), kernel (F, n), bias (n); result: (R, n).
XLA_FFI_DEFINE_HANDLER_SYMBOL(TclifEventMatmul, EventMatmulImpl,
                              ffi::Ffi::Bind()
                                  .Arg<Ints2>()
                                  .Arg<Floats2>()
                                  .Arg<Bools2>()
                                  .Arg<Floats2>()
                                  .Arg<Floats1>()
                                  .Ret<Floats2>());

// Arguments: channels, counts, valid (R, K), cotangent g (R, n); result: dW (F, n).
XLA_FFI_DEFINE_HANDLER_SYMBOL(TclifEventMatmulTranspose, EventMatmulTransposeImpl,
                              ffi::Ffi::Bind()
                                  .Arg<Ints2>()
                                  .Arg<Floats2>()
                                  .Arg<Bools2>()
                                  .Arg<Floats2>()
                                  .Ret<Floats2>());

// Arguments: spikes (R, F), kernel (F, n); result: (R, n).
XLA_FFI_DEFINE_HANDLER_SYMBOL(TclifSpikeMatmul, SpikeMatmulImpl,
                              ffi::Ffi::Bind().Arg<Floats2>().Arg<Floats2>().Ret<Floats2>());

// Arguments: spikes (R, F), cotangent g (R, n), accumulator (F, n); result: (F, n).
XLA_FFI_DEFINE_HANDLER_SYMBOL(
    TclifSpikeMatmulTranspose, SpikeMatmulTransposeImpl,
    ffi::Ffi::Bind().Arg<Floats2>().Arg<Floats2>().Arg<Floats2>().Ret<Floats2>());
