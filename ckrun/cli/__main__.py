"""`python -m ckrun.cli`: what the `ckrun` console script runs."""

from ckrun.cli import main

main()
