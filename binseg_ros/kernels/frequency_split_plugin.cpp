// TensorRT plugin for the frequency branch: the ONNX node binseg::BinsegFrequencySplit(x, sigma)
// -> (low, high), run by the launcher of frequency_split.cu.
//
// IPluginV3 (TensorRT 10.x, JetPack 6 ships 10.3): one object exposing the core, build and runtime
// capabilities, and an IPluginCreatorV3One. TensorRT's ONNX parser maps a node it has no importer
// for to the registered creator whose (name, version, namespace) equals (op_type,
// attribute plugin_version, attribute plugin_namespace); those three strings are kPlugin* below
// and binseg_ros/kernels/plugin.py on the exporter side (test/test_trt_plugin.py compares them).
//
// The library registers itself through IPluginRegistry::loadLibrary (Python:
// trt.get_plugin_registry().load_library(path), trtexec --dynamicPlugins), which looks up the two
// C entry points at the end of this file. There is no static REGISTER_TENSORRT_PLUGIN: that calls
// getPluginRegistry() from libnvinfer, while everything used here is header-only (abstract
// interfaces with inline members, called through their vtables), so the library does not link
// libnvinfer and one build serves any TensorRT 10 runtime that loads it.

#include "frequency_split.h"

#include <NvInferRuntime.h>

#include <atomic>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <limits>
#include <new>

namespace {

using nvinfer1::DataType;
using nvinfer1::Dims;
using nvinfer1::DimsExprs;
using nvinfer1::DynamicPluginTensorDesc;
using nvinfer1::IPluginCapability;
using nvinfer1::IPluginV3;
using nvinfer1::PluginCapabilityType;
using nvinfer1::PluginFieldCollection;
using nvinfer1::PluginTensorDesc;
using nvinfer1::TensorFormat;
using Severity = nvinfer1::ILogger::Severity;

// Lookup key of the creator in the plugin registry; must equal the ONNX node's op_type and its
// plugin_version / plugin_namespace attributes (binseg_ros/kernels/plugin.py).
constexpr char kPluginName[] = "BinsegFrequencySplit";
constexpr char kPluginVersion[] = "1";
constexpr char kPluginNamespace[] = "binseg";

// I/O positions, in TensorRT's numbering for supportsFormatCombination (inputs, then outputs).
constexpr int32_t kX = 0;
constexpr int32_t kSigma = 1;
constexpr int32_t kNbInputs = 2;
constexpr int32_t kLow = 2;
constexpr int32_t kHigh = 3;
constexpr int32_t kNbOutputs = 2;

// No attributes: sigma is an input (a constant initializer), the shapes come from x. An empty
// field list also means the ONNX parser passes no fields: it converts only the attributes whose
// names the creator lists, so plugin_version / plugin_namespace never reach createPlugin.
PluginFieldCollection const kNoFields{0, nullptr};

// Set by TensorRT through setLoggerFinder() when it loads the library; read from any thread.
std::atomic<nvinfer1::ILoggerFinder*> gLoggerFinder{nullptr};

// printf-style message to the logger of the engine/builder calling us (the finder resolves it on
// the calling thread), or to stderr when the library was loaded without a finder.
[[gnu::format(printf, 2, 3)]] void report(Severity severity, char const* format, ...) noexcept {
    char message[512];
    va_list args;
    va_start(args, format);
    std::vsnprintf(message, sizeof(message), format, args);
    va_end(args);

    nvinfer1::ILogger* logger = nullptr;
    if (nvinfer1::ILoggerFinder* finder = gLoggerFinder.load(std::memory_order_acquire)) {
        try {
            logger = finder->findLogger();  // not declared noexcept: nothing may escape into TensorRT
        } catch (...) {
            logger = nullptr;
        }
    }
    if (logger != nullptr) {
        logger->log(severity, message);
    } else {
        std::fprintf(stderr, "[%s::%s] %s\n", kPluginNamespace, kPluginName, message);
    }
}

constexpr bool fitsInt(int64_t value) noexcept {
    return value >= 0 && value <= std::numeric_limits<int>::max();
}

// Shape rules shared by build-time (dims may hold -1 wildcards) and run-time checks.
bool checkRanks(Dims const& x, Dims const& sigma, char const* stage) noexcept {
    if (x.nbDims != 4 || sigma.nbDims != 1) {
        report(Severity::kERROR, "%s: x must be [N, C, H, W] and sigma [C], got ranks %d and %d", stage, x.nbDims,
               sigma.nbDims);
        return false;
    }
    if (x.d[1] >= 0 && sigma.d[0] >= 0 && x.d[1] != sigma.d[0]) {
        report(Severity::kERROR, "%s: sigma has %lld cutoffs for %lld channels", stage,
               static_cast<long long>(sigma.d[0]), static_cast<long long>(x.d[1]));
        return false;
    }
    return true;
}

class FrequencySplitPlugin final : public IPluginV3,
                                   public nvinfer1::IPluginV3OneCore,
                                   public nvinfer1::IPluginV3OneBuild,
                                   public nvinfer1::IPluginV3OneRuntime {
public:
    FrequencySplitPlugin() = default;

    // IPluginV3. Each capability is returned through its own base: IPluginCapability is an
    // ambiguous base of this class, so the cast must pick the subobject.
    IPluginCapability* getCapabilityInterface(PluginCapabilityType type) noexcept override {
        switch (type) {
            case PluginCapabilityType::kCORE:
                return static_cast<nvinfer1::IPluginV3OneCore*>(this);
            case PluginCapabilityType::kBUILD:
                return static_cast<nvinfer1::IPluginV3OneBuild*>(this);
            case PluginCapabilityType::kRUNTIME:
                return static_cast<nvinfer1::IPluginV3OneRuntime*>(this);
        }
        return nullptr;
    }

    // Stateless (every size is read from the tensor descriptors), so a clone is a fresh object.
    IPluginV3* clone() noexcept override { return new (std::nothrow) FrequencySplitPlugin(); }

    // IPluginV3OneCore
    char const* getPluginName() const noexcept override { return kPluginName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }

    // IPluginV3OneBuild
    int32_t getNbOutputs() const noexcept override { return kNbOutputs; }

    int32_t getOutputDataTypes(DataType* outputTypes, int32_t nbOutputs, DataType const* inputTypes,
                               int32_t nbInputs) const noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) {
            report(Severity::kERROR, "expects 2 inputs and 2 outputs, got %d and %d", nbInputs, nbOutputs);
            return -1;
        }
        if ((inputTypes[kX] != DataType::kFLOAT && inputTypes[kX] != DataType::kHALF) ||
            inputTypes[kSigma] != DataType::kFLOAT) {
            report(Severity::kERROR, "x must be float32 or float16 and sigma float32, got types %d and %d",
                   static_cast<int>(inputTypes[kX]), static_cast<int>(inputTypes[kSigma]));
            return -1;
        }
        outputTypes[0] = inputTypes[kX];
        outputTypes[1] = inputTypes[kX];
        return 0;
    }

    // low and high have x's shape; the expressions are the builder's, shared, not copied.
    int32_t getOutputShapes(DimsExprs const* inputs, int32_t nbInputs, DimsExprs const* /*shapeInputs*/,
                            int32_t nbShapeInputs, DimsExprs* outputs, int32_t nbOutputs,
                            nvinfer1::IExprBuilder& /*exprBuilder*/) noexcept override {
        if (nbInputs != kNbInputs || nbShapeInputs != 0 || nbOutputs != kNbOutputs) {
            report(Severity::kERROR, "expects 2 inputs, no shape inputs and 2 outputs, got %d, %d and %d", nbInputs,
                   nbShapeInputs, nbOutputs);
            return -1;
        }
        if (inputs[kX].nbDims != 4 || inputs[kSigma].nbDims != 1) {
            report(Severity::kERROR, "x must be [N, C, H, W] and sigma [C], got ranks %d and %d", inputs[kX].nbDims,
                   inputs[kSigma].nbDims);
            return -1;
        }
        outputs[0] = inputs[kX];
        outputs[1] = inputs[kX];
        return 0;
    }

    // Linear layout everywhere (the kernel indexes planes row-major); x, low and high share one
    // type, fp32 or fp16; the cutoffs stay fp32 whatever the I/O precision.
    bool supportsFormatCombination(int32_t pos, DynamicPluginTensorDesc const* inOut, int32_t nbInputs,
                                   int32_t nbOutputs) noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs || pos < 0 || pos >= kNbInputs + kNbOutputs) {
            return false;
        }
        PluginTensorDesc const& desc = inOut[pos].desc;
        if (desc.format != TensorFormat::kLINEAR) {
            return false;
        }
        switch (pos) {
            case kX:
                return desc.type == DataType::kFLOAT || desc.type == DataType::kHALF;
            case kSigma:
                return desc.type == DataType::kFLOAT;
            case kLow:
            case kHigh:
                return desc.type == inOut[kX].desc.type;
            default:
                return false;
        }
    }

    // Shape checks at build time, on the profile's bounds: a wrong sigma length or a plane too
    // large for this GPU's shared memory fails the engine build, not the first inference.
    int32_t configurePlugin(DynamicPluginTensorDesc const* in, int32_t nbInputs, DynamicPluginTensorDesc const* /*out*/,
                            int32_t nbOutputs) noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) {
            report(Severity::kERROR, "configurePlugin: expects 2 inputs and 2 outputs, got %d and %d", nbInputs,
                   nbOutputs);
            return -1;
        }
        if (!checkRanks(in[kX].desc.dims, in[kSigma].desc.dims, "configurePlugin")) {
            return -1;
        }
        int64_t const height = in[kX].max.d[2];
        int64_t const width = in[kX].max.d[3];
        if (!fitsInt(height) || !fitsInt(width)) {
            report(Severity::kERROR, "configurePlugin: plane bound %lldx%lld is out of range",
                   static_cast<long long>(height), static_cast<long long>(width));
            return -1;
        }
        int device = 0;
        int limit = 0;
        if (cudaGetDevice(&device) != cudaSuccess ||
            cudaDeviceGetAttribute(&limit, cudaDevAttrMaxSharedMemoryPerBlockOptin, device) != cudaSuccess) {
            cudaGetLastError();  // clear it: enqueue reports its own launch status
            report(Severity::kWARNING, "configurePlugin: cannot query shared memory; plane size checked at launch");
            return 0;
        }
        size_t const smem = binseg_frequency_split_smem_bytes(static_cast<int>(height), static_cast<int>(width));
        if (smem > static_cast<size_t>(limit)) {
            report(Severity::kERROR,
                   "configurePlugin: a %lldx%lld plane needs %zu bytes of shared memory per block, this GPU allows %d",
                   static_cast<long long>(height), static_cast<long long>(width), smem, limit);
            return -1;
        }
        return 0;
    }

    // The taps of both axes and their supports (binseg_frequency_split_workspace_bytes), for the
    // largest shape of the profile (max equals dims for static shapes).
    size_t getWorkspaceSize(DynamicPluginTensorDesc const* inputs, int32_t nbInputs,
                            DynamicPluginTensorDesc const* /*outputs*/, int32_t /*nbOutputs*/) const noexcept override {
        if (nbInputs != kNbInputs || inputs[kX].max.nbDims != 4) {
            return 0;
        }
        Dims const& max = inputs[kX].max;
        if (max.d[1] < 0 || max.d[2] < 0 || max.d[3] < 0) {
            return 0;
        }
        if (!fitsInt(max.d[1]) || !fitsInt(max.d[2]) || !fitsInt(max.d[3])) {
            return 0;
        }
        return binseg_frequency_split_workspace_bytes(static_cast<int>(max.d[1]), static_cast<int>(max.d[2]),
                                                      static_cast<int>(max.d[3]));
    }

    // IPluginV3OneRuntime. Concrete shapes: the same rules, now without wildcards.
    int32_t onShapeChange(PluginTensorDesc const* in, int32_t nbInputs, PluginTensorDesc const* /*out*/,
                          int32_t nbOutputs) noexcept override {
        if (nbInputs != kNbInputs || nbOutputs != kNbOutputs) {
            report(Severity::kERROR, "onShapeChange: expects 2 inputs and 2 outputs, got %d and %d", nbInputs,
                   nbOutputs);
            return -1;
        }
        Dims const& x = in[kX].dims;
        if (!checkRanks(x, in[kSigma].dims, "onShapeChange")) {
            return -1;
        }
        // The launcher takes int sizes and one block per plane (grid x is limited to 2^31 - 1).
        if (!fitsInt(x.d[0]) || !fitsInt(x.d[1]) || !fitsInt(x.d[0] * x.d[1]) || !fitsInt(x.d[2]) ||
            !fitsInt(x.d[3])) {
            report(Severity::kERROR, "onShapeChange: shape [%lld, %lld, %lld, %lld] is out of range",
                   static_cast<long long>(x.d[0]), static_cast<long long>(x.d[1]), static_cast<long long>(x.d[2]),
                   static_cast<long long>(x.d[3]));
            return -1;
        }
        return 0;
    }

    int32_t enqueue(PluginTensorDesc const* inputDesc, PluginTensorDesc const* /*outputDesc*/,
                    void const* const* inputs, void* const* outputs, void* workspace,
                    cudaStream_t stream) noexcept override {
        Dims const& x = inputDesc[kX].dims;
        int const channels = static_cast<int>(x.d[1]);
        int const planes = static_cast<int>(x.d[0] * x.d[1]);
        if (planes == 0 || x.d[2] == 0 || x.d[3] == 0) {
            return 0;  // an empty batch: nothing to write
        }
        cudaError_t const status = binseg_launch_frequency_split(
            inputs[kX], static_cast<float const*>(inputs[kSigma]), outputs[0], outputs[1],
            workspace, planes, channels, static_cast<int>(x.d[2]), static_cast<int>(x.d[3]),
            inputDesc[kX].type == DataType::kHALF ? 1 : 0, stream);
        if (status != cudaSuccess) {
            report(Severity::kERROR, "enqueue: %s (%s) on a %lldx%lld plane", cudaGetErrorName(status),
                   cudaGetErrorString(status), static_cast<long long>(x.d[2]), static_cast<long long>(x.d[3]));
            return static_cast<int32_t>(status);  // nonzero: TensorRT fails the inference
        }
        return 0;
    }

    // No per-context resources: each execution context gets its own plain clone.
    IPluginV3* attachToContext(nvinfer1::IPluginResourceContext* /*context*/) noexcept override { return clone(); }

    // Nothing to serialize: the engine stores no fields and the runtime re-creates the plugin
    // through createPlugin(..., kRUNTIME) with this empty collection.
    PluginFieldCollection const* getFieldsToSerialize() noexcept override { return &kNoFields; }
};

class FrequencySplitCreator final : public nvinfer1::IPluginCreatorV3One {
public:
    // Unknown fields are rejected, not ignored: the parser never sends any (see kNoFields), so a
    // field can only come from a caller or an engine that expects a different plugin version,
    // and running with a parameter silently dropped would compute something else.
    IPluginV3* createPlugin(char const* name, PluginFieldCollection const* fc,
                            nvinfer1::TensorRTPhase /*phase*/) noexcept override {
        if (fc != nullptr && fc->nbFields > 0) {
            for (int32_t i = 0; i < fc->nbFields; ++i) {
                char const* field = fc->fields != nullptr && fc->fields[i].name != nullptr ? fc->fields[i].name : "?";
                report(Severity::kERROR, "layer %s: unknown plugin field '%s' (version %s takes none)",
                       name != nullptr ? name : "?", field, kPluginVersion);
            }
            return nullptr;
        }
        IPluginV3* plugin = new (std::nothrow) FrequencySplitPlugin();
        if (plugin == nullptr) {
            report(Severity::kERROR, "layer %s: out of memory creating the plugin", name != nullptr ? name : "?");
        }
        return plugin;
    }

    PluginFieldCollection const* getFieldNames() noexcept override { return &kNoFields; }
    char const* getPluginName() const noexcept override { return kPluginName; }
    char const* getPluginVersion() const noexcept override { return kPluginVersion; }
    char const* getPluginNamespace() const noexcept override { return kPluginNamespace; }
};

}  // namespace

// Entry points of a TensorRT plugin library, looked up by name (C linkage) by
// IPluginRegistry::loadLibrary; everything else in this file stays internal.
#define BINSEG_PLUGIN_EXPORT extern "C" __attribute__((visibility("default")))

// Called by TensorRT before getCreators(); the finder outlives the library's use.
BINSEG_PLUGIN_EXPORT void setLoggerFinder(nvinfer1::ILoggerFinder* finder) noexcept {
    gLoggerFinder.store(finder, std::memory_order_release);
}

// The creators this library registers, under their own name/version/namespace.
BINSEG_PLUGIN_EXPORT nvinfer1::IPluginCreatorInterface* const* getCreators(int32_t& nbCreators) noexcept {
    static FrequencySplitCreator creator;
    static nvinfer1::IPluginCreatorInterface* const creators[] = {&creator};
    nbCreators = static_cast<int32_t>(sizeof(creators) / sizeof(creators[0]));
    return creators;
}
