"""Adapters that feed the authors' official code our benchmark splits (issue 33).

The official code lives outside the repository (see bench/official/README.md); these modules only
export our rows in the format it reads and run it from a path given on the command line.
"""
