// Event-driven input projection for tclif_jax.event_kernel, as XLA FFI handlers (CPU).
//
// Per row r of the padded events (channels, counts), both (R, K):
//   tclif_event_matmul:           out[r, :] = sum_k counts[r, k] * kernel[channels[r, k], :]
//   tclif_event_matmul_transpose: dW[c, :]  = sum over (r, k) with channels[r, k] == c
//                                              of counts[r, k] * g[r, :]
// Entries with count 0 (padding) and channels outside 0..F-1 are skipped. Both loops
// sum in (r, k) order for every output element, so the results do not depend on the
// number of threads.

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

// dW (F, n) from channels, counts (R, K) and the output cotangent g (R, n). The live
// entries are bucketed by channel (a counting sort, in (r, k) order), then each channel's
// row of dW is summed by one thread: no two threads write the same row.
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

  const int64_t entries = rows * k;
  std::vector<int64_t> start(num_channels + 1, 0);
  for (int64_t e = 0; e < entries; ++e) {
    if (Live(ch[e], cn[e], num_channels)) ++start[ch[e] + 1];
  }
  for (int64_t c = 0; c < num_channels; ++c) start[c + 1] += start[c];
  std::vector<int64_t> order(start[num_channels]);
  std::vector<int64_t> next(start.begin(), start.end() - 1);
  for (int64_t e = 0; e < entries; ++e) {
    if (Live(ch[e], cn[e], num_channels)) order[next[ch[e]]++] = e;
  }

#pragma omp parallel for schedule(dynamic, 4)
  for (int64_t c = 0; c < num_channels; ++c) {
    float* dst = dw + c * n;
    for (int64_t j = 0; j < n; ++j) dst[j] = 0.0f;
    for (int64_t i = start[c]; i < start[c + 1]; ++i) {
      const int64_t e = order[i];
      const float v = cn[e];
      const float* src = gd + (e / k) * n;
      for (int64_t j = 0; j < n; ++j) dst[j] += v * src[j];
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
