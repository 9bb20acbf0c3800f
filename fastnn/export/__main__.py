"""python -m fastnn.export: see fastnn.export.command."""

import sys

from fastnn.export.command import main

sys.exit(main())
