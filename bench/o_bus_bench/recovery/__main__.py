"""``python -m o_bus_bench.recovery``: see :func:`o_bus_bench.recovery.main`."""

import sys

from o_bus_bench.recovery import main

sys.exit(main())
