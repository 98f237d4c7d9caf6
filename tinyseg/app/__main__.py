"""``python -m tinyseg.app``: train H-ReNet (see ``--help``)."""
import sys

from .cli import main

sys.argv[0] = "python -m tinyseg.app"     # the name --help and errors show
sys.exit(main())
