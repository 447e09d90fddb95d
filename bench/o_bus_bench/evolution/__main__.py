"""``python -m o_bus_bench.evolution``: see :mod:`o_bus_bench.evolution`."""

import sys

from o_bus_bench.evolution import main

sys.exit(main())
