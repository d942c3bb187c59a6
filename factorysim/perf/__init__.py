"""The physics of one training step: compute, communication, pipeline, memory, and the factors G, C, N, E."""

from .flops import hardware_flops_per_token, model_flops_per_token
from .job import estimate, feasibility_problems, step_links
from .memory import MemoryBreakdown, memory_per_chip, memory_per_stage, memory_problems
from .step import KERNELS, Factors, KernelModel, StepBreakdown, StepEstimate, StepLinks, estimate_step

__all__ = [
    "KERNELS", "Factors", "KernelModel", "MemoryBreakdown", "StepBreakdown", "StepEstimate", "StepLinks",
    "estimate", "estimate_step", "feasibility_problems", "hardware_flops_per_token", "memory_per_chip",
    "memory_per_stage", "memory_problems", "model_flops_per_token", "step_links",
]  # fmt: skip
