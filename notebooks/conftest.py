"""nbval runs the committed notebooks in kernels started from this pytest process: pin their CPU
kernel paths first, as the committed outputs were produced with them (cytosae.workflow.determinism)."""

from cytosae.workflow.determinism import pin_cpu_kernels

pin_cpu_kernels()
