"""The Jupyter side: the ``%%k2``/``%k2`` magics, their subcommands, step-through replay, and
the kernelspec (``python -m k2nb.kernel.kernelspec install``)."""
