"""Allow `python -m abathur_memory`."""

from abathur_memory.cli import main

if __name__ == "__main__":
    main()
