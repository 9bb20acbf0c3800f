"""python -m fastnn.serve: see fastnn.serve.command."""

import sys

from fastnn.serve.command import main

sys.exit(main())
