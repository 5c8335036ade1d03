"""Identity of the TensorRT plugin that runs the frequency branch: name, version, namespace.

The ONNX "kernel" export writes the branch as one node ``op_type=PLUGIN_NAME`` (domain
``PLUGIN_NAMESPACE``) with string attributes ``plugin_version=PLUGIN_VERSION`` and
``plugin_namespace=PLUGIN_NAMESPACE``. TensorRT's ONNX parser has no importer for that op, so
it asks the plugin registry for the creator registered under exactly (op_type, plugin_version,
plugin_namespace), and the library built from ``frequency_split_plugin.cpp`` registers its
creator under its ``kPluginName`` / ``kPluginVersion`` / ``kPluginNamespace``. The two sides
are separate files in two languages, and a mismatch shows only on the robot, as the parse
error "Plugin not found, are the plugin name, version, and namespace correct?", so these
constants are the exporter's single source and ``test/test_trt_plugin.py`` checks them
against the C++ ones. Bump the version on both sides when the node's inputs, outputs or
semantics change, so an old engine or library cannot be paired with a new graph.
"""

PLUGIN_NAME = "BinsegFrequencySplit"
PLUGIN_VERSION = "1"
PLUGIN_NAMESPACE = "binseg"
