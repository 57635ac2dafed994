import sys

from autoresearch_tui.cli.main import main

sys.exit(main())
