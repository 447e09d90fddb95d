"""``python -m o_bus.bench.recovery``: see :func:`o_bus.bench.recovery.main`."""

import sys

from o_bus.bench.recovery import main

sys.exit(main())
