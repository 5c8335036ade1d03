"""The project's CUDA kernels (plain CUDA C++ sources) and their nvcc build."""
