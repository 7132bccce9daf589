import sys

from bci_app.cli import main

# Guarded: the GUI's pipeline process is spawned, and spawn imports the main module again.
if __name__ == "__main__":
    sys.exit(main())
