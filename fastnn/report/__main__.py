"""python -m fastnn.report: see fastnn.report.command."""

import sys

from fastnn.report.command import main

sys.exit(main())
