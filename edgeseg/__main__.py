"""`python -m edgeseg` runs the command-line interface."""

from edgeseg.cli.main import main

if __name__ == "__main__":
    main()
