"""``python -m o_bus.schemas``: see :func:`o_bus.schemas.main`."""

import sys

from o_bus.schemas import main

sys.exit(main())
