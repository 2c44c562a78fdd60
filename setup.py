"""The one part of the build pyproject.toml cannot declare (outside an experimental table): the
compiled loops of near-duplicate detection, `curate/_kernels.pyx`.

Optional: where the extension cannot be built (no C compiler), the install still succeeds and
`curate.minhash` runs the numpy code that specifies those loops (same results, slower).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("curate._kernels", ["curate/_kernels.pyx"], optional=True)])
