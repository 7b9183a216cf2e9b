"""`python -m divcoeff <command>`; see divcoeff.cli."""
import sys

from divcoeff.cli import main

sys.exit(main())
