"""``python -m o_bus.bench.evolution``: see :mod:`o_bus.bench.evolution`."""

import sys

from o_bus.bench.evolution import main

sys.exit(main())
