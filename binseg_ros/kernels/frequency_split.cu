// Frequency branch of the FGD decoder on the GPU: low = irfft2(rfft2(x) * G), high = x - low.
//
// G is the per-channel Gaussian low-pass of binseg_ros/model/frequency.py: real, even in both
// frequency axes and separable, G(fy, fx) = g(fy) g(fx). For such a gain the DFT -> multiply ->
// inverse DFT pipeline is exactly a real circular convolution along each axis,
//
//     low = K_H * x * K_W^T,   K_N[i][j] = k_N[(i - j) mod N],
//     k_N[d] = (1/N) * sum_k g(f_k) cos(2 pi k d / N),   f_k = signed frequency k / N,
//
// so one thread block per (batch, channel) plane runs two small convolutions in shared memory
// with fp32 accumulation, for every plane size (no power-of-two restriction, no cuFFT plan),
// over only the taps that matter (kTailTolerance): the work is H*W*(taps_H + taps_W) per plane.
// I/O is fp32 or fp16. Plain CUDA C++: no torch or TensorRT headers, so the same host launcher
// (frequency_split.h) serves the torch custom op (through ctypes) and the TensorRT plugin.

#include "frequency_split.h"  // the host API below, declared once for every caller

#include <cuda_fp16.h>
#include <cuda_runtime.h>

namespace {

constexpr int kThreads = 512;
constexpr int kWarps = kThreads / 32;
constexpr int kTapThreads = 128;

__device__ __forceinline__ float load(const float* p) { return *p; }
__device__ __forceinline__ float load(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ void store(float* p, float v) { *p = v; }
__device__ __forceinline__ void store(__half* p, float v) { *p = __float2half_rn(v); }

// Taps whose absolute sum is below this fraction of all taps are skipped. The low-pass has unit
// DC gain (the taps sum to 1), so skipping them moves `low` by at most 1e-6 x max|x|, the size
// of the fp32 rounding of the sums themselves. The trained cutoffs' spatial Gaussians (std
// <= 3 px) then need about 25 taps per output instead of the plane's whole width or height.
constexpr float kTailTolerance = 1e-6f;

// Shared memory of one block, in floats: the row-pass result, both axes' taps unrolled over
// d in (-N, N) so the inner loops index taps without a modulo, and one staged input row per warp.
__host__ __device__ inline int smem_floats(int height, int width) {
    return height * width + (2 * width - 1) + (2 * height - 1) + kWarps * width;
}

struct Support {
    int lo;  // taps d in [-lo, hi] are used
    int hi;
};

// The smallest symmetric support [-r, r] whose dropped taps sum to at most the tolerance, or
// the whole period [-(n-1)/2, n/2] when even the outermost tap matters (a wide pass band rings
// like a Dirichlet kernel and never decays). k[d] for d in [0, n); k[-d] is k[n - d].
__device__ Support tap_support(const float* k, int n) {
    float total = 0.0f;
    for (int d = 0; d < n; ++d) {
        total += fabsf(k[d]);
    }
    const float budget = kTailTolerance * total;
    int r = (n - 1) / 2;
    float tail = (n % 2 == 0) ? fabsf(k[n / 2]) : 0.0f;  // even n: the one tap without a mirror
    if (tail > budget) {
        return {r, n / 2};
    }
    while (r > 0 && tail + fabsf(k[r]) + fabsf(k[n - r]) <= budget) {
        tail += fabsf(k[r]) + fabsf(k[n - r]);
        --r;
    }
    return {r, r};
}

// Outputs per thread: the row pass gives lane L the five outputs 5L..5L+4 of its row (an odd
// stride, so the lanes' shared-memory reads hit 32 different banks; 32 lanes x 5 = 160 = the
// widest plane), the column pass four consecutive rows of one column.
constexpr int kRowOutputs = 5;
constexpr int kColumnOutputs = 4;

// acc[q] = sum_{d=-lo}^{hi} k[d] * v[(start + q - d) mod n] for q < Q, where v[t] = base[t * stride].
// Register blocking: the Q inputs under the taps slide down by one per tap, so each tap costs one
// shared-memory read of k (a broadcast) and one of v for Q FMAs, instead of two reads per FMA.
template <int Q>
__device__ __forceinline__ void sliding_convolution(const float* base, int stride, int n, int start,
                                                    const float* k, Support support, float (&acc)[Q]) {
    int t = start + support.lo;  // index of window[0] at d = -lo; start < n and lo < n: one wrap at most
    if (t >= n) {
        t -= n;
    }
    float window[Q];
    int up = t;
#pragma unroll
    for (int q = 0; q < Q; ++q) {
        window[q] = base[up * stride];
        up = (up == n - 1) ? 0 : up + 1;
        acc[q] = 0.0f;
    }
    for (int d = -support.lo; d <= support.hi; ++d) {
        const float tap = k[d];
#pragma unroll
        for (int q = 0; q < Q; ++q) {
            acc[q] = fmaf(tap, window[q], acc[q]);
        }
#pragma unroll
        for (int q = Q - 1; q > 0; --q) {
            window[q] = window[q - 1];
        }
        t = (t == 0) ? n - 1 : t - 1;
        window[0] = base[t * stride];  // after the last tap this read is unused, but in bounds
    }
}

// Stages one plane into shared memory as fp32 with every thread of the block, 16-byte loads
// where the plane allows them, unrolled so each thread has several loads in flight: the kernel
// reads DRAM at the start only, instead of one row per warp between convolutions.
template <typename T>
__device__ __forceinline__ void stage_plane(const T* __restrict__ x, float* __restrict__ out, int count) {
    constexpr int kVector = 16 / sizeof(T);  // elements per 16-byte load
    const bool vectorized = count % kVector == 0 && reinterpret_cast<size_t>(x) % 16 == 0;
    const int vectors = vectorized ? count / kVector : 0;
#pragma unroll 4
    for (int v = threadIdx.x; v < vectors; v += blockDim.x) {
        const uint4 word = reinterpret_cast<const uint4*>(x)[v];
        const T* lanes = reinterpret_cast<const T*>(&word);
#pragma unroll
        for (int c = 0; c < kVector / 4; ++c) {  // 16-byte stores too: consecutive lanes, no bank conflicts
            reinterpret_cast<float4*>(out)[v * (kVector / 4) + c] =
                make_float4(load(lanes + 4 * c), load(lanes + 4 * c + 1), load(lanes + 4 * c + 2), load(lanes + 4 * c + 3));
        }
    }
    for (int m = vectors * kVector + threadIdx.x; m < count; m += blockDim.x) {
        out[m] = load(x + m);
    }
}

template <typename T>
__device__ void frequency_split(const T* __restrict__ x, const float* __restrict__ taps_h,
                                const float* __restrict__ taps_w, const Support* __restrict__ supports,
                                T* __restrict__ low, T* __restrict__ high, int channels, int height, int width) {
    extern __shared__ float smem[];
    float* plane_smem = smem;  // the input plane, then the row pass's result in place
    float* wext = plane_smem + height * width;  // wext[width - 1 + d] = k_W[d mod width]
    float* hext = wext + 2 * width - 1;        // hext[height - 1 + d] = k_H[d mod height]
    float* lines = hext + 2 * height - 1;

    const int plane = blockIdx.x;
    const int channel = plane % channels;
    const size_t offset = static_cast<size_t>(plane) * height * width;
    const Support along_h = supports[2 * channel];
    const Support along_w = supports[2 * channel + 1];
    stage_plane(x + offset, plane_smem, height * width);
    for (int i = threadIdx.x; i < 2 * width - 1; i += blockDim.x) {
        wext[i] = taps_w[channel * width + (i + 1) % width];  // d = i - (width - 1) ≡ i + 1 (mod width)
    }
    for (int i = threadIdx.x; i < 2 * height - 1; i += blockDim.x) {
        hext[i] = taps_h[channel * height + (i + 1) % height];
    }
    __syncthreads();
    const float* k_w = wext + (width - 1);   // k_w[d], d in (-width, width)
    const float* k_h = hext + (height - 1);  // k_h[d], d in (-height, height)

    // Row pass, in place: row i is copied to its warp's line, then rows[i][j] = sum_d k_W[d] line[(j - d) mod W].
    const int warp = threadIdx.x / 32;
    const int lane = threadIdx.x % 32;
    float* line = lines + warp * width;
    for (int i = warp; i < height; i += kWarps) {
        float* row = plane_smem + i * width;
        for (int m = lane; m < width; m += 32) {
            line[m] = row[m];
        }
        __syncwarp();
        for (int j0 = lane * kRowOutputs; j0 < width; j0 += 32 * kRowOutputs) {
            float acc[kRowOutputs];
            sliding_convolution(line, 1, width, j0, k_w, along_w, acc);
#pragma unroll
            for (int q = 0; q < kRowOutputs; ++q) {
                if (j0 + q < width) {
                    row[j0 + q] = acc[q];
                }
            }
        }
        __syncwarp();
    }
    __syncthreads();

    // Column pass: low[i][j] = sum_d k_H[d] rows[(i - d) mod H][j]; high = x - low, x read again
    // (from L2: this block staged it moments ago) before the convolution, so the loads overlap it.
    // Consecutive threads take consecutive columns, so their reads of rows[][j] are conflict-free.
    const int row_blocks = (height + kColumnOutputs - 1) / kColumnOutputs;
    for (int task = threadIdx.x; task < row_blocks * width; task += blockDim.x) {
        const int block = task / width;
        const int j = task - block * width;
        const int i0 = block * kColumnOutputs;
        const size_t base = offset + static_cast<size_t>(i0) * width + j;
        float value[kColumnOutputs];
#pragma unroll
        for (int q = 0; q < kColumnOutputs; ++q) {
            value[q] = i0 + q < height ? load(x + base + q * width) : 0.0f;
        }
        float acc[kColumnOutputs];
        sliding_convolution(plane_smem + j, width, height, i0, k_h, along_h, acc);
#pragma unroll
        for (int q = 0; q < kColumnOutputs; ++q) {
            if (i0 + q < height) {
                store(low + base + q * width, acc[q]);
                store(high + base + q * width, value[q] - acc[q]);
            }
        }
    }
}

}  // namespace

// taps_h[c * height + d] = k_height[d] and taps_w[c * width + d] = k_width[d] for channel c's cutoff
// sigma[c] (cycles per sample), and supports[2c] (along H), supports[2c + 1] (along W): one block
// per (channel, axis). The gains g(f_k) and the cosines cos(2 pi m / n) are tabulated once in
// shared memory; each tap is then n table reads and FMAs, with the angle index k d mod n kept
// exact by addition, instead of n exp, cos and 64-bit modulos. The support is found here once
// per channel, not in every block of the split.
extern "C" __global__ void __launch_bounds__(kTapThreads)
binseg_lowpass_taps(const float* __restrict__ sigma, int height, int width, float* __restrict__ taps_h,
                    float* __restrict__ taps_w, Support* __restrict__ supports) {
    extern __shared__ float table[];
    const int channel = blockIdx.x;
    const int axis = blockIdx.y;  // 0: along H, 1: along W
    const int n = axis == 0 ? height : width;
    float* gain = table;
    float* cosine = gain + n;
    float* tap = cosine + n;
    const float s = sigma[channel];
    const float inv_two_s2 = 1.0f / (2.0f * s * s);
    for (int m = threadIdx.x; m < n; m += blockDim.x) {
        const int signed_k = m < (n + 1) / 2 ? m : m - n;
        const float f = static_cast<float>(signed_k) / static_cast<float>(n);
        gain[m] = expf(-f * f * inv_two_s2);
        cosine[m] = cospif(2.0f * static_cast<float>(m) / static_cast<float>(n));
    }
    __syncthreads();
    float* out = (axis == 0 ? taps_h : taps_w) + channel * n;
    for (int d = threadIdx.x; d < n; d += blockDim.x) {
        float acc = 0.0f;
        int phase = 0;  // k * d mod n
        for (int k = 0; k < n; ++k) {
            acc = fmaf(gain[k], cosine[phase], acc);
            phase += d;
            phase -= phase >= n ? n : 0;  // d < n: one subtraction
        }
        tap[d] = out[d] = acc / static_cast<float>(n);
    }
    __syncthreads();
    if (threadIdx.x == 0) {
        supports[2 * channel + axis] = tap_support(tap, n);
    }
}

extern "C" __global__ void __launch_bounds__(kThreads)
binseg_frequency_split_f32(const float* x, const float* taps_h, const float* taps_w, const Support* supports,
                           float* low, float* high, int channels, int height, int width) {
    frequency_split<float>(x, taps_h, taps_w, supports, low, high, channels, height, width);
}

extern "C" __global__ void __launch_bounds__(kThreads)
binseg_frequency_split_f16(const __half* x, const float* taps_h, const float* taps_w, const Support* supports,
                           __half* low, __half* high, int channels, int height, int width) {
    frequency_split<__half>(x, taps_h, taps_w, supports, low, high, channels, height, width);
}

// Host side, for the TensorRT plugin and any C++ caller. Launch parameters live here only.
extern "C" int binseg_frequency_split_threads() { return kThreads; }

extern "C" size_t binseg_frequency_split_smem_bytes(int height, int width) {
    return static_cast<size_t>(smem_floats(height, width)) * sizeof(float);
}

extern "C" size_t binseg_frequency_split_workspace_bytes(int channels, int height, int width) {
    return static_cast<size_t>(channels) * ((height + width) * sizeof(float) + 2 * sizeof(Support));
}

// x, low, high: [planes, height, width] (planes = batch * channels), fp32 or fp16 (half_io);
// sigma: [channels]; workspace: binseg_frequency_split_workspace_bytes, taps then supports.
extern "C" cudaError_t binseg_launch_frequency_split(const void* x, const float* sigma, void* low, void* high,
                                                     void* workspace, int planes, int channels, int height,
                                                     int width, int half_io, cudaStream_t stream) {
    if (planes <= 0 || channels <= 0 || height <= 0 || width <= 0 || planes % channels != 0) {
        return cudaErrorInvalidValue;
    }
    const size_t smem = binseg_frequency_split_smem_bytes(height, width);
    const void* kernel = half_io ? reinterpret_cast<const void*>(binseg_frequency_split_f16)
                                 : reinterpret_cast<const void*>(binseg_frequency_split_f32);
    const cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    static_cast<int>(smem));
    if (status != cudaSuccess) {
        // The plane does not fit in this GPU's shared memory. Nothing was enqueued; clear the
        // runtime's last-error slot so the caller's next, valid launch does not report it.
        (void)cudaGetLastError();
        return status;
    }
    float* taps_h = static_cast<float*>(workspace);
    float* taps_w = taps_h + channels * height;
    Support* supports = reinterpret_cast<Support*>(taps_w + channels * width);
    const int longest = height > width ? height : width;
    binseg_lowpass_taps<<<dim3(channels, 2), kTapThreads, 3 * longest * sizeof(float), stream>>>(
        sigma, height, width, taps_h, taps_w, supports);
    if (half_io) {
        binseg_frequency_split_f16<<<planes, kThreads, smem, stream>>>(
            static_cast<const __half*>(x), taps_h, taps_w, supports, static_cast<__half*>(low),
            static_cast<__half*>(high), channels, height, width);
    } else {
        binseg_frequency_split_f32<<<planes, kThreads, smem, stream>>>(
            static_cast<const float*>(x), taps_h, taps_w, supports, static_cast<float*>(low),
            static_cast<float*>(high), channels, height, width);
    }
    return cudaGetLastError();
}
