"""``python -m tinyseg.app``: train H-ReNet (see ``--help``)."""
import sys

from .cli import main

sys.exit(main())
