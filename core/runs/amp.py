"""The --amp choices and help every command shares; torch-free, so parsers can import it at start-up.

What "auto" resolves to is decided by core.runs.runtime.choose_precision.
"""

AMP_MODES = ("auto", "bf16", "fp16", "off")
AMP_HELP = ("precision (default auto: bf16 on CUDA with bf16, fp16 on older CUDA, bf16 on CPUs that run it natively "
            "(AVX512-BF16/AMX), else fp32; off = fp32)")

__all__ = ["AMP_MODES", "AMP_HELP"]
