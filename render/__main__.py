"""`python -m render`: see render/cli.py."""

import sys

from render.cli import main

sys.exit(main())
