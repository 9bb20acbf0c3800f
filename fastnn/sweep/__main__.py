"""python -m fastnn.sweep: see fastnn.sweep.cli."""

import sys

from fastnn.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
