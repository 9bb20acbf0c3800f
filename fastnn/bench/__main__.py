"""`python -m fastnn.bench`: see fastnn.bench.cli."""

import sys

from fastnn.bench.cli import main

sys.exit(main())
