"""python -m fastnn.train: see fastnn.train.command."""

import sys

from fastnn.train.command import main

sys.exit(main())
