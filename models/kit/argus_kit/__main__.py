"""`python -m argus_kit` (from models/kit)."""

from .cli import main

main()
