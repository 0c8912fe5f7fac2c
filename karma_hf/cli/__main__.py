"""``python -m karma_hf.cli`` (what ``accelerate launch -m karma_hf.cli`` and ``torchrun -m`` run)."""

from karma_hf.cli.app import main

if __name__ == "__main__":
    main()
