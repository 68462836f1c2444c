"""Heavy mode (``%%k2 --heavy N``): N trajectories in forked copies of the kernel, one
aggregation, and the chosen trajectory replayed in the user's namespace.

- :mod:`.mode`: checks, aggregation, the choice and the composite run; the trajectories' view
- :mod:`.trajectories`: forking, the pipes back, stopping every child on an interrupt
"""

from .mode import HeavyParts, HeavyRun, HeavyStopped, aggregation_prompt, run_heavy

__all__ = ["HeavyParts", "HeavyRun", "HeavyStopped", "aggregation_prompt", "run_heavy"]
