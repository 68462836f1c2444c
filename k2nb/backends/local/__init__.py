"""The local backend: a 4-bit model in the kernel through transformers + bitsandbytes.

Importing this package is light (torch and transformers load when a model does), so
``from k2nb.backends.local import LocalBackend`` works without the ``local`` extra and fails,
with what to install, only when a model is loaded.
"""

from .backend import LocalBackend, LocalStepStats
from .loading import LoadReport

__all__ = ["LoadReport", "LocalBackend", "LocalStepStats"]
