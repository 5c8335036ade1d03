/* Host API of frequency_split.cu: the C launcher of the frequency-branch kernels.
 *
 * One declaration shared by the definitions (frequency_split.cu includes this header, so a
 * signature change that is not made here too fails to compile) and by every caller: the
 * TensorRT plugin (frequency_split_plugin.cpp) and the torch op, which loads the same symbols
 * through ctypes (binseg_ros/kernels/runtime.py) and must match these C types by hand.
 *
 * Plain C linkage and C types only, so a C or C++ caller needs neither nvcc nor the kernels'
 * templates; the kernel entries themselves (binseg_lowpass_taps, binseg_frequency_split_f32/f16)
 * are reached through this launcher or by name through the driver API, not declared here.
 */

#ifndef BINSEG_ROS_KERNELS_FREQUENCY_SPLIT_H
#define BINSEG_ROS_KERNELS_FREQUENCY_SPLIT_H

#include <stddef.h>

#include <cuda_runtime.h> /* cudaError_t, cudaStream_t */

#ifdef __cplusplus
extern "C" {
#endif

/* Threads per block of the split kernel (launch parameters live in frequency_split.cu only). */
int binseg_frequency_split_threads(void);

/* Dynamic shared memory one block needs for a height x width plane, in bytes. A plane larger
 * than the GPU's opt-in per-block limit cannot be launched: callers can check before building. */
size_t binseg_frequency_split_smem_bytes(int height, int width);

/* Device workspace one launch needs, in bytes: each channel's taps along both axes and their
 * supports. */
size_t binseg_frequency_split_workspace_bytes(int channels, int height, int width);

/* low = lowpass(x), high = x - low, per plane, on `stream` (asynchronous).
 *
 * x, low, high: device tensors [planes, height, width] (planes = batch * channels, contiguous),
 *   fp32, or fp16 when half_io is nonzero.
 * sigma: device [channels] fp32 per-channel cutoffs, in cycles per sample.
 * workspace: device memory of binseg_frequency_split_workspace_bytes, overwritten.
 * Returns cudaErrorInvalidValue for non-positive sizes or planes not a multiple of channels, the error of cudaFuncSetAttribute when the plane does not fit in shared
 * memory, else the launch status (cudaGetLastError). */
cudaError_t binseg_launch_frequency_split(const void* x, const float* sigma, void* low, void* high, void* workspace,
                                          int planes, int channels, int height, int width, int half_io,
                                          cudaStream_t stream);

#ifdef __cplusplus
}
#endif

#endif /* BINSEG_ROS_KERNELS_FREQUENCY_SPLIT_H */
