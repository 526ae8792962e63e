#!/usr/bin/env python
"""Train kgrec: ``python train.py`` runs the whole path on the built-in synthetic demo catalog.

Same flags as ``kgrec train``; see ``python train.py --help``.
"""
import argparse
import sys

from kgrec.cli import main

if __name__ == "__main__":
    if any(a in ("-h", "--help") for a in sys.argv[1:]):
        from kgrec.config import add_train_arguments

        parser = argparse.ArgumentParser(prog="train.py", description=__doc__)
        add_train_arguments(parser)
        parser.parse_args()
    sys.exit(main(["train", *sys.argv[1:]]))
