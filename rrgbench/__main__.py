"""``python -m rrgbench`` runs the command line (also under torchrun)."""

from rrgbench.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
