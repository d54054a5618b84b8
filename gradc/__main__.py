"""`python -m gradc` is the `gradc` command."""
import sys

from .cli import main

sys.exit(main())
